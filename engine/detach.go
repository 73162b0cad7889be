package engine

import (
	"fmt"
	"time"

	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// detach ends a connection's hold on its session: the will is published
// unless the client said DISCONNECT (or the broker is shutting down), a clean
// session is removed, a persistent one is marked offline in the store.
func (b *Broker) detach(c *conn) {
	s := c.sess
	if s == nil {
		return
	}
	b.stats.Connected.Add(-1)
	now := b.now()
	s.mu.Lock()
	if s.conn != c {
		s.mu.Unlock()
		return
	}
	s.conn = nil
	var will *store.Will
	switch c.why {
	case endDisconnect:
		s.will = nil
	case endShutdown:
		// Keep it armed: the client did nothing wrong.
	default:
		will, s.will = s.will, nil
	}
	s.rec.Connected = false
	s.rec.DisconnectedAt = now.UnixNano()
	s.rec.Will = s.will
	rec := s.rec
	s.mu.Unlock()

	var evs []*store.Event
	var r *routed
	if will != nil && b.willAllowed(s, will) {
		r = b.routeWill(s.id, will, now)
		if r.ev != nil {
			evs = append(evs, r.ev)
		}
	}
	switch {
	case !s.persistent:
		b.dropSession(s, now)
	case rec.ExpiryInterval == 0:
		evs = append(evs, b.dropSession(s, now)...)
	default:
		evs = append(evs, &store.Event{Kind: store.EvSessionClosed, Time: now.UnixNano(), Client: s.id, Session: &rec})
	}
	b.commit(evs, true, func(err error) {
		if err != nil {
			b.log.Error("store commit failed while closing a session", "client", s.id, "err", err)
			return
		}
		if r != nil {
			b.publishRouted(r)
			b.stats.WillsPublished.Add(1)
			b.log.Info("will published", "client", s.id, "topic", will.Topic)
		}
	})
}

// routeWill routes a will message as if its client had published it.
func (b *Broker) routeWill(client string, w *store.Will, now time.Time) *routed {
	msg := &store.Message{
		Topic:       w.Topic,
		Payload:     w.Payload,
		QoS:         w.QoS,
		Retain:      w.Retain,
		From:        client,
		PublishedAt: now.UnixNano(),
	}
	if len(w.Props) > 0 {
		if p, err := wire.DecodeProperties(w.Props); err == nil && p != nil {
			p.WillDelay = nil
			msg.Props, msg.ExpiresAt = storedProps(p, now)
		}
	}
	return b.route(msg, client, now.UnixNano())
}

// publishRouted applies a committed message: retained value, deliveries.
func (b *Broker) publishRouted(r *routed) {
	if r.msg.Retain {
		b.setRetained(r.msg)
	}
	r.deliver(b)
}

// RestoreSession rebuilds a persistent session from the store (package
// recovery calls it before the listeners open).
func (b *Broker) RestoreSession(st *store.SessionState) {
	id := st.Session.ClientID
	s := b.newSession(id, true, st.Queue.Head, st.Queue.Next, st.Queue.Head+uint64(b.opts.MaxInflight))
	s.rec = st.Session
	s.user = st.Session.Username
	s.will = st.Session.Will
	for _, pid := range st.InboundPIDs {
		s.inbound[pid] = struct{}{}
	}
	for filter, sub := range st.Subs {
		b.subs.Subscribe(id, filter, topicsSub(sub))
	}
	b.mu.Lock()
	b.sessions[id] = s
	b.mu.Unlock()
}

// RestoreRetained puts a stored retained message back in the index.
func (b *Broker) RestoreRetained(m *store.Message) { b.retained.Set(m.Topic, m) }

// FinishRestore publishes the wills of sessions whose connection was cut by
// a crash (stored as connected) and marks them offline, durably, before any
// client can connect.
func (b *Broker) FinishRestore() (wills int, err error) {
	now := b.now()
	b.mu.RLock()
	var stale []*Session
	for _, s := range b.sessions {
		if s.rec.Connected {
			stale = append(stale, s)
		}
	}
	b.mu.RUnlock()
	for _, s := range stale {
		s.mu.Lock()
		will := s.will
		s.will = nil
		s.rec.Connected = false
		s.rec.DisconnectedAt = now.UnixNano()
		s.rec.Will = nil
		rec := s.rec
		s.mu.Unlock()
		evs := []*store.Event{{Kind: store.EvSessionClosed, Time: now.UnixNano(), Client: s.id, Session: &rec}}
		var r *routed
		if will != nil && b.willAllowed(s, will) {
			r = b.routeWill(s.id, will, now)
			if r.ev != nil {
				evs = append(evs, r.ev)
			}
		}
		if err := b.commitWait(evs, true); err != nil {
			return wills, fmt.Errorf("engine: closing session %q after restart: %w", s.id, err)
		}
		if r != nil {
			b.publishRouted(r)
			wills++
			b.stats.WillsPublished.Add(1)
		}
	}
	return wills, nil
}
