package engine

import (
	"sync"
	"time"
)

// The CONNECT workers.
//
// A connection's first goroutine handles CONNECT: it reads the packet,
// commits the session to the store and writes the CONNACK (conn.run), then
// starts the connection's reader goroutine. The store commit runs through
// Pebble's commit path, which is deep: a fresh goroutine's stack (a few KiB,
// sized by the runtime from the average goroutine, and most of ours are idle
// readers) grows by copying two or three times on the way. Profiled in a
// connect storm (10,000 persistent sessions, 16 at a time), that copying was
// a tenth of the broker's CPU.
//
// So CONNECT handling runs on a small set of long-lived workers whose stacks
// have grown once. Invariants:
//
//  1. Never a wait. serveConn hands the connection to a worker only if one
//     is parked ready to take it (an unbuffered send in a select with a
//     default); otherwise it starts a goroutine as before, which becomes a
//     worker after its first connection if there is room. A slow client
//     (TLS handshake, CONNECT trickling in) therefore never delays another.
//  2. Bounded. At most maxConnectWorkers workers; one parked longer than
//     connectWorkerIdle exits, so an idle broker holds none.
//  3. Shutdown waits. Workers are counted in connectWorkers.wg and exit when
//     stop is closed; the connections they run are counted in connWG as
//     before, so nothing a worker does outlives Shutdown.
//
// The reader goroutine is still a fresh one: an idle connection parks in it
// with the smallest stack, which is what keeps idle connections cheap.

const (
	maxConnectWorkers = 64
	connectWorkerIdle = 10 * time.Second
)

type connectWorkers struct {
	handoff chan *conn // unbuffered: a send succeeds only into a parked worker
	stop    chan struct{}

	mu      sync.Mutex
	n       int  // workers alive
	stopped bool // stop is closed
	wg      sync.WaitGroup
}

func (w *connectWorkers) init() {
	w.handoff = make(chan *conn)
	w.stop = make(chan struct{})
}

// start runs c's CONNECT handling on a parked worker, or on a new goroutine
// that stays on as a worker if there is room.
func (w *connectWorkers) start(c *conn) {
	select {
	case w.handoff <- c:
		return
	default:
	}
	w.mu.Lock()
	join := !w.stopped && w.n < maxConnectWorkers
	if join {
		w.n++
		w.wg.Add(1)
	}
	w.mu.Unlock()
	if !join {
		go c.run()
		return
	}
	go w.work(c)
}

// work runs first, then whatever is handed over, until idle or stopped.
func (w *connectWorkers) work(first *conn) {
	defer func() {
		w.mu.Lock()
		w.n--
		w.mu.Unlock()
		w.wg.Done()
	}()
	first.run()
	idle := time.NewTimer(connectWorkerIdle)
	defer idle.Stop()
	for {
		select {
		case c := <-w.handoff:
			c.run()
			idle.Reset(connectWorkerIdle)
		case <-idle.C:
			return
		case <-w.stop:
			return
		}
	}
}

// shutdown makes every worker exit once its current connection's CONNECT
// handling is over, and waits for that.
func (w *connectWorkers) shutdown() {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.stop)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// workers reports how many workers are alive (tests).
func (w *connectWorkers) workers() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}
