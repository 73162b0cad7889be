package engine

import (
	"math"
	"time"

	"github.com/cairn-mqtt/cairn/engine/session"
	"github.com/cairn-mqtt/cairn/engine/topics"
	"github.com/cairn-mqtt/cairn/store"
)

// Handing a shared subscription's messages to another member.
//
// A shared subscription gives each message to one member. If that member's
// session ends before it acknowledged a QoS 1/2 message, MQTT 5.0 §4.8.2 says
// the server SHOULD send the message to another member of the group. A
// persistent member's session outlives its connection (its queue is in the
// store and is delivered when it reconnects), so this is about clean
// sessions — 3.1.1 clean session 1, 5.0 session expiry 0 — the usual shape
// of a pool of workers, whose unacknowledged messages live only in memory
// and would otherwise be lost with the session.
//
// When such a session ends (detach), the deliveries its shared
// subscriptions gave it and the client did not acknowledge (in flight
// without PUBREC, or not yet sent; session.Outbox.Unacknowledged) go, in
// their order, to the member the group picks next, as a new message would: a
// clean member gets it from memory, a persistent one in its stored queue,
// committed and synced first like any publish to it. The session is already
// out of the trie, so it cannot be picked again. Expired messages, and
// messages of a group with no member left, are dropped as the session's
// other messages are.

// A persistent member's queue is its own while its session lasts (it gets
// the messages when it reconnects). When the session expires, the entries
// of its stored queue that a shared subscription put there (the group is
// recorded in each entry, store.QueueEntry.Group) are handed off the same
// way, before the expiry is committed: a crash in between can duplicate a
// message (QoS 1 allows it), never lose one. A session that still has a
// shared subscription when it expires is read for it; one that has none
// (it unsubscribed with deliveries of the group still queued) only if a
// scan of its queue's entries, without their bodies, finds such an entry.

// handOffStoredQueue hands the shared-subscription entries of an expiring
// persistent session's stored queue to other members of their groups, a
// page at a time, each page sized like the writer's (about MaxQueuedBytes
// of messages). The session is already out of the trie.
func (b *Broker) handOffStoredQueue(id string, now time.Time) {
	from, avg := uint64(0), 0
	for {
		qms, err := b.store.ReadQueue(id, from, math.MaxUint64, b.pageFor(avg))
		if err != nil {
			b.log.Error("reading an expiring session's queue for its shared subscriptions failed; its messages are dropped with it", "client", id, "err", err)
			return
		}
		if len(qms) == 0 {
			return
		}
		var ds []session.Delivery
		for _, qm := range qms {
			if qm.Entry.Group != "" && qm.Msg != nil {
				ds = append(ds, session.Delivery{QoS: qm.Entry.QoS, Retain: qm.Entry.Retain, SubIDs: qm.Entry.SubIDs, Msg: qm.Msg, Group: qm.Entry.Group})
			}
		}
		if len(ds) > 0 {
			b.handOff(id, ds, now)
		}
		from, avg = qms[len(qms)-1].Seq+1, pageAverage(qms)
	}
}

// queueHasShared reports whether client's stored queue holds an entry a
// shared subscription put there; a read error counts as none (logged).
func (b *Broker) queueHasShared(client string) bool {
	has, err := b.store.QueueHasShared(client)
	if err != nil {
		b.log.Error("scanning an expiring session's queue for shared-subscription messages failed; they are dropped with it", "client", client, "err", err)
	}
	return has
}

// hasShared reports whether client subscribes to a shared subscription.
func (b *Broker) hasShared(client string) bool {
	for f := range b.subs.Subscriptions(client) {
		if _, _, shared := topics.SplitShared(f); shared {
			return true
		}
	}
	return false
}

// sharedUnacked is what a clean session's shared subscriptions gave it that
// the client did not acknowledge. Called with s.mu held.
func sharedUnacked(s *Session) []session.Delivery {
	if s.persistent {
		return nil
	}
	return s.out.Unacknowledged(func(d *session.Delivery) bool { return d.Group != "" })
}

// handOff gives ds, taken from an ended clean session, to other members of
// their groups.
func (b *Broker) handOff(from string, ds []session.Delivery, now time.Time) {
	var (
		evs    []*store.Event
		stored []*routed
	)
	for _, d := range ds {
		if d.Msg.ExpiresAt != 0 && d.Msg.ExpiresAt <= now.UnixNano() {
			b.stats.drop(DropExpired, 1)
			continue
		}
		m, ok := b.subs.PickShared(d.Group, b.isOnline)
		if !ok {
			b.log.Debug("unacknowledged shared message dropped: no member left", "client", from, "group", d.Group, "topic", d.Msg.Topic)
			continue
		}
		s := b.lookup(m.Client)
		if s == nil || !b.mayReceive(s, d.Msg.Topic) {
			continue
		}
		qos := min(d.Msg.QoS, m.QoS)
		retain := m.RetainAsPublished && d.Msg.Retain
		b.log.Debug("unacknowledged shared message handed to another member", "from", from, "to", m.Client, "group", d.Group, "topic", d.Msg.Topic)
		if !s.persistent || qos == 0 {
			b.deliver(s, session.Delivery{QoS: qos, Retain: retain, SubIDs: m.SubIDs, Msg: d.Msg, Group: m.Group}, nil)
			continue
		}
		// A new stored copy for the persistent member. Not a retained
		// publish (the retained value was set when it was published), so
		// the copy's Retain is off; the delivery's flag is in the target.
		msg := *d.Msg
		msg.Retain = false
		r := &routed{msg: &msg}
		r.stored = append(r.stBuf[:0], s)
		r.tgBuf[0] = store.Target{Client: m.Client, QoS: qos, Retain: retain, SubIDs: m.SubIDs, Group: m.Group}
		r.evBuf = store.Event{Kind: store.EvPublished, Time: now.UnixNano(), Client: msg.From, Msg: &msg, Targets: r.tgBuf[:1]}
		r.ev = &r.evBuf
		b.limitQueues(r, false)
		evs = append(evs, r.ev)
		stored = append(stored, r)
	}
	if len(evs) == 0 {
		return
	}
	b.commit(evs, true, func(err error) {
		if err != nil {
			b.log.Error("store commit failed handing shared messages to another member", "client", from, "err", err)
			return
		}
		for _, r := range stored {
			r.deliver(b)
		}
	})
}
