package engine

import (
	"errors"

	"github.com/cairn-mqtt/cairn/engine/topics"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// The broker's answers when the store's volume is low on space.
//
// The store's free-space guard (store/space.go) refuses every commit that
// would grow the store with new work, with an error wrapping
// store.ErrNoSpace, and applies nothing of it. The engine turns each refusal
// into the answer the protocol has for "not now", and keeps serving
// everything that needs no new space:
//   - PUBLISH QoS 1 / 2: a 5.0 client gets PUBACK / PUBREC 0x97 (quota
//     exceeded) and its receive-maximum quota back; a 3.x client, which has
//     no refusal code, has its connection closed without an
//     acknowledgement, so it keeps the message and sends it again (DUP)
//     when it reconnects. An inbound QoS 2 packet id is forgotten, so the
//     resend is evaluated anew. A PUBLISH QoS 0 that would be stored (a
//     retained value) ends the connection (5.0: DISCONNECT 0x97).
//   - CONNECT of a session that is not stored yet (5.0 session expiry > 0,
//     3.x clean session 0): CONNACK 0x97 (5.0) / 0x03 server unavailable
//     (3.x). Resuming a stored session is not growth and is accepted, so
//     subscribers can come back and drain their queues — which frees space.
//   - SUBSCRIBE of a persistent session: every filter refused, 5.0 SUBACK
//     0x97 / 3.x 0x80, the trie left as it was, no retained message sent.
//   - Everything else goes on: deliveries of what is stored, their
//     acknowledgements (which free space), UNSUBSCRIBE, PUBREL, session
//     ends and wills (MayUseReserve), QoS 0 and whatever only clean
//     sessions receive (nothing is stored for them).
//
// The store logs the condition (once when it starts, then once per
// interval, and when it ends); each refusal is counted in
// Stats.StoreFullRefusals and logged at debug level only.

const noSpaceReason = "the broker's disk is low on free space"

func isNoSpace(err error) bool { return errors.Is(err, store.ErrNoSpace) }

// refuseNoSpace answers a PUBLISH whose commit the store refused for lack
// of space. Nothing of it was stored or delivered.
func (c *conn) refuseNoSpace(p *wire.Publish) {
	c.b.stats.StoreFullRefusals.Add(1)
	if p.QoS == 2 {
		c.sess.mu.Lock()
		delete(c.sess.inbound, p.PacketID)
		c.sess.mu.Unlock()
	}
	c.log.Debug("publish refused: free space below the reserve", "topic", p.Topic, "qos", p.QoS, "retain", p.Retain)
	if c.version != wire.V5 {
		c.closeWith(endStoreFull) // no acknowledgement: the client sends it again
		return
	}
	if p.QoS == 0 {
		c.disconnectWith(wire.QuotaExceeded, noSpaceReason)
		c.closeWith(endStoreFull)
		return
	}
	c.inboundRefused(p)
	kind := wire.PUBACK
	if p.QoS == 2 {
		kind = wire.PUBREC
	}
	c.send(&wire.Ack{Kind: kind, PacketID: p.PacketID, ReasonCode: wire.QuotaExceeded, Props: c.reasonProps(noSpaceReason)})
}

// subUndo is what a SUBSCRIBE changed in the trie for one filter.
type subUndo struct {
	filter string
	set    topics.Sub // what the SUBSCRIBE put there
	prev   topics.Sub // what was there before
	had    bool       // whether there was one
}

// refuseSubscribeNoSpace answers a persistent session's SUBSCRIBE when the
// store has no room for it: every filter the SUBSCRIBE would have granted
// is refused. undo, if set, restores the trie where this SUBSCRIBE already
// changed it (the guard turned low between the packet and its commit) and
// nothing changed the filter since.
func (c *conn) refuseSubscribeNoSpace(p *wire.Subscribe, codes []wire.ReasonCode, undo []subUndo) {
	c.b.stats.StoreFullRefusals.Add(1)
	undoSubscribe(c.b.subs, c.sess.id, undo)
	out := make([]wire.ReasonCode, len(codes))
	for i, code := range codes {
		out[i] = code
		if code < 0x80 {
			out[i] = c.failCode(wire.QuotaExceeded)
		}
	}
	c.log.Debug("subscribe refused: free space below the reserve", "filters", len(p.Subscriptions))
	c.send(&wire.Suback{PacketID: p.PacketID, ReasonCodes: out, Props: c.reasonProps(noSpaceReason)})
}

// refuseConnectNoSpace answers a CONNECT whose new persistent session the
// store has no room for.
func (c *conn) refuseConnectNoSpace() bool {
	c.b.stats.StoreFullRefusals.Add(1)
	return c.refuse(wire.ConnRefusedServerUnavailable, wire.QuotaExceeded, "no new persistent session: "+noSpaceReason)
}

// undoSubscribe puts back, in reverse order, what a refused SUBSCRIBE set
// in the trie, where the filter still holds what it set: a later SUBSCRIBE
// of the same filter that was accepted meanwhile is not undone.
func undoSubscribe(t *topics.Trie, client string, undo []subUndo) {
	for i := len(undo) - 1; i >= 0; i-- {
		u := undo[i]
		if cur, ok := t.Lookup(client, u.filter); !ok || cur != u.set {
			continue
		}
		if u.had {
			t.Subscribe(client, u.filter, u.prev)
		} else {
			t.Unsubscribe(client, u.filter)
		}
	}
}
