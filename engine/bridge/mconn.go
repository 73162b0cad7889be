package bridge

// mconn is one MQTT connection the bridge speaks as a client: to the remote
// broker over TCP or TLS, or to the local broker over an in-process pipe
// (engine.Broker.DialInternal). The same code serves both, so the local
// side is an ordinary MQTT 5.0 client of the broker.
//
// Invariants:
//   - One reader (the caller's goroutine, through read) and one writer
//     goroutine; send never blocks on the socket: packets are queued and the
//     writer encodes everything queued into one buffer and writes it with a
//     single call (a burst of acknowledgements costs one system call).
//   - The queue is bounded by the protocol windows, not by this type: the
//     peer never has more than its receive maximum (or, for 3.1.1, its own
//     in-flight limit) of publishes outstanding, and each causes at most two
//     packets from us. QoS 0 messages, which no window bounds, are dropped
//     (counted) by the router when the queue holds qos0Backlog packets.
//   - The first error (read, write, encode, close) is kept; close is
//     idempotent and makes read and the writer return.

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// errClosed is the error of a connection closed by the bridge itself.
var errClosed = errors.New("bridge: connection closed")

type mconn struct {
	name string // "remote" or "local", for errors
	nc   net.Conn
	r    *wire.Reader
	v    wire.Version
	// writeTimeout bounds one write: a peer that reads nothing for that
	// long is treated as dead.
	writeTimeout time.Duration

	mu      sync.Mutex
	queue   []wire.Packet
	pending int // queued or being written
	err     error
	started bool // the writer runs

	wake       chan struct{}
	done       chan struct{} // closed by close
	closeOnce  sync.Once
	writerDone chan struct{}

	lastRead, lastWrite atomic.Int64 // unix nanoseconds
}

func newMconn(name string, nc net.Conn, v wire.Version, maxPacket uint32, writeTimeout time.Duration) *mconn {
	m := &mconn{
		name: name, nc: nc, r: wire.NewReaderSize(nc, maxPacket, 64<<10), v: v, writeTimeout: writeTimeout,
		wake: make(chan struct{}, 1), done: make(chan struct{}), writerDone: make(chan struct{}),
	}
	now := time.Now().UnixNano()
	m.lastRead.Store(now)
	m.lastWrite.Store(now)
	return m
}

// handshake writes c and reads the CONNACK, both within timeout, and then
// starts the writer. A refused CONNACK is returned with a nil error: the
// caller judges the code.
func (m *mconn) handshake(c *wire.Connect, timeout time.Duration) (*wire.Connack, error) {
	buf, err := wire.AppendPacket(nil, c, m.v)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding CONNECT: %w", m.name, err)
	}
	deadline := time.Now().Add(timeout)
	_ = m.nc.SetDeadline(deadline)
	if _, err := m.nc.Write(buf); err != nil {
		return nil, fmt.Errorf("%s: writing CONNECT: %w", m.name, err)
	}
	p, err := m.r.ReadPacket(m.v)
	if err != nil {
		return nil, fmt.Errorf("%s: reading CONNACK: %w", m.name, err)
	}
	ack, ok := p.(*wire.Connack)
	if !ok {
		return nil, fmt.Errorf("%s: %v instead of CONNACK", m.name, p.Type())
	}
	_ = m.nc.SetDeadline(time.Time{})
	m.mu.Lock()
	m.started = true
	m.mu.Unlock()
	go m.writeLoop()
	return ack, nil
}

// send queues p for the writer.
func (m *mconn) send(p wire.Packet) {
	m.mu.Lock()
	m.queue = append(m.queue, p)
	m.pending++
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// backlog is how many packets are queued or being written.
func (m *mconn) backlog() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pending
}

// read returns the next packet; readTimeout > 0 bounds the wait.
func (m *mconn) read(readTimeout time.Duration) (wire.Packet, error) {
	if readTimeout > 0 {
		_ = m.nc.SetReadDeadline(time.Now().Add(readTimeout))
	}
	p, err := m.r.ReadPacket(m.v)
	if err != nil {
		select {
		case <-m.done:
			return nil, m.failure()
		default:
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("keep alive: nothing received for %v", readTimeout)
		}
		m.fail(fmt.Errorf("%s: read: %w", m.name, err))
		return nil, m.failure()
	}
	m.lastRead.Store(time.Now().UnixNano())
	return p, nil
}

func (m *mconn) writeLoop() {
	defer close(m.writerDone)
	var buf []byte
	var batch []wire.Packet
	for {
		select {
		case <-m.wake:
		case <-m.done:
			return
		}
		for {
			m.mu.Lock()
			batch, m.queue = m.queue, batch[:0]
			m.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			buf = buf[:0]
			for i, p := range batch {
				var err error
				if buf, err = wire.AppendPacket(buf, p, m.v); err != nil {
					m.fail(fmt.Errorf("%s: encoding %v: %w", m.name, p.Type(), err))
					return
				}
				batch[i] = nil
			}
			_ = m.nc.SetWriteDeadline(time.Now().Add(m.writeTimeout))
			if _, err := m.nc.Write(buf); err != nil {
				m.fail(fmt.Errorf("%s: write: %w", m.name, err))
				return
			}
			m.lastWrite.Store(time.Now().UnixNano())
			m.mu.Lock()
			m.pending -= len(batch)
			m.mu.Unlock()
			if cap(buf) > 1<<20 {
				buf = nil // do not keep one large message's buffer
			}
		}
	}
}

// fail records err (if it is the first) and closes the connection.
func (m *mconn) fail(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.mu.Unlock()
	m.closeOnce.Do(func() {
		close(m.done)
		m.nc.Close()
	})
}

func (m *mconn) failure() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// closeWith sends last (a DISCONNECT) if the connection is still up, waits
// briefly for the writer to flush it, and closes.
func (m *mconn) closeWith(last wire.Packet) {
	select {
	case <-m.done:
	default:
		if last != nil {
			m.send(last)
			m.flush(time.Second)
		}
	}
	m.fail(errClosed)
}

// flush waits until the writer has written everything queued, at most d.
func (m *mconn) flush(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		empty := m.pending == 0
		m.mu.Unlock()
		if empty {
			return
		}
		select {
		case <-m.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// wait waits for the writer to end (after close).
func (m *mconn) wait() {
	m.mu.Lock()
	started := m.started
	m.mu.Unlock()
	if !started {
		return
	}
	select {
	case <-m.writerDone:
	case <-time.After(m.writeTimeout + time.Second):
	}
}
