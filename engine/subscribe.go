package engine

import (
	"strings"

	"github.com/cairn-mqtt/cairn/engine/session"
	"github.com/cairn-mqtt/cairn/engine/topics"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// onSubscribe adds the subscriptions to the trie at once (so this
// connection's next PUBLISH already sees them), commits them for a
// persistent session, and after the commit answers SUBACK and sends the
// matching retained messages. For a persistent session the retained
// messages are queued in the store in the same batch, so a disconnect
// before they are acknowledged does not lose them.
func (c *conn) onSubscribe(p *wire.Subscribe) {
	b := c.b
	s := c.sess
	now := b.now()
	codes := make([]wire.ReasonCode, len(p.Subscriptions))
	var evs []*store.Event
	var retained []*routed
	var subID uint32
	if p.Props != nil && len(p.Props.SubscriptionIDs) > 0 {
		subID = p.Props.SubscriptionIDs[0]
	}
	f := &b.opts.Features
	if subID != 0 && f.NoSubscriptionIDs {
		c.protocolError(wire.SubIDsNotSupported, "subscription identifiers are not available")
		return
	}
	var reason string
	full := s.persistent && b.store.SpaceLow() // no room for new subscriptions (storefull.go)
	var undo []subUndo
	for i, sub := range p.Subscriptions {
		if err := wire.ValidateTopicFilter(sub.Filter); err != nil {
			c.log.Info("subscription refused: invalid topic filter", "filter", sub.Filter, "err", err)
			codes[i] = c.failCode(wire.TopicFilterInvalid)
			reason = "invalid topic filter"
			continue
		}
		if code, why := f.subscriptionRefusal(sub.Filter); code != 0 {
			c.log.Info("subscription refused", "filter", sub.Filter, "why", why)
			codes[i], reason = c.failCode(code), why
			continue
		}
		if code, ok := c.admitFilter(sub.Filter); !ok {
			codes[i] = code
			continue
		}
		_, _, shared, _ := wire.ParseSharedFilter(sub.Filter)
		if shared && sub.NoLocal && c.version == wire.V5 {
			c.protocolError(wire.ProtocolError, "no local on a shared subscription")
			return
		}
		if c.bridge {
			sub.NoLocal, sub.RetainAsPublished = true, true
		}
		qos := min(sub.QoS, f.maxQoS())
		ts := topics.Sub{QoS: qos, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, SubID: subID}
		codes[i] = wire.ReasonCode(qos)
		if full {
			continue
		}
		if s.persistent {
			prev, had := b.subs.Lookup(s.id, sub.Filter)
			undo = append(undo, subUndo{filter: sub.Filter, set: ts, prev: prev, had: had})
		}
		isNew := b.subs.Subscribe(s.id, sub.Filter, ts)
		if s.persistent {
			evs = append(evs, &store.Event{Kind: store.EvSubscribed, Time: now.UnixNano(), Client: s.id, Filter: sub.Filter,
				Sub: &store.Subscription{QoS: qos, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, SubID: subID}})
		}
		if shared || sub.RetainHandling == 2 || (sub.RetainHandling == 1 && !isNew) {
			continue
		}
		retained = append(retained, b.retainedFor(s, sub.Filter, qos, subID, now.UnixNano())...)
	}
	for _, r := range retained {
		if r.ev != nil {
			evs = append(evs, r.ev)
		}
	}
	st := c.pl.add(func(err error) {
		if full || isNoSpace(err) {
			c.refuseSubscribeNoSpace(p, codes, undo)
			return
		}
		if err != nil {
			c.failCommit(err)
			return
		}
		c.send(&wire.Suback{PacketID: p.PacketID, ReasonCodes: codes, Props: c.reasonProps(reason)})
		for _, r := range retained {
			r.deliver(b)
		}
	})
	if st == nil {
		return
	}
	b.commit(evs, len(evs) > 0, func(err error) { c.pl.complete(st, err) })
}

// retainedFor builds the deliveries of the retained messages matching filter
// for a new subscription: always with RETAIN set; queued in the store for a
// persistent session (QoS > 0), from memory otherwise.
func (b *Broker) retainedFor(s *Session, filter string, granted byte, subID uint32, now int64) []*routed {
	var out []*routed
	b.retained.Match(filter, func(topic string, m *store.Message) bool {
		if m.RetainedExpired(now) || !b.mayReceive(s, topic) { // 5.0 expiry or server TTL, swept or not; the ACL
			return true
		}
		qos := min(m.QoS, granted)
		var ids []uint32
		if subID != 0 {
			ids = []uint32{subID}
		}
		r := &routed{msg: m, matched: 1}
		if s.persistent && qos > 0 {
			body := *m
			body.Retain = false // a queued copy: applying it must not set the retained value again
			r.msg = &body
			r.ev = &store.Event{Kind: store.EvPublished, Time: now, Client: m.From, Msg: &body,
				Targets: []store.Target{{Client: s.id, QoS: qos, Retain: true, SubIDs: ids}}}
			r.stored = []*Session{s}
			b.limitQueues(r, false)
		} else {
			r.volatile = []volatileDelivery{{s: s, d: session.Delivery{QoS: qos, Retain: true, SubIDs: ids, Msg: m}}}
		}
		out = append(out, r)
		return true
	})
	return out
}

// failCode is the SUBACK / UNSUBACK failure code for the connection's
// version: 3.1.1 has only 0x80.
func (c *conn) failCode(code5 wire.ReasonCode) wire.ReasonCode {
	if c.version == wire.V5 {
		return code5
	}
	return wire.SubackFailure3
}

// onUnsubscribe removes subscriptions, durably for a persistent session,
// then answers UNSUBACK.
func (c *conn) onUnsubscribe(p *wire.Unsubscribe) {
	b := c.b
	s := c.sess
	now := b.now().UnixNano()
	codes := make([]wire.ReasonCode, len(p.Filters))
	var evs []*store.Event
	for i, f := range p.Filters {
		if err := wire.ValidateTopicFilter(f); err != nil && !strings.HasPrefix(f, "$share/") {
			codes[i] = wire.TopicFilterInvalid
			continue
		}
		if b.subs.Unsubscribe(s.id, f) {
			if s.persistent {
				evs = append(evs, &store.Event{Kind: store.EvUnsubscribed, Time: now, Client: s.id, Filter: f})
			}
		} else {
			codes[i] = wire.NoSubscriptionExisted
		}
	}
	ack := &wire.Unsuback{PacketID: p.PacketID}
	if c.version == wire.V5 {
		ack.ReasonCodes = codes
	}
	st := c.pl.add(func(err error) {
		if err != nil {
			c.failCommit(err)
			return
		}
		c.send(ack)
	})
	if st == nil {
		return
	}
	b.commit(evs, len(evs) > 0, func(err error) { c.pl.complete(st, err) })
}
