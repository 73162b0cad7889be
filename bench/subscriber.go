package bench

import (
	"sync/atomic"
)

// A subscriber counts every stamped message it receives once per
// (publisher, sequence), records its end-to-end latency, and lets its
// connection acknowledge it (acks are batched per read, see client.go).

type subscriber struct {
	c   *conn
	run uint32

	got     []seqSet   // by publisher index; reader goroutine
	latency *Histogram // reader goroutine; read after the connection closed
	record  bool       // record latency (not for a backlog drained later)

	received  atomic.Int64 // distinct messages of this run
	dups      atomic.Int64
	foreign   atomic.Int64 // messages without this run's stamp
	firstRecv atomic.Int64 // clock() of the first message, 0 before it
	lastRecv  atomic.Int64 // clock() of the latest
}

func newSubscriber(c *conn, run uint32, publishers int, record bool) *subscriber {
	s := &subscriber{c: c, run: run, got: make([]seqSet, publishers), latency: NewHistogram(), record: record}
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
	if !s.got[pub].add(seq) {
		s.dups.Add(1)
		return
	}
	if s.record {
		s.latency.Record(now - at)
	}
	if s.firstRecv.Load() == 0 {
		s.firstRecv.Store(now)
	}
	s.lastRecv.Store(now)
	s.received.Add(1)
}
