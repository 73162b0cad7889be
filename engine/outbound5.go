package engine

import "github.com/cairn-mqtt/cairn/wire"

// What the writer does to 5.0 packets on their way out: it respects the
// limits the client set in CONNECT, and it may replace repeated topic names
// by topic aliases.
//
// Invariants (writer goroutine only):
//   - No packet larger than the client's Maximum Packet Size is written. A
//     control packet first loses its Reason String and User Properties
//     (§3.1.2.11.4 lets the server drop them to fit); a PUBLISH that does not
//     fit is dropped for that client (appendAction), as §3.1.2.11.4 says.
//   - With Request Problem Information 0, acks, SUBACK, UNSUBACK and AUTH
//     carry no Reason String or User Property (§3.1.2.11.7); CONNACK,
//     DISCONNECT and PUBLISH may.
//   - Outbound topic aliases (Features.OutboundTopicAliases): an alias is
//     never above the client's Topic Alias Maximum nor outAliasCap; a topic
//     is sent with its alias the first time (which sets the client's
//     mapping), then as an empty topic with the alias. The mapping changes
//     only when that PUBLISH is actually written into the batch, so it
//     always matches what the client received. Slots are reused round
//     robin when all are taken.

// outAliasCap bounds the aliases the broker uses toward one client,
// whatever the client allows: the memory per connection stays small.
const outAliasCap = 64

// fitControl applies the client's limits to a control packet; nil means it
// cannot be sent at all.
func (c *conn) fitControl(p wire.Packet) wire.Packet {
	pp, ack := controlProps(p)
	if pp == nil {
		return p
	}
	if *pp != nil && ack && !c.v5.problemInfo {
		stripProblem(pp)
	}
	if c.maxOut > 0 && uint32(wire.Size(p, wire.V5)) > c.maxOut {
		stripProblem(pp)
		if uint32(wire.Size(p, wire.V5)) > c.maxOut {
			c.log.Warn("control packet larger than the client's maximum packet size; not sent", "packet", p.Type(), "max", c.maxOut)
			return nil
		}
	}
	return p
}

// controlProps returns where a control packet keeps its properties, and
// whether it is one of those that lose problem information on request.
func controlProps(p wire.Packet) (_ **wire.Properties, ack bool) {
	switch x := p.(type) {
	case *wire.Ack:
		return &x.Props, true
	case *wire.Suback:
		return &x.Props, true
	case *wire.Unsuback:
		return &x.Props, true
	case *wire.Auth:
		return &x.Props, true
	case *wire.Connack:
		return &x.Props, false
	case *wire.Disconnect:
		return &x.Props, false
	}
	return nil, false
}

// stripProblem removes the Reason String and User Properties (a copy: the
// Properties may be shared).
func stripProblem(pp **wire.Properties) {
	if *pp == nil || ((*pp).ReasonString == "" && len((*pp).User) == 0) {
		return
	}
	cp := **pp
	cp.ReasonString, cp.User = "", nil
	*pp = &cp
}

// outAlias gives pub a topic alias toward this client. It returns the slot
// to record with recordAlias once pub is written, or -1.
func (c *conn) outAlias(pub *wire.Publish) int {
	st := &c.v5
	if st.aliasOutMax == 0 {
		return -1
	}
	if st.aliasOut == nil {
		n := int(min(st.aliasOutMax, outAliasCap))
		st.aliasOut = make(map[string]uint16, n)
		st.aliasSlots = make([]string, n)
		st.aliasVals = make([]uint16, n)
		for i := range st.aliasVals {
			st.aliasVals[i] = uint16(i + 1)
		}
	}
	if pub.Props == nil {
		pub.Props = &wire.Properties{}
	}
	if a, ok := st.aliasOut[pub.Topic]; ok {
		pub.Props.TopicAlias = &st.aliasVals[a-1]
		pub.Topic = ""
		return -1
	}
	slot := int(st.aliasNext)
	pub.Props.TopicAlias = &st.aliasVals[slot]
	return slot
}

// recordAlias makes slot the alias of topic (the PUBLISH that set it was
// written).
func (c *conn) recordAlias(slot int, topic string) {
	st := &c.v5
	if old := st.aliasSlots[slot]; old != "" {
		delete(st.aliasOut, old)
	}
	st.aliasSlots[slot] = topic
	st.aliasOut[topic] = uint16(slot + 1)
	st.aliasNext = uint16((slot + 1) % len(st.aliasSlots))
}
