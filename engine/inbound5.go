package engine

import (
	"unicode/utf8"

	"github.com/cairn-mqtt/cairn/wire"
)

// The checks a client's PUBLISH passes before it is routed: topic alias
// resolution, the receive-maximum quota, the broker's capability limits and
// the payload format.
//
// Invariants:
//   - A 5.0 client never has more than Features.ReceiveMaximum QoS 1/2
//     PUBLISHes unanswered: QoS 1 counts until its PUBACK is queued, QoS 2
//     from the PUBLISH until the PUBREL (the client may send the next one
//     only after PUBCOMP, which follows). The next one is answered with
//     DISCONNECT 0x93. A QoS 2 retransmission on the same connection is not
//     counted twice; PUBLISHes refused with an error code are not counted.
//   - Topic aliases are per connection (reader goroutine only): an alias
//     above the announced maximum is DISCONNECT 0x94, an empty topic with an
//     alias never set a Protocol Error. The routed and stored message always
//     carries the full topic name (storedProps drops the alias).
//   - A PUBLISH above the maximum QoS, retained when retain is unavailable,
//     or carrying a Subscription Identifier (only servers send those) ends
//     the connection (5.0: DISCONNECT 0x9B / 0x9A / 0x82).
//   - A payload that is not UTF-8 although its Payload Format Indicator says
//     so is refused with PUBACK / PUBREC 0x99 (QoS 0: DISCONNECT 0x99) and
//     neither routed nor retained.

// admitPublish applies the checks to p (resolving its topic alias in
// place). proceed reports that p is to be routed; when it is not, keep
// reports whether the connection stays open (the refusal, if any, queued).
func (c *conn) admitPublish(p *wire.Publish) (proceed, keep bool) {
	f := &c.b.opts.Features
	if p.QoS > f.maxQoS() {
		return false, c.protocolError(wire.QoSNotSupported, "PUBLISH above the maximum QoS", "qos", p.QoS)
	}
	if p.Retain && f.NoRetain {
		return false, c.protocolError(wire.RetainNotSupported, "retained PUBLISH but retain is not available")
	}
	if c.version != wire.V5 {
		return true, true
	}
	if pp := p.Props; pp != nil {
		if len(pp.SubscriptionIDs) > 0 {
			return false, c.protocolError(wire.ProtocolError, "PUBLISH from a client with a Subscription Identifier")
		}
		if pp.TopicAlias != nil && !c.resolveAlias(p) {
			return false, false
		}
		if pp.PayloadFormat != nil && *pp.PayloadFormat == 1 && !utf8.Valid(p.Payload) {
			return false, c.refusePublish(p, wire.PayloadFormatInvalid, "payload is not UTF-8 as its payload format indicator says")
		}
	}
	if p.QoS == 0 {
		return true, true
	}
	st := &c.v5
	st.inMu.Lock()
	defer st.inMu.Unlock()
	if p.QoS == 2 {
		if _, counted := st.inQoS2[p.PacketID]; counted {
			return true, true
		}
	}
	if int(st.inQoS1.Load())+len(st.inQoS2) >= int(f.ReceiveMaximum) {
		c.b.stats.Security.ReceiveMaximumExceeded.Add(1)
		return false, c.protocolError(wire.ReceiveMaximumExceeded, "more unacknowledged QoS 1/2 PUBLISHes than the receive maximum",
			"receive_maximum", f.ReceiveMaximum)
	}
	if p.QoS == 1 {
		st.inQoS1.Add(1)
	} else {
		if st.inQoS2 == nil {
			st.inQoS2 = make(map[uint16]struct{})
		}
		st.inQoS2[p.PacketID] = struct{}{}
	}
	return true, true
}

// inboundAcked releases a QoS 1 PUBLISH's quota when its PUBACK is queued.
func (c *conn) inboundAcked(qos byte) {
	if qos == 1 && c.version == wire.V5 {
		c.v5.inQoS1.Add(-1)
	}
}

// inboundReleased releases a QoS 2 PUBLISH's quota at its PUBREL.
func (c *conn) inboundReleased(pid uint16) {
	c.v5.inMu.Lock()
	delete(c.v5.inQoS2, pid)
	c.v5.inMu.Unlock()
}

// inboundRefused releases the quota of a QoS 1/2 PUBLISH answered with an
// error reason code: its flow ends there (no PUBREL follows a failed
// PUBREC).
func (c *conn) inboundRefused(p *wire.Publish) {
	if p.QoS == 2 {
		c.inboundReleased(p.PacketID)
	} else {
		c.inboundAcked(p.QoS)
	}
}

// resolveAlias maps p's topic alias (§3.3.2.3.4): an empty topic takes the
// alias's topic, a topic sets it.
func (c *conn) resolveAlias(p *wire.Publish) bool {
	a := *p.Props.TopicAlias
	if max := c.b.opts.Features.TopicAliasMaximum; a > max {
		return c.protocolError(wire.TopicAliasInvalid, "topic alias above the topic alias maximum", "alias", a, "max", max)
	}
	if p.Topic == "" {
		t, ok := c.v5.aliasIn[a]
		if !ok {
			return c.protocolError(wire.ProtocolError, "empty topic with a topic alias that was never set", "alias", a)
		}
		p.Topic = t
		return true
	}
	if c.v5.aliasIn == nil {
		c.v5.aliasIn = make(map[uint16]string)
	}
	c.v5.aliasIn[a] = p.Topic
	return true
}

// refusePublish answers a QoS 1/2 PUBLISH with an error code, in pipeline
// order, without routing it; a QoS 0 one (which has no answer) ends the
// connection with DISCONNECT code. It returns whether the connection stays.
func (c *conn) refusePublish(p *wire.Publish, code wire.ReasonCode, reason string) bool {
	if p.QoS == 0 {
		return c.protocolError(code, reason)
	}
	c.log.Info("PUBLISH refused", "topic", p.Topic, "qos", p.QoS, "reason", code, "why", reason)
	kind := wire.PUBACK
	if p.QoS == 2 {
		kind = wire.PUBREC
	}
	ack := &wire.Ack{Kind: kind, PacketID: p.PacketID, ReasonCode: code, Props: c.reasonProps(reason)}
	st := c.pl.add(func(error) { c.send(ack) })
	if st == nil {
		return false
	}
	c.pl.complete(st, nil)
	return true
}

// reasonProps is a Reason String for an ack, unless the client asked for no
// problem information.
func (c *conn) reasonProps(reason string) *wire.Properties {
	if c.version != wire.V5 || !c.v5.problemInfo || reason == "" {
		return nil
	}
	return &wire.Properties{ReasonString: reason}
}
