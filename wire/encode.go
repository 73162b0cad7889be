package wire

// Packet encoder: AppendPacket and Size.
//
// Invariants:
//   - AppendPacket validates first (validate.go) and appends nothing when it
//     returns an error.
//   - bodyLen(v) is exactly the number of bytes appendBody(dst, v) appends,
//     so Size(p, v) == len(AppendPacket(nil, p, v)) for every encodable p.
//   - The encoding is canonical: minimal Variable Byte Integers, properties in
//     identifier order, and the shortest form of 5.0 PUBACK/PUBREC/PUBREL/
//     PUBCOMP/DISCONNECT/AUTH (reason code and property block omitted when
//     they are 0 and empty).
//   - Encoding into a dst with enough capacity does not allocate.

// codec is implemented by every packet struct of this package.
type codec interface {
	Packet
	validate(v Version) error
	header(v Version) byte
	bodyLen(v Version) int
	appendBody(dst []byte, v Version) []byte
}

// asCodec returns p as a codec, or an error for a nil or foreign packet.
func asCodec(p Packet) (codec, error) {
	var c codec
	switch x := p.(type) {
	case *Connect:
		if x != nil {
			c = x
		}
	case *Connack:
		if x != nil {
			c = x
		}
	case *Publish:
		if x != nil {
			c = x
		}
	case *Ack:
		if x != nil {
			c = x
		}
	case *Subscribe:
		if x != nil {
			c = x
		}
	case *Suback:
		if x != nil {
			c = x
		}
	case *Unsubscribe:
		if x != nil {
			c = x
		}
	case *Unsuback:
		if x != nil {
			c = x
		}
	case *Pingreq:
		if x != nil {
			c = x
		}
	case *Pingresp:
		if x != nil {
			c = x
		}
	case *Disconnect:
		if x != nil {
			c = x
		}
	case *Auth:
		if x != nil {
			c = x
		}
	}
	if c == nil {
		return nil, &Error{Code: MalformedPacket, Msg: "cannot encode a nil or foreign Packet"}
	}
	return c, nil
}

// normVersion maps 0 to V311 and reports whether v is a known version.
func normVersion(v Version) (Version, bool) {
	switch v {
	case 0:
		return V311, true
	case V31, V311, V5:
		return v, true
	}
	return v, false
}

func versionErr(v Version) error {
	return &Error{Code: UnsupportedProtocolVersion, Msg: "unsupported protocol version " + v.String()}
}

// AppendPacket appends the encoding of p for version v (0 means V311) and
// returns the extended slice. It returns dst unchanged and an *Error when p
// cannot be encoded validly: QoS 3, packet identifier 0 where one is
// required, a string over 65,535 bytes or with invalid UTF-8, an invalid
// topic name or filter, a property or reason code not allowed on that packet
// type, a remaining length over 268,435,455, and so on.
//
// A Connect is encoded with its own Version when that is set. Fields that v
// cannot carry (properties, 5.0 reason codes and subscription options when v
// is 3.x) are ignored, and so is the PacketID of a QoS 0 Publish.
func AppendPacket(dst []byte, p Packet, v Version) ([]byte, error) {
	c, err := asCodec(p)
	if err != nil {
		return dst, err
	}
	v, ok := normVersion(v)
	if !ok {
		return dst, versionErr(v)
	}
	if err := c.validate(v); err != nil {
		return dst, err
	}
	n := c.bodyLen(v)
	if n > MaxRemainingLength {
		return dst, &Error{Code: PacketTooLarge, Packet: c.Type(),
			Msg: "remaining length exceeds 268435455"}
	}
	dst = append(dst, c.header(v))
	dst = appendVarint(dst, uint32(n))
	return c.appendBody(dst, v), nil
}

// Size returns the number of bytes AppendPacket(nil, p, v) appends, to
// compare with a 5.0 peer's Maximum Packet Size before encoding. It does not
// validate p: for a p that AppendPacket rejects the result is meaningless,
// and it is 0 for a nil or foreign Packet or an unknown version.
func Size(p Packet, v Version) int {
	c, err := asCodec(p)
	if err != nil {
		return 0
	}
	v, ok := normVersion(v)
	if !ok {
		return 0
	}
	n := c.bodyLen(v)
	return 1 + varintLen(uint32(min(n, MaxRemainingLength))) + n
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// CONNECT

func (c *Connect) header(Version) byte { return byte(CONNECT) << 4 }

func (c *Connect) protocolName(v Version) string {
	if c.ProtocolName != "" {
		return c.ProtocolName
	}
	if v == V31 {
		return "MQIsdp"
	}
	return "MQTT"
}

func (c *Connect) bodyLen(v Version) int {
	v = c.connectVersion(v)
	n := 2 + len(c.protocolName(v)) + 1 + 1 + 2 + 2 + len(c.ClientID)
	if v == V5 {
		n += blockLen(c.Props)
	}
	if w := c.Will; w != nil {
		if v == V5 {
			n += blockLen(w.Props)
		}
		n += 2 + len(w.Topic) + 2 + len(w.Payload)
	}
	if c.UsernameFlag {
		n += 2 + len(c.Username)
	}
	if c.PasswordFlag {
		n += 2 + len(c.Password)
	}
	return n
}

func (c *Connect) appendBody(dst []byte, v Version) []byte {
	v = c.connectVersion(v)
	dst = appendStr(dst, c.protocolName(v))
	flags := b2u(c.CleanStart)<<1 | b2u(c.UsernameFlag)<<7 | b2u(c.PasswordFlag)<<6
	if w := c.Will; w != nil {
		flags |= 1<<2 | w.QoS<<3 | b2u(w.Retain)<<5
	}
	level := byte(v)
	if c.Bridge {
		level |= 0x80
	}
	dst = append(dst, level, flags)
	dst = appendU16(dst, c.KeepAlive)
	if v == V5 {
		dst = appendProps(dst, c.Props)
	}
	dst = appendStr(dst, c.ClientID)
	if w := c.Will; w != nil {
		if v == V5 {
			dst = appendProps(dst, w.Props)
		}
		dst = appendStr(dst, w.Topic)
		dst = appendBin(dst, w.Payload)
	}
	if c.UsernameFlag {
		dst = appendStr(dst, c.Username)
	}
	if c.PasswordFlag {
		dst = appendBin(dst, c.Password)
	}
	return dst
}

// CONNACK

func (c *Connack) header(Version) byte { return byte(CONNACK) << 4 }

func (c *Connack) bodyLen(v Version) int {
	if v == V5 {
		return 2 + blockLen(c.Props)
	}
	return 2
}

func (c *Connack) appendBody(dst []byte, v Version) []byte {
	dst = append(dst, b2u(c.SessionPresent), byte(c.ReasonCode))
	if v == V5 {
		dst = appendProps(dst, c.Props)
	}
	return dst
}

// PUBLISH

func (p *Publish) header(Version) byte {
	return byte(PUBLISH)<<4 | b2u(p.Dup)<<3 | p.QoS<<1 | b2u(p.Retain)
}

func (p *Publish) bodyLen(v Version) int {
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v == V5 {
		n += blockLen(p.Props)
	}
	return n
}

func (p *Publish) appendBody(dst []byte, v Version) []byte {
	dst = appendStr(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendU16(dst, p.PacketID)
	}
	if v == V5 {
		dst = appendProps(dst, p.Props)
	}
	return append(dst, p.Payload...)
}

// PUBACK, PUBREC, PUBREL, PUBCOMP

func (a *Ack) header(Version) byte {
	if a.Kind == PUBREL {
		return byte(PUBREL)<<4 | 0x2
	}
	return byte(a.Kind) << 4
}

func (a *Ack) bodyLen(v Version) int {
	switch {
	case v != V5 || a.ReasonCode == Success && noProps(a.Props):
		return 2
	case noProps(a.Props):
		return 3
	}
	return 3 + blockLen(a.Props)
}

func (a *Ack) appendBody(dst []byte, v Version) []byte {
	dst = appendU16(dst, a.PacketID)
	switch n := a.bodyLen(v); {
	case n == 3:
		dst = append(dst, byte(a.ReasonCode))
	case n > 3:
		dst = appendProps(append(dst, byte(a.ReasonCode)), a.Props)
	}
	return dst
}

// SUBSCRIBE

func (s *Subscribe) header(Version) byte { return byte(SUBSCRIBE)<<4 | 0x2 }

func (s *Subscribe) bodyLen(v Version) int {
	n := 2
	if v == V5 {
		n += blockLen(s.Props)
	}
	for i := range s.Subscriptions {
		n += 3 + len(s.Subscriptions[i].Filter)
	}
	return n
}

func (s *Subscribe) appendBody(dst []byte, v Version) []byte {
	dst = appendU16(dst, s.PacketID)
	if v == V5 {
		dst = appendProps(dst, s.Props)
	}
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		opts := sub.QoS
		if v == V5 {
			opts |= b2u(sub.NoLocal)<<2 | b2u(sub.RetainAsPublished)<<3 | sub.RetainHandling<<4
		}
		dst = append(appendStr(dst, sub.Filter), opts)
	}
	return dst
}

// SUBACK

func (s *Suback) header(Version) byte { return byte(SUBACK) << 4 }

func (s *Suback) bodyLen(v Version) int {
	n := 2 + len(s.ReasonCodes)
	if v == V5 {
		n += blockLen(s.Props)
	}
	return n
}

func (s *Suback) appendBody(dst []byte, v Version) []byte {
	dst = appendU16(dst, s.PacketID)
	if v == V5 {
		dst = appendProps(dst, s.Props)
	}
	for _, c := range s.ReasonCodes {
		dst = append(dst, byte(c))
	}
	return dst
}

// UNSUBSCRIBE

func (u *Unsubscribe) header(Version) byte { return byte(UNSUBSCRIBE)<<4 | 0x2 }

func (u *Unsubscribe) bodyLen(v Version) int {
	n := 2
	if v == V5 {
		n += blockLen(u.Props)
	}
	for _, f := range u.Filters {
		n += 2 + len(f)
	}
	return n
}

func (u *Unsubscribe) appendBody(dst []byte, v Version) []byte {
	dst = appendU16(dst, u.PacketID)
	if v == V5 {
		dst = appendProps(dst, u.Props)
	}
	for _, f := range u.Filters {
		dst = appendStr(dst, f)
	}
	return dst
}

// UNSUBACK

func (u *Unsuback) header(Version) byte { return byte(UNSUBACK) << 4 }

func (u *Unsuback) bodyLen(v Version) int {
	if v != V5 {
		return 2
	}
	return 2 + blockLen(u.Props) + len(u.ReasonCodes)
}

func (u *Unsuback) appendBody(dst []byte, v Version) []byte {
	dst = appendU16(dst, u.PacketID)
	if v != V5 {
		return dst
	}
	dst = appendProps(dst, u.Props)
	for _, c := range u.ReasonCodes {
		dst = append(dst, byte(c))
	}
	return dst
}

// PINGREQ, PINGRESP

func (*Pingreq) header(Version) byte                      { return byte(PINGREQ) << 4 }
func (*Pingreq) bodyLen(Version) int                      { return 0 }
func (*Pingreq) appendBody(dst []byte, _ Version) []byte  { return dst }
func (*Pingresp) header(Version) byte                     { return byte(PINGRESP) << 4 }
func (*Pingresp) bodyLen(Version) int                     { return 0 }
func (*Pingresp) appendBody(dst []byte, _ Version) []byte { return dst }

// DISCONNECT

func (d *Disconnect) header(Version) byte { return byte(DISCONNECT) << 4 }

func (d *Disconnect) bodyLen(v Version) int {
	switch {
	case v != V5 || d.ReasonCode == Success && noProps(d.Props):
		return 0
	case noProps(d.Props):
		return 1
	}
	return 1 + blockLen(d.Props)
}

func (d *Disconnect) appendBody(dst []byte, v Version) []byte {
	switch n := d.bodyLen(v); {
	case n == 1:
		dst = append(dst, byte(d.ReasonCode))
	case n > 1:
		dst = appendProps(append(dst, byte(d.ReasonCode)), d.Props)
	}
	return dst
}

// AUTH (5.0 only; validate rejects it for 3.x)

func (a *Auth) header(Version) byte { return byte(AUTH) << 4 }

func (a *Auth) bodyLen(Version) int {
	if a.ReasonCode == Success && noProps(a.Props) {
		return 0
	}
	return 1 + blockLen(a.Props)
}

func (a *Auth) appendBody(dst []byte, v Version) []byte {
	if a.bodyLen(v) == 0 {
		return dst
	}
	return appendProps(append(dst, byte(a.ReasonCode)), a.Props)
}
