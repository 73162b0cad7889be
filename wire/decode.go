package wire

// Packet body decoder: turns the fixed header byte and the body of one
// packet into a packet struct.
//
// Invariants:
//   - checkHeader runs on the first byte before any body byte is looked at:
//     reserved packet type 0, AUTH outside 5.0, reserved flag bits (PUBREL,
//     SUBSCRIBE, UNSUBSCRIBE must be 0x2 — in MQTT 3.1 0xA too, a resend with
//     DUP — others 0) and PUBLISH QoS 3 or DUP on QoS 0 are all Malformed
//     Packet.
//   - Every decoder consumes the body exactly: missing bytes and trailing
//     bytes are Malformed Packet.
//   - Every decoded packet then passes validate (validate.go), so the
//     semantic rules and their reason codes live in one place, and anything
//     decoded can be re-encoded.
//   - Nothing here panics on any input, and decoded packets never alias the
//     body unless the caller hands it over (own).

import "strconv"

// checkHeader checks the type and flag bits of the fixed header byte hdr for
// version v (already normalized).
func checkHeader(hdr byte, v Version) error {
	t := PacketType(hdr >> 4)
	flags := hdr & 0x0F
	switch t {
	case 0:
		return malformed(0, "reserved packet type 0")
	case AUTH:
		if v != V5 {
			return malformed(AUTH, "packet type 15 (AUTH) in MQTT %s", v)
		}
	case PUBLISH:
		qos := flags >> 1 & 3
		if qos == 3 {
			return malformed(PUBLISH, "QoS 3")
		}
		if flags&0x8 != 0 && qos == 0 {
			return malformed(PUBLISH, "DUP set on a QoS 0 message")
		}
		return nil
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		// MQTT 3.1 (§2.1) sets DUP on a re-delivered PUBREL, SUBSCRIBE or
		// UNSUBSCRIBE (a PUBREL resent after a reconnect, typically); the
		// fixed 0010 came with 3.1.1 (MQTT-3.6.1-1, 3.8.1-1, 3.10.1-1).
		if flags == 0xA && v == V31 {
			return nil
		}
		if flags != 0x2 {
			return malformed(t, "fixed header flags 0x%X, want 0x2", flags)
		}
		return nil
	}
	if flags != 0 {
		return malformed(t, "fixed header flags 0x%X, want 0", flags)
	}
	return nil
}

// decodeBody decodes a packet from its fixed header byte and its body. v is
// normalized (V31, V311 or V5) and ignored for CONNECT. If own is true the
// body belongs to this packet and byte fields may alias it. lastTopic, if not
// nil, holds the topic name of the previous PUBLISH: a PUBLISH to the same
// topic reuses that string, and a PUBLISH to another topic replaces it.
func decodeBody(hdr byte, body []byte, v Version, own bool, lastTopic *string) (Packet, error) {
	if err := checkHeader(hdr, v); err != nil {
		return nil, err
	}
	t := PacketType(hdr >> 4)
	d := &dec{b: body, t: t, own: own}
	var (
		p   codec
		err error
	)
	switch t {
	case CONNECT:
		var c *Connect
		c, err = d.connect()
		if err != nil {
			return nil, withConnectVersion(err, d.level)
		}
		v, p = c.Version, c
	case CONNACK:
		p, err = d.connack(v)
	case PUBLISH:
		p, err = d.publish(hdr, v, lastTopic)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		p, err = d.ack(v)
	case SUBSCRIBE:
		p, err = d.subscribe(v)
	case SUBACK:
		p, err = d.suback(v)
	case UNSUBSCRIBE:
		p, err = d.unsubscribe(v)
	case UNSUBACK:
		p, err = d.unsuback(v)
	case PINGREQ:
		p = &Pingreq{}
	case PINGRESP:
		p = &Pingresp{}
	case DISCONNECT:
		p, err = d.disconnect(v)
	case AUTH:
		p, err = d.auth()
	}
	if err == nil {
		err = d.end()
	}
	if err == nil {
		err = p.validate(v)
	}
	if err != nil {
		if t == CONNECT {
			err = withConnectVersion(err, d.level)
		}
		return nil, err
	}
	return p, nil
}

func (d *dec) connect() (*Connect, error) {
	name, err := d.rawStr("protocol name")
	if err != nil {
		return nil, err
	}
	level, err := d.u8("protocol level")
	if err != nil {
		return nil, err
	}
	c := &Connect{}
	var ok bool
	if c.Version, c.Bridge, ok = protocolVersion(name, level); !ok {
		return nil, &Error{Code: UnsupportedProtocolVersion, Packet: CONNECT,
			Msg: "unsupported protocol name " + quote(name) + " with level " + c.Version.String()}
	}
	c.ProtocolName = "MQTT" // constants: no string allocated per CONNECT
	if c.Version == V31 {
		c.ProtocolName = "MQIsdp"
	}
	d.level = c.Version
	flags, err := d.u8("connect flags")
	if err != nil {
		return nil, err
	}
	willFlag := flags&0x04 != 0
	willQoS := flags >> 3 & 3
	willRetain := flags&0x20 != 0
	c.CleanStart = flags&0x02 != 0
	c.PasswordFlag = flags&0x40 != 0
	c.UsernameFlag = flags&0x80 != 0
	switch {
	case flags&0x01 != 0:
		return nil, malformed(CONNECT, "reserved connect flag set")
	case willQoS == 3:
		return nil, malformed(CONNECT, "will QoS 3")
	case !willFlag && (willQoS != 0 || willRetain):
		return nil, malformed(CONNECT, "will QoS or retain set without the will flag")
	case c.PasswordFlag && !c.UsernameFlag && c.Version != V5:
		return nil, malformed(CONNECT, "password flag without username flag")
	}
	if c.KeepAlive, err = d.u16("keep alive"); err != nil {
		return nil, err
	}
	if c.Version == V5 {
		if c.Props, err = d.props(uint8(CONNECT)); err != nil {
			return nil, err
		}
	}
	if c.ClientID, err = d.str("client identifier"); err != nil {
		return nil, err
	}
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if c.Version == V5 {
			if w.Props, err = d.props(ctxWill); err != nil {
				return nil, err
			}
		}
		if w.Topic, err = d.str("will topic"); err != nil {
			return nil, err
		}
		if w.Payload, err = d.bin("will payload", false); err != nil {
			return nil, err
		}
		c.Will = w
	}
	if c.UsernameFlag {
		if c.Username, err = d.str("username"); err != nil {
			return nil, err
		}
	}
	if c.PasswordFlag {
		if c.Password, err = d.bin("password", false); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// protocolVersion is the version a CONNECT's protocol name and level
// announce: "MQIsdp" 3, "MQTT" 4 or 5, with the bridge bit (0x80) allowed on
// 3.x levels. ok is false for any other pair (v is then the level as is).
func protocolVersion(name []byte, level byte) (v Version, bridge, ok bool) {
	v = Version(level)
	if level&0x80 != 0 && (level&^0x80 == byte(V31) || level&^0x80 == byte(V311)) {
		v, bridge = Version(level&^0x80), true
	}
	switch {
	case string(name) == "MQIsdp" && v == V31, string(name) == "MQTT" && (v == V311 || v == V5):
		return v, bridge, true
	}
	return v, bridge, false
}

// quote renders (at most 16 bytes of) a protocol name for an error message.
func quote(b []byte) string { return strconv.Quote(string(b[:min(len(b), 16)])) }

func (d *dec) connack(v Version) (*Connack, error) {
	flags, err := d.u8("connack flags")
	if err != nil {
		return nil, err
	}
	if flags&^1 != 0 {
		return nil, malformed(CONNACK, "reserved connack flags 0x%02X", flags)
	}
	code, err := d.u8("reason code")
	if err != nil {
		return nil, err
	}
	c := &Connack{SessionPresent: flags == 1, ReasonCode: ReasonCode(code)}
	if v == V5 {
		if c.Props, err = d.props(uint8(CONNACK)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (d *dec) publish(hdr byte, v Version, lastTopic *string) (*Publish, error) {
	p := &Publish{Dup: hdr&0x08 != 0, QoS: hdr >> 1 & 3, Retain: hdr&0x01 != 0}
	raw, err := d.rawStr("topic name")
	if err != nil {
		return nil, err
	}
	switch {
	case lastTopic == nil:
		p.Topic = string(raw)
	case string(raw) == *lastTopic: // compiled without a conversion
		p.Topic = *lastTopic
	default:
		p.Topic = string(raw)
		*lastTopic = p.Topic
	}
	if p.QoS > 0 {
		if p.PacketID, err = d.u16("packet identifier"); err != nil {
			return nil, err
		}
	}
	if v == V5 {
		if p.Props, err = d.props(uint8(PUBLISH)); err != nil {
			return nil, err
		}
	}
	p.Payload = d.rest()
	return p, nil
}

func (d *dec) ack(v Version) (*Ack, error) {
	a := &Ack{Kind: d.t}
	var err error
	if a.PacketID, err = d.u16("packet identifier"); err != nil {
		return nil, err
	}
	if v == V5 {
		err = d.reasonAndProps(&a.ReasonCode, &a.Props)
	}
	return a, err
}

// reasonAndProps reads the optional trailing reason code and property block
// of a 5.0 PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT or AUTH.
func (d *dec) reasonAndProps(code *ReasonCode, props **Properties) error {
	if d.left() == 0 {
		return nil
	}
	c, _ := d.u8("reason code")
	*code = ReasonCode(c)
	if d.left() == 0 {
		return nil
	}
	var err error
	*props, err = d.props(uint8(d.t))
	return err
}

func (d *dec) subscribe(v Version) (*Subscribe, error) {
	s := &Subscribe{}
	var err error
	if s.PacketID, err = d.u16("packet identifier"); err != nil {
		return nil, err
	}
	if v == V5 {
		if s.Props, err = d.props(uint8(SUBSCRIBE)); err != nil {
			return nil, err
		}
	}
	for d.left() > 0 {
		var sub Subscription
		if sub.Filter, err = d.str("topic filter"); err != nil {
			return nil, err
		}
		opts, err := d.u8("subscription options")
		if err != nil {
			return nil, err
		}
		sub.QoS = opts & 3
		if v == V5 {
			if opts&0xC0 != 0 {
				return nil, malformed(SUBSCRIBE, "reserved subscription option bits 0x%02X", opts)
			}
			sub.NoLocal = opts&0x04 != 0
			sub.RetainAsPublished = opts&0x08 != 0
			sub.RetainHandling = opts >> 4 & 3
		} else if opts&0xFC != 0 {
			return nil, malformed(SUBSCRIBE, "reserved requested QoS bits 0x%02X", opts)
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	return s, nil
}

func (d *dec) suback(v Version) (*Suback, error) {
	s := &Suback{}
	var err error
	if s.PacketID, err = d.u16("packet identifier"); err != nil {
		return nil, err
	}
	if v == V5 {
		if s.Props, err = d.props(uint8(SUBACK)); err != nil {
			return nil, err
		}
	}
	s.ReasonCodes = d.codes()
	return s, nil
}

// codes consumes the rest of the body as a list of reason codes.
func (d *dec) codes() []ReasonCode {
	if d.left() == 0 {
		return nil
	}
	cs := make([]ReasonCode, d.left())
	for i := range cs {
		cs[i] = ReasonCode(d.b[d.off+i])
	}
	d.off = len(d.b)
	return cs
}

func (d *dec) unsubscribe(v Version) (*Unsubscribe, error) {
	u := &Unsubscribe{}
	var err error
	if u.PacketID, err = d.u16("packet identifier"); err != nil {
		return nil, err
	}
	if v == V5 {
		if u.Props, err = d.props(uint8(UNSUBSCRIBE)); err != nil {
			return nil, err
		}
	}
	for d.left() > 0 {
		f, err := d.str("topic filter")
		if err != nil {
			return nil, err
		}
		u.Filters = append(u.Filters, f)
	}
	return u, nil
}

func (d *dec) unsuback(v Version) (*Unsuback, error) {
	u := &Unsuback{}
	var err error
	if u.PacketID, err = d.u16("packet identifier"); err != nil {
		return nil, err
	}
	if v == V5 {
		if u.Props, err = d.props(uint8(UNSUBACK)); err != nil {
			return nil, err
		}
		u.ReasonCodes = d.codes()
	}
	return u, nil
}

func (d *dec) disconnect(v Version) (*Disconnect, error) {
	p := &Disconnect{}
	if v == V5 {
		if err := d.reasonAndProps(&p.ReasonCode, &p.Props); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (d *dec) auth() (*Auth, error) {
	a := &Auth{}
	if err := d.reasonAndProps(&a.ReasonCode, &a.Props); err != nil {
		return nil, err
	}
	return a, nil
}
