package engine

import (
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// Per-session limits of the durable queues (MaintOptions.QueueLimit*).
//
// The limit travels with the publish event (store.QueueLimit) and is
// enforced inside the store's commit against the exact queue size (see
// store/limit.go), so concurrent publishers cannot overshoot it. The engine
// only chooses the policy per kind of message and acts on the decisions the
// commit recorded:
//   - a PUBLISH from a client, policy reject: refused whole when any
//     subscriber's queue is full (refusePublish: 5.0 reason 0x97, 3.x no
//     acknowledgement);
//   - a will or a retained message sent on subscribe, policy reject: nobody
//     can be told, so only the full queue goes without (LimitSkip);
//   - policy drop-oldest, any message: the oldest queued messages not in
//     flight are dropped to make room; they are also taken out of the
//     session's in-memory outbox so they are not sent after being dropped.
//
// Every refusal, skip and drop is in the logged event, counted in
// MaintStats (and MessagesDropped for messages a subscriber loses) and
// logged. The limits concern persistent sessions' durable queues only; what
// a clean session holds in memory is bounded by MaxQueuedMemory.

// limitQueues attaches the queue limit to a routed message's event before it
// is committed. fromClient says the message is a client's PUBLISH (which
// reject may refuse whole).
func (b *Broker) limitQueues(r *routed, fromClient bool) {
	o := &b.opts.Maint
	if r.ev == nil || len(r.ev.Targets) == 0 || (o.QueueLimitMessages <= 0 && o.QueueLimitBytes <= 0) {
		return
	}
	lim := &store.QueueLimit{Count: uint32(o.QueueLimitMessages), Bytes: o.QueueLimitBytes}
	switch {
	case o.QueueLimitPolicy == QueueDropOldest:
		lim.Policy = store.LimitDropOldest
		// Entries that may be in flight toward the client are never dropped.
		for i, s := range r.stored {
			s.mu.Lock()
			r.ev.Targets[i].SentBelow = s.out.SentBelow()
			s.mu.Unlock()
		}
	case fromClient:
		lim.Policy = store.LimitReject
	default:
		lim.Policy = store.LimitSkip
	}
	r.ev.Limit = lim
}

// refused reports whether the commit refused the message whole (policy
// reject, a queue was full).
func (r *routed) refused() bool { return r.ev != nil && r.ev.QueueFull != "" }

// refuseQueueFull answers a PUBLISH the commit refused: nothing was stored
// or delivered. A 5.0 client is told (0x97). A 3.x client cannot be told:
// for QoS 1 and 2 its connection is closed without an acknowledgement (3.x
// allows only a positive acknowledgement or a close, MQTT-3.3.5-2), so it
// keeps the message and sends it again on its next connection (left open,
// the unacknowledged packet would hold its in-flight slot for good). The
// QoS 2 packet id is forgotten so that the resend is evaluated as new, not
// answered as a duplicate.
func (c *conn) refuseQueueFull(p *wire.Publish, r *routed) {
	b := c.b
	b.stats.Maint.QueueFullRejected.Add(1)
	b.countRejected(r.ev.QueueFull) // internal.go
	if p.QoS == 2 {
		c.sess.mu.Lock()
		delete(c.sess.inbound, p.PacketID)
		c.sess.mu.Unlock()
	}
	c.log.Warn("publish refused: a subscriber's queue is full", "topic", p.Topic, "qos", p.QoS,
		"full_queue", r.ev.QueueFull, "limit_messages", r.ev.Limit.Count, "limit_bytes", r.ev.Limit.Bytes)
	if c.version != wire.V5 {
		if p.QoS > 0 {
			c.log.Info("closing the connection: a 3.x client cannot be told its PUBLISH was refused; it sends it again when it reconnects", "packet_id", p.PacketID)
			c.closeWith(endQueueFull)
		}
		return
	}
	c.inboundRefused(p)
	kind := wire.PUBACK
	if p.QoS == 2 {
		kind = wire.PUBREC
	}
	c.send(&wire.Ack{Kind: kind, PacketID: p.PacketID, ReasonCode: wire.QuotaExceeded})
}

// afterLimits acts on what a committed event's queue limit did: targets not
// enqueued and entries dropped for room are counted and logged, and dropped
// entries leave their session's outbox.
func (b *Broker) afterLimits(r *routed) {
	ev := r.ev
	if ev == nil || ev.Limit == nil {
		return
	}
	for _, t := range ev.Targets {
		if t.Seq != 0 {
			continue
		}
		b.stats.Maint.QueueFullSkipped.Add(1)
		b.stats.drop(DropQueueLimit, 1)
		b.countDropped(t.Client, 1) // internal.go
		b.log.Info("message not queued: the session's queue is full", "client", t.Client, "topic", r.msg.Topic,
			"qos", t.QoS, "limit_messages", ev.Limit.Count, "limit_bytes", ev.Limit.Bytes)
	}
	if len(ev.Dropped) == 0 {
		return
	}
	per := make(map[string][]uint64)
	for _, d := range ev.Dropped {
		per[d.Client] = append(per[d.Client], d.Seq)
	}
	for client, seqs := range per {
		if s := b.lookup(client); s != nil {
			s.mu.Lock()
			s.out.Discard(seqs)
			s.mu.Unlock()
		}
		b.stats.Maint.QueueFullDropped.Add(int64(len(seqs)))
		b.stats.drop(DropQueueLimit, int64(len(seqs)))
		b.countDropped(client, len(seqs)) // internal.go
		b.log.Info("queued messages dropped to make room: the session's queue is full", "client", client,
			"dropped", len(seqs), "oldest_seq", seqs[0], "limit_messages", ev.Limit.Count, "limit_bytes", ev.Limit.Bytes)
	}
}
