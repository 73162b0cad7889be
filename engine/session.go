package engine

import (
	"sync"

	"github.com/cairn-mqtt/cairn/engine/loggate"
	"github.com/cairn-mqtt/cairn/engine/session"
	"github.com/cairn-mqtt/cairn/engine/topics"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// Session is one client's MQTT session. A clean session lives as long as its
// connection; a persistent one (3.x clean session 0, 5.0 session expiry > 0)
// outlives it, and everything about it that an acknowledgement covered is in
// the store.
type Session struct {
	id         string
	persistent bool
	user       string // the owner: authenticated user at creation ("" anonymous); fixed

	mu      sync.Mutex
	rec     store.Session // the stored record (persistent sessions)
	conn    *conn         // the attached connection, nil when offline
	out     *session.Outbox
	inbound map[uint16]struct{} // QoS 2 packet ids from the client awaiting PUBREL
	will    *store.Will
	// Back-pressure (backpressure.go): readers waiting for room, and
	// whether the client failed to make room in time.
	roomCh  chan struct{}
	stalled bool
	unlink  sync.Once // unlinkSession (expiry.go)
	// detaching is closed when the latest detach of the session is over
	// (detach.go); nil if it was never detached.
	detaching chan struct{}
	// drops gates the log line of deliveries dropped because the client's
	// in-memory queue is full (deliver).
	drops loggate.Gate
}

func (b *Broker) newSession(id string, persistent bool, head, next, sentBelow uint64) *Session {
	return &Session{
		id:         id,
		persistent: persistent,
		out: session.New(session.Config{
			Persistent: persistent,
			Window:     b.opts.MaxInflight,
			MemCap:     b.opts.MaxQueuedMemory,
			QoS0Cap:    b.opts.MaxQueuedQoS0,
			MemBytes:   b.opts.Limits.MaxQueuedBytes,
		}, head, next, sentBelow),
		inbound: make(map[uint16]struct{}),
	}
}

// deliver hands a durable (or volatile) delivery to the session and wakes its
// connection's writer.
// from, if set, is the publishing connection, told when s is crowded.
func (b *Broker) deliver(s *Session, d session.Delivery, from *conn) {
	s.mu.Lock()
	c := s.conn
	if c == nil {
		// Offline: a persistent session's message waits in the store (it
		// is read back on reconnect, so holding it in memory would only
		// grow the heap with the number of offline sessions); QoS 0 is
		// not queued for offline sessions.
		if s.persistent && d.QoS > 0 {
			s.out.Durable(d.Seq)
		}
		s.mu.Unlock()
		return
	}
	ok := s.out.Push(d)
	crowded := ok && s.crowdedLocked()
	s.mu.Unlock()
	if crowded && from != nil {
		from.noteCrowded(s) // its reader pauses (backpressure.go)
	}
	if !ok {
		b.stats.drop(DropQueueFull, 1)
		b.stats.Security.QueueFull.Add(1)
		if n, log := s.drops.Pass(b.now()); log {
			// A clean session's messages live in memory only, bounded
			// by --max-queued-memory: one that does not read loses what
			// does not fit, QoS 1 and 2 included.
			b.log.Warn("deliveries dropped: the client does not keep up and its queue in memory is full",
				"client", s.id, "dropped", n, "topic", d.Msg.Topic, "qos", d.QoS,
				"max_queued_memory", b.opts.MaxQueuedMemory, "max_queued_bytes", b.opts.Limits.MaxQueuedBytes)
		}
		return
	}
	if c != nil {
		c.wake()
	}
}

// deliveryOf converts a stored queue entry.
func deliveryOf(q store.QueuedMessage) session.Delivery {
	return session.Delivery{
		Seq:    q.Seq,
		QoS:    q.Entry.QoS,
		Retain: q.Entry.Retain,
		SubIDs: q.Entry.SubIDs,
		Msg:    q.Msg,
		State:  q.Entry.State,
	}
}

// sessionExpiry is the stored expiry interval of a connection's session:
// 3.x clean session 0 never expires.
func sessionExpiry(c *wire.Connect) uint32 {
	if c.Version == wire.V5 {
		if c.Props != nil && c.Props.SessionExpiry != nil {
			return *c.Props.SessionExpiry
		}
		return 0
	}
	if c.CleanStart {
		return 0
	}
	return 0xFFFFFFFF
}

func topicsSub(s store.Subscription) topics.Sub {
	return topics.Sub{QoS: s.QoS, NoLocal: s.NoLocal, RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, SubID: s.SubID}
}
