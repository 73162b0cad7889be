package engine

import (
	"fmt"
	"time"

	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// detach ends a connection's hold on its session: the will is published
// unless the client said DISCONNECT (or the broker is shutting down) — at
// once, or when its will delay passes if the session outlives the
// connection (expiry.go); a clean session is removed; a persistent one is
// marked offline in the store with its absolute expiry and will times.
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
	// Until this detach is over — the session dropped or marked offline,
	// its store events applied — a CONNECT of the same client id waits
	// (handleConnect), so it neither resumes a session being dropped nor
	// logs its own session-opened ahead of this session-dropped.
	detached := make(chan struct{})
	s.detaching = detached
	defer close(detached)
	survives := s.persistent && s.rec.ExpiryInterval != 0
	var will *store.Will
	switch c.why {
	case endDisconnect:
		s.will = nil
	case endShutdown:
		// Keep it armed: the client did nothing wrong. It is not pending
		// (WillAt 0); it fires only if the session expires first.
	default:
		if s.will != nil && s.will.Delay > 0 && survives {
			s.rec.WillAt = now.Add(time.Duration(s.will.Delay) * time.Second).UnixNano()
		} else {
			will, s.will = s.will, nil
		}
	}
	s.rec.Connected = false
	s.rec.DisconnectedAt = now.UnixNano()
	s.rec.ExpiresAt = expiresAt(s.rec.ExpiryInterval, now)
	s.rec.SentBelow, s.rec.SentKnown = s.out.SentBelow(), true
	s.rec.Will = s.will
	if s.will == nil {
		s.rec.WillAt = 0
	}
	rec := s.rec
	next := nextDeadline(&s.rec, s.will)
	orphans := sharedUnacked(s) // a clean session's shared messages (sharedhandoff.go)
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
		b.handOff(s.id, orphans, now) // after dropSession: it is out of its groups
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
			b.publishWill(r, s.id)
		}
	})
	if survives && next != 0 {
		b.deadl.set(s.id, next)
	}
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
	r := b.route(msg, client, now.UnixNano())
	b.limitQueues(r, false)
	if r.ev != nil {
		r.ev.MayUseReserve = true // not new work: the free-space guard lets it through (storefull.go)
	}
	return r
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
	// What may have been sent: known for a session closed while the broker
	// ran; for one a crash left connected, the first window of its queue
	// (no further than its end: what is published from now on was not).
	sentBelow := min(st.Queue.Head+uint64(b.opts.MaxInflight), st.Queue.Next)
	if r := &st.Session; !r.Connected && r.SentKnown {
		sentBelow = max(st.Queue.Head, r.SentBelow)
	}
	s := b.newSession(id, true, st.Queue.Head, st.Queue.Next, sentBelow)
	s.rec = st.Session
	s.user = st.Session.Username
	s.will = st.Session.Will
	if r := &s.rec; !r.Connected && r.ExpiresAt == 0 && r.DisconnectedAt != 0 {
		// A record written before ExpiresAt existed: the same deadline.
		r.ExpiresAt = expiresAt(r.ExpiryInterval, time.Unix(0, r.DisconnectedAt))
	}
	for _, pid := range st.InboundPIDs {
		s.inbound[pid] = struct{}{}
	}
	for filter, sub := range st.Subs {
		b.subs.Subscribe(id, filter, topicsSub(sub))
	}
	b.mu.Lock()
	b.sessions[id] = s
	b.mu.Unlock()
	if !s.rec.Connected {
		b.deadl.set(id, nextDeadline(&s.rec, s.will))
	}
}

// RestoreRetained puts a stored retained message back in the index.
func (b *Broker) RestoreRetained(m *store.Message) { b.retained.Set(m.Topic, m) }

// FinishRestore closes, durably and before any client can connect, the
// sessions whose connection a crash cut (stored as connected): their wills
// are published — or, with a will delay, become pending from now, so that
// the client can still reconnect and cancel them — and a session with
// expiry 0 ends. Then it settles every deadline that passed while the broker
// was down (ExpireSessions) and starts the deadline timer for the rest.
func (b *Broker) FinishRestore() (wills int, err error) {
	now := b.now()
	before := b.stats.WillsPublished.Load()
	defer func() { wills = int(b.stats.WillsPublished.Load() - before) }()
	b.mu.RLock()
	var stale []*Session
	for _, s := range b.sessions {
		if s.rec.Connected {
			stale = append(stale, s)
		}
	}
	b.mu.RUnlock()
	for len(stale) > 0 {
		n := min(len(stale), dueBatch)
		if err := b.closeCut(stale[:n], now); err != nil {
			return 0, err
		}
		stale = stale[n:]
	}
	if _, err := b.ExpireSessions(now); err != nil {
		return 0, fmt.Errorf("engine: expiring sessions after restart: %w", err)
	}
	b.deadl.start()
	return 0, nil // the deferred count
}

// closeCut closes a batch of sessions a crash left connected, in one commit.
func (b *Broker) closeCut(batch []*Session, now time.Time) error {
	var evs []*store.Event
	var routedWills []*routed
	var ids []string
	for _, s := range batch {
		s.mu.Lock()
		survives := s.rec.ExpiryInterval != 0
		will := s.will
		if will != nil && will.Delay > 0 && survives {
			s.rec.WillAt = now.Add(time.Duration(will.Delay) * time.Second).UnixNano()
			will = nil // pending
		} else {
			s.will, s.rec.WillAt = nil, 0
		}
		s.rec.Connected = false
		s.rec.DisconnectedAt = now.UnixNano()
		s.rec.ExpiresAt = expiresAt(s.rec.ExpiryInterval, now)
		s.rec.SentBelow, s.rec.SentKnown = s.out.SentBelow(), true // RestoreSession's conservative guess
		s.rec.Will = s.will
		rec := s.rec
		next := nextDeadline(&s.rec, s.will)
		s.mu.Unlock()
		if survives {
			evs = append(evs, &store.Event{Kind: store.EvSessionClosed, Time: now.UnixNano(), Client: s.id, Session: &rec})
			b.deadl.set(s.id, next)
		} else {
			evs = append(evs, b.dropSession(s, now)...)
		}
		if will != nil && b.willAllowed(s, will) {
			r := b.routeWill(s.id, will, now)
			if r.ev != nil {
				evs = append(evs, r.ev)
			}
			routedWills = append(routedWills, r)
			ids = append(ids, s.id)
		}
	}
	if err := b.commitWait(evs, true); err != nil {
		return fmt.Errorf("engine: closing sessions after restart: %w", err)
	}
	for i, r := range routedWills {
		b.publishWill(r, ids[i])
	}
	return nil
}
