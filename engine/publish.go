package engine

import (
	"fmt"
	"sync"

	"github.com/cairn-mqtt/cairn/engine/session"
	"github.com/cairn-mqtt/cairn/engine/topics"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// routed is a message with its destinations: the persistent sessions it is
// queued for in the store (ev.Targets, parallel to stored) and the sessions
// that get it from memory only (clean sessions, QoS 0).
type routed struct {
	msg      *store.Message
	ev       *store.Event // EvPublished; nil when nothing is stored
	stored   []*Session
	volatile []volatileDelivery
	matched  int
	from     *conn // the publishing connection, if a client's (back-pressure)

	// Room for the common case — one event, one destination — in the same
	// allocation as the routed itself.
	evBuf  store.Event
	tgBuf  [1]store.Target
	stBuf  [1]*Session
	volBuf [1]volatileDelivery
}

type volatileDelivery struct {
	s *Session
	d session.Delivery
}

var matchPool = sync.Pool{New: func() any { s := make([]topics.Match, 0, 16); return &s }}

// route finds msg's subscribers. It stores nothing: the caller commits
// r.ev (if any) and calls r.deliver once that is durable.
func (b *Broker) route(msg *store.Message, from string, now int64) *routed {
	r := &routed{msg: msg}
	r.stored, r.volatile = r.stBuf[:0], r.volBuf[:0]
	b.stampRetained(msg, now) // server-side retained TTL (retainttl.go)
	mp := matchPool.Get().(*[]topics.Match)
	matches := b.subs.Match(msg.Topic, from, b.isOnline, (*mp)[:0])
	targets := r.tgBuf[:0]
	for _, m := range matches {
		s := b.lookup(m.Client)
		if s == nil || !b.mayReceive(s, msg.Topic) {
			continue
		}
		r.matched++
		qos := min(msg.QoS, m.QoS)
		retain := m.RetainAsPublished && msg.Retain
		if s.persistent && qos > 0 {
			targets = append(targets, store.Target{Client: m.Client, QoS: qos, Retain: retain, SubIDs: cloneIDs(m.SubIDs), Group: m.Group})
			r.stored = append(r.stored, s)
			continue
		}
		r.volatile = append(r.volatile, volatileDelivery{s: s, d: session.Delivery{QoS: qos, Retain: retain, SubIDs: cloneIDs(m.SubIDs), Msg: msg, Group: m.Group}})
	}
	clear(matches)
	*mp = matches[:0]
	matchPool.Put(mp)
	if len(targets) > 0 || msg.Retain {
		r.evBuf = store.Event{Kind: store.EvPublished, Time: now, Client: from, Msg: msg, Targets: targets}
		r.ev = &r.evBuf
	}
	return r
}

func cloneIDs(ids []uint32) []uint32 {
	if len(ids) == 0 {
		return nil
	}
	return append([]uint32(nil), ids...)
}

// deliver hands a committed message to its sessions. Stored targets the
// store skipped (Seq 0: the session was dropped meanwhile) get nothing.
func (r *routed) deliver(b *Broker) {
	b.afterLimits(r) // queue limit decisions of the commit (queuelimit.go)
	if r.ev != nil {
		for i, t := range r.ev.Targets {
			if t.Seq == 0 {
				continue
			}
			b.deliver(r.stored[i], session.Delivery{Seq: t.Seq, QoS: t.QoS, Retain: t.Retain, SubIDs: t.SubIDs, Msg: r.msg}, r.from)
		}
	}
	for _, v := range r.volatile {
		b.deliver(v.s, v.d, r.from)
	}
}

// setRetained applies a committed retained publish to the in-memory index.
func (b *Broker) setRetained(msg *store.Message) {
	if len(msg.Payload) == 0 {
		b.retained.Delete(msg.Topic)
		return
	}
	b.retained.Set(msg.Topic, msg)
}

// onPublish handles PUBLISH from the client: route, commit, and (in pipeline
// order, after the commit is durable) deliver and acknowledge.
func (c *conn) onPublish(p *wire.Publish) bool {
	b := c.b
	s := c.sess
	b.stats.MessagesReceived.Add(1)
	if proceed, keep := c.admitPublish(p); !proceed { // aliases, quota, capabilities (inbound5.go)
		return keep
	}
	if ok, keep := c.admitSecurity(p); !ok { // rate, topic limits, ACL (limits.go)
		return keep
	}
	if isSysTopic(p.Topic) {
		return c.refuseSysPublish(p) // $SYS/ is the broker's (sys.go)
	}
	if p.QoS == 2 {
		s.mu.Lock()
		_, dup := s.inbound[p.PacketID]
		if !dup {
			s.inbound[p.PacketID] = struct{}{}
		}
		s.mu.Unlock()
		if dup {
			// Already ours: acknowledge again, deliver nothing (exactly once).
			st := c.pl.add(func(error) { c.send(&wire.Ack{Kind: wire.PUBREC, PacketID: p.PacketID}) })
			if st != nil {
				c.pl.complete(st, nil)
			}
			return true
		}
	}
	now := b.now()
	msg := &store.Message{
		Topic:       p.Topic,
		Payload:     p.Payload,
		QoS:         p.QoS,
		Retain:      p.Retain,
		From:        c.clientID,
		PublishedAt: now.UnixNano(),
	}
	if c.version == wire.V5 && p.Props != nil {
		msg.Props, msg.ExpiresAt = storedProps(p.Props, now)
	}
	var res retainedReservation // room under the retained limits (retainlimit.go)
	if msg.Retain {
		var ok bool
		if res, ok = b.reserveRetained(msg); !ok {
			return c.refuseRetainedFull(p, retainedSize(msg))
		}
	}
	r := b.route(msg, c.clientID, now.UnixNano())
	r.from = c
	b.limitQueues(r, true)
	var evs []*store.Event
	if r.ev != nil {
		evs = append(evs, r.ev)
	}
	if p.QoS == 2 && s.persistent {
		if r.ev == nil {
			// Nothing to queue or retain: the event records the packet id
			// (and, for the log, the message nobody subscribed to).
			r.ev = &store.Event{Kind: store.EvPublished, Time: now.UnixNano(), Client: c.clientID, Msg: msg}
			evs = append(evs, r.ev)
		}
		r.ev.InboundPID = p.PacketID
	}
	// A retained QoS 0 change is synced too: nobody waits for an ack, but
	// subscribers see it and, after a crash, so does everyone who reads
	// the retained value; unsynced, a power cut could bring back a value
	// somebody saw replaced or deleted.
	durable := (p.QoS > 0 || p.Retain) && len(evs) > 0
	readAt := c.tally.readAt // for the ack latency (counters.go)
	st := c.pl.addSized(len(p.Payload)+len(p.Topic), func(err error) {
		if msg.Retain {
			b.settleRetained(msg, res, err == nil && !r.refused())
		}
		if isNoSpace(err) {
			c.refuseNoSpace(p) // free space below the reserve (storefull.go)
			return
		}
		if err != nil {
			c.failCommit(err)
			return
		}
		if r.refused() {
			c.refuseQueueFull(p, r) // a subscriber's queue is full (queuelimit.go)
			return
		}
		if p.QoS > 0 {
			b.observeAck(readAt)
		}
		// The acknowledgement is queued before the deliveries, so that a
		// client subscribed to its own topic gets its PUBACK / PUBREC
		// before the copy of its message unless the writer was already
		// part-way through a batch (MQTT does not order the two; both are
		// durable now).
		switch p.QoS {
		case 1:
			c.inboundAcked(1)
			c.sendAck(wire.PUBACK, p.PacketID, c.noMatch(r))
		case 2:
			c.sendAck(wire.PUBREC, p.PacketID, c.noMatch(r))
		}
		r.deliver(b)
	})
	if st == nil {
		if msg.Retain {
			b.settleRetained(msg, res, false)
		}
		return false
	}
	c.stage(evs, durable, func(err error) { c.pl.complete(st, err) })
	return true
}

// noMatch is the 5.0 "no matching subscribers" reason code when nobody got
// the message.
func (c *conn) noMatch(r *routed) wire.ReasonCode {
	if c.version == wire.V5 && r.matched == 0 {
		return wire.NoMatchingSubscribers
	}
	return wire.Success
}

// onPubrel completes an inbound QoS 2 flow: forget the packet id (durably,
// for a persistent session) and answer PUBCOMP.
func (c *conn) onPubrel(p *wire.Ack) {
	s := c.sess
	c.inboundReleased(p.PacketID)
	s.mu.Lock()
	_, known := s.inbound[p.PacketID]
	delete(s.inbound, p.PacketID)
	s.mu.Unlock()
	var evs []*store.Event
	if known && s.persistent {
		evs = append(evs, &store.Event{Kind: store.EvReleased, Time: c.b.now().UnixNano(), Client: s.id, PacketID: p.PacketID})
	}
	code := wire.Success
	if !known && c.version == wire.V5 {
		code = wire.PacketIDNotFound
	}
	st := c.pl.add(func(err error) {
		if err != nil {
			c.failCommit(err)
			return
		}
		c.sendAck(wire.PUBCOMP, p.PacketID, code)
	})
	if st == nil {
		return
	}
	c.stage(evs, true, func(err error) { c.pl.complete(st, err) })
}

// onDeliveryAck handles PUBACK, PUBREC and PUBCOMP for messages the broker
// sent. Removing a finished delivery need not be synced (a crash can only
// redeliver it: QoS 1 may duplicate, and a QoS 2 one in PUBREC state is
// answered with PUBREL again); the PUBREC state must be durable before
// PUBREL goes out, or a crash would resend a PUBLISH the client completed.
func (c *conn) onDeliveryAck(p *wire.Ack) {
	b := c.b
	s := c.sess
	if p.Kind == wire.PUBREC && c.version == wire.V5 && p.ReasonCode.IsError() {
		c.onPubrecRefusal(p)
		return
	}
	s.mu.Lock()
	res, d := s.out.Ack(byte(p.Kind), p.PacketID)
	s.mu.Unlock()
	now := b.now().UnixNano()
	switch res {
	case session.AckCompleted:
		if s.persistent {
			// No fsync needed: if a crash loses the removal, the message
			// is redelivered, which QoS 1 allows and a QoS 2 receiver
			// answers without delivering again.
			c.stageAck(store.Event{Kind: store.EvAcked, Time: now, Client: s.id, QSeq: d.Seq})
		}
		b.stats.MessagesSent.Add(1)
		c.wake()
	case session.AckPubrecDone:
		pid := p.PacketID
		if !s.persistent {
			c.sendAck(wire.PUBREL, pid, 0)
			return
		}
		c.stageOne(&store.Event{Kind: store.EvPubrecReceived, Time: now, Client: s.id, QSeq: d.Seq}, true, func(err error) {
			if err != nil {
				c.failCommit(err)
				return
			}
			c.sendAck(wire.PUBREL, pid, 0)
		})
	default:
		if p.Kind == wire.PUBREC && c.version == wire.V5 {
			c.send(&wire.Ack{Kind: wire.PUBREL, PacketID: p.PacketID, ReasonCode: wire.PacketIDNotFound})
			return
		}
		c.log.Debug("acknowledgement for unknown packet id ignored", "packet", p.Kind, "pid", p.PacketID)
	}
}

// onPubrecRefusal handles a 5.0 PUBREC with an error code: the client
// refused the message, the QoS 2 exchange is over (no PUBREL), and the
// delivery leaves the window and the queue like an acknowledged one.
func (c *conn) onPubrecRefusal(p *wire.Ack) {
	s := c.sess
	s.mu.Lock()
	d, ok := s.out.Refused(p.PacketID)
	s.mu.Unlock()
	if !ok {
		c.log.Debug("PUBREC with an error code for an unknown packet id ignored", "pid", p.PacketID, "reason", p.ReasonCode)
		return
	}
	c.log.Info("client refused a QoS 2 delivery", "topic", d.Msg.Topic, "reason", p.ReasonCode)
	if s.persistent {
		c.stageOne(&store.Event{Kind: store.EvDropped, Time: c.b.now().UnixNano(), Client: s.id, QSeq: d.Seq,
			Reason: fmt.Sprintf("refused by the client with PUBREC 0x%02X", byte(p.ReasonCode))}, false, nil)
	}
	c.b.stats.drop(DropRefused, 1)
	c.wake()
}
