package engine

import (
	"sync"

	"github.com/cairn-mqtt/cairn/engine/loggate"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// The limits on retained messages (MaintOptions.RetainedLimit*).
//
// Retained messages are served from memory (b.retained holds them, payloads
// included) as well as kept in the store, so without a bound a client that
// retains messages on ever new topics grows the broker without end. The
// limits bound how many there are and how much memory they take, measured
// by retainedSize.
//
// Invariants:
//   - Only a client's PUBLISH that would add to the retained set is
//     checked: a new retained topic, or a larger value for one already
//     retained. Replacing a value with one no larger and clearing one (empty
//     payload) are always taken, so a full set can always be changed and
//     emptied.
//   - Exact under concurrency: admission reserves room (quota.pending*)
//     under quota.mu, and the commit's completion turns the reservation into
//     the index change under the same mutex, so concurrent publishers cannot
//     overshoot. (The one inexactness: a replacement admitted without a
//     reservation whose topic another client clears before it commits adds
//     a topic; at most one per such race.)
//   - Refused whole, before anything is stored or delivered, with the
//     answers of a full disk (storefull.go): a 5.0 client gets PUBACK or
//     PUBREC 0x97 (QoS 0: DISCONNECT 0x97); a 3.x client has its connection
//     closed without an acknowledgement (3.x allows only an ack or a close,
//     MQTT-3.3.5-2), so it keeps a QoS 1/2 message and sends it again later.
//     Every refusal is counted (MaintStats.RetainedFullRejected) and logged
//     as a warning (gated: the first at once, then one line per 10 s).
//   - Not checked: wills (one per session, accepted with its CONNECT), the
//     broker's $SYS topics, and what is restored from the store at start: a
//     limit lowered below the stored set refuses new topics until enough are
//     cleared or expire.

// messageBytes is the memory of a store.Message record itself (amd64).
const messageBytes = 112

// retainedSize is the memory a retained message holds: its record, topic,
// payload, properties and publisher id. The index adds what it takes for
// the message (its topic copy and its nodes: topics.Retained.Bytes), so that
// the byte limit bounds memory even for many tiny messages deep in the
// topic tree.
func retainedSize(m *store.Message) int64 {
	return int64(len(m.Topic)+len(m.Payload)+len(m.Props)+len(m.From)) + messageBytes
}

// retainedFullReason is the reason string of a refusal.
const retainedFullReason = "the broker's retained messages are at their limit"

// retainedQuota holds the reservations of retained publishes admitted and
// not yet committed.
type retainedQuota struct {
	mu           sync.Mutex
	pendingCount int
	pendingBytes int64
	refusedLog   loggate.Gate
}

// retainedReservation is what one admitted publish reserved.
type retainedReservation struct {
	count int
	bytes int64
}

// retainedLimited reports whether any retained limit is set.
func (o *MaintOptions) retainedLimited() bool {
	return o.RetainedLimitMessages > 0 || o.RetainedLimitBytes > 0
}

// reserveRetained admits a client's retained publish of msg under the
// limits, reserving the room it takes; ok false means it is refused.
func (b *Broker) reserveRetained(msg *store.Message) (res retainedReservation, ok bool) {
	o := &b.opts.Maint
	if !o.retainedLimited() || len(msg.Payload) == 0 {
		return res, true
	}
	size := retainedSize(msg)
	q := &b.retainedQuota
	q.mu.Lock()
	defer q.mu.Unlock()
	if old, had := b.retained.Get(msg.Topic); had {
		grow := size - retainedSize(old)
		if grow <= 0 {
			return res, true
		}
		res.bytes = grow
	} else {
		res = retainedReservation{count: 1, bytes: size + b.retained.SetCost(msg.Topic)}
	}
	if o.RetainedLimitMessages > 0 && b.retainedCount()+q.pendingCount+res.count > o.RetainedLimitMessages {
		return retainedReservation{}, false
	}
	if o.RetainedLimitBytes > 0 && b.retained.Bytes()+q.pendingBytes+res.bytes > o.RetainedLimitBytes {
		return retainedReservation{}, false
	}
	q.pendingCount += res.count
	q.pendingBytes += res.bytes
	return res, true
}

// retainedCount is the number of retained messages the limit counts: the
// broker's own $SYS topics are not among them.
func (b *Broker) retainedCount() int {
	b.sys.mu.Lock()
	sys := len(b.sys.topics)
	b.sys.mu.Unlock()
	return max(b.retained.Len()-sys, 0)
}

// settleRetained ends a reservation once the publish's commit completed:
// if committed, msg becomes the topic's retained value in the same step.
func (b *Broker) settleRetained(msg *store.Message, res retainedReservation, committed bool) {
	if res == (retainedReservation{}) {
		if committed {
			b.setRetained(msg)
		}
		return
	}
	q := &b.retainedQuota
	q.mu.Lock()
	if committed {
		b.setRetained(msg)
	}
	q.pendingCount -= res.count
	q.pendingBytes -= res.bytes
	q.mu.Unlock()
}

// refuseRetainedFull answers a retained PUBLISH the limits refused, in
// pipeline order (after the answers to the packets before it). Nothing of
// it was stored or delivered. It returns false if the connection is ending.
func (c *conn) refuseRetainedFull(p *wire.Publish, size int64) bool {
	b := c.b
	b.stats.Maint.RetainedFullRejected.Add(1)
	if p.QoS == 2 {
		c.sess.mu.Lock()
		delete(c.sess.inbound, p.PacketID)
		c.sess.mu.Unlock()
	}
	if n, ok := b.retainedQuota.refusedLog.Pass(b.now()); ok {
		o := &b.opts.Maint
		c.log.Warn("retained publish refused: the retained messages are at their limit", "topic", p.Topic, "qos", p.QoS,
			"size", size, "retained", b.retainedCount(), "retained_bytes", b.retained.Bytes(),
			"limit_messages", o.RetainedLimitMessages, "limit_bytes", o.RetainedLimitBytes, "refusals", n)
	}
	st := c.pl.add(func(error) {
		switch {
		case c.version != wire.V5:
			c.log.Info("closing the connection: a 3.x client cannot be told its PUBLISH was refused", "packet_id", p.PacketID, "qos", p.QoS)
			c.closeWith(endRetainedFull)
		case p.QoS == 0:
			c.disconnectWith(wire.QuotaExceeded, retainedFullReason)
			c.closeWith(endRetainedFull)
		default:
			c.inboundRefused(p)
			kind := wire.PUBACK
			if p.QoS == 2 {
				kind = wire.PUBREC
			}
			c.send(&wire.Ack{Kind: kind, PacketID: p.PacketID, ReasonCode: wire.QuotaExceeded, Props: c.reasonProps(retainedFullReason)})
		}
	})
	if st == nil {
		return false
	}
	c.pl.complete(st, nil)
	return true
}
