package bench

import (
	"sync"
	"sync/atomic"
)

// A subscriber counts every stamped message it receives once per
// (publisher, sequence), records its end-to-end latency, and lets its
// connection acknowledge it (acks are batched per read, see client.go).
// Subscribers may share one tally (the restart scenario's thousands of
// sessions, each receiving its share of every publisher's sequence): then
// the tally's sets are updated under its mutex.

type subscriber struct {
	c   *conn
	run uint32
	*tally
}

// tally is what subscribers record.
type tally struct {
	shared bool
	mu     sync.Mutex // guards got and latency when shared

	got     []seqSet   // by publisher index; reader goroutine(s)
	latency *Histogram // read after the connections closed
	record  bool       // record latency (not for a backlog drained later)

	received  atomic.Int64 // distinct messages of this run
	dups      atomic.Int64
	foreign   atomic.Int64 // messages without this run's stamp
	firstRecv atomic.Int64 // clock() of the first message, 0 before it
	lastRecv  atomic.Int64 // clock() of the latest
}

func newTally(publishers int, record, shared bool) *tally {
	return &tally{got: make([]seqSet, publishers), latency: NewHistogram(), record: record, shared: shared}
}

func newSubscriber(c *conn, run uint32, publishers int, record bool) *subscriber {
	return newSubscriberTally(c, run, newTally(publishers, record, false))
}

// newSubscriberTally returns a subscriber recording into t.
func newSubscriberTally(c *conn, run uint32, t *tally) *subscriber {
	s := &subscriber{c: c, run: run, tally: t}
	c.onPublish = s.onPublish
	return s
}

// attach moves s onto a new connection (a reconnect).
func (s *subscriber) attach(c *conn) {
	s.c = c
	c.onPublish = s.onPublish
}

func (s *subscriber) onPublish(p *publishView) {
	now := clock()
	run, pub, seq, at, ok := readStamp(p.Payload)
	if !ok || run != s.run || int(pub) >= len(s.got) {
		s.foreign.Add(1)
		return
	}
	t := s.tally
	if t.shared {
		t.mu.Lock()
		defer t.mu.Unlock()
	}
	if !t.got[pub].add(seq) {
		t.dups.Add(1)
		return
	}
	if t.record {
		t.latency.Record(now - at)
	}
	t.firstRecv.CompareAndSwap(0, now)
	t.lastRecv.Store(now)
	t.received.Add(1)
}
