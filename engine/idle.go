package engine

import (
	"time"
)

// Idle connections hold no read buffer. Before a read that would block, a
// connection that has been quiet (and every connection right after CONNECT,
// the connect-storm case) lets its read buffer go (wire.Reader.ReleaseBuffer)
// and waits for the socket to become readable without one
// (waitReadable, idle_linux.go); the read after it takes a buffer from a
// pool again. A busy connection, whose reads come quickly, keeps its buffer
// and pays no extra system call.
//
// Invariants: the wait honours the read deadline (keep alive) and ends when
// the connection is closed, exactly like the read it precedes; it never
// consumes data (it only peeks), so the read after it sees everything.

// idleAfter is how long a read must have waited for the connection to count
// as quiet.
const idleAfter = 100 * time.Millisecond

// idleState is a reader's view of its own connection.
type idleState struct {
	quiet bool      // the next wait on an empty buffer goes without one
	t0    time.Time // when the current wait began
}

// readyToRead runs before each read: on an empty buffer it starts timing
// the wait (timed; call readDone after the read) or, if the connection is
// quiet, waits for data without a buffer. It returns a read error to
// handle, or nil.
func (c *conn) readyToRead() (timed bool, err error) {
	if c.r.Buffered() != 0 {
		return false, nil
	}
	c.idle.t0 = time.Now()
	if c.idle.quiet {
		c.r.ReleaseBuffer()
		if err := waitReadable(c.nc); err != nil {
			return false, err
		}
		c.idle.quiet = time.Since(c.idle.t0) >= idleAfter
		return false, nil
	}
	return true, nil
}

// readDone records, after a timed read, whether the connection was quiet.
func (c *conn) readDone() {
	c.idle.quiet = time.Since(c.idle.t0) >= idleAfter
}
