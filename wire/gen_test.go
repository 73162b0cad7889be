package wire_test

// Packet generators for the property tests. In valid mode they build
// canonical, valid packets (the form the decoder produces: nil for absent or
// empty, no fields the version cannot carry). In wild mode they mix in
// invalid and non-canonical values (QoS 3, packet id 0, wildcards, U+0000,
// forbidden properties and reason codes, empty-but-non-nil slices, ...).

import (
	"reflect"
	"strings"
	"unicode/utf8"

	"pgregory.net/rapid"

	"github.com/cairn-mqtt/cairn/wire"
)

// Reason codes allowed per packet type, transcribed independently from the
// 5.0 specification (sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1,
// 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1).
var specReasons = map[wire.PacketType][]wire.ReasonCode{
	wire.CONNACK: {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
		0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F},
	wire.PUBACK:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	wire.PUBREC:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	wire.PUBREL:   {0x00, 0x92},
	wire.PUBCOMP:  {0x00, 0x92},
	wire.SUBACK:   {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2},
	wire.UNSUBACK: {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91},
	wire.DISCONNECT: {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90,
		0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2},
	wire.AUTH: {0x00, 0x18, 0x19},
}

// Properties allowed per context, transcribed from table 2-4 of the spec.
var specProps = map[string][]byte{
	"CONNECT": {0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27},
	"CONNACK": {0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28,
		0x29, 0x2A},
	"PUBLISH":     {0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26},
	"WILL":        {0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26},
	"ACK":         {0x1F, 0x26},
	"SUBSCRIBE":   {0x0B, 0x26},
	"SUBACK":      {0x1F, 0x26},
	"UNSUBSCRIBE": {0x26},
	"UNSUBACK":    {0x1F, 0x26},
	"DISCONNECT":  {0x11, 0x1C, 0x1F, 0x26},
	"AUTH":        {0x15, 0x16, 0x1F, 0x26},
}

type gen struct {
	t    *rapid.T
	v    wire.Version
	wild bool
}

func (g gen) bool(label string) bool { return rapid.Bool().Draw(g.t, label) }

// rare is true with small probability.
func (g gen) rare(label string) bool { return rapid.IntRange(0, 9).Draw(g.t, label) == 0 }

var validRune = rapid.Rune().Filter(func(r rune) bool { return r != 0 && utf8.ValidRune(r) })

var wildStrings = []string{"", "a", "a/+", "#", "a\x00b", "\xff", "\xed\xa0\x80", "$share/g/a", "+/x"}

func (g gen) str(label string) string {
	if g.wild && g.rare(label+"-wild") {
		return rapid.SampledFrom(wildStrings).Draw(g.t, label)
	}
	if g.bool(label + "-sample") {
		return rapid.SampledFrom([]string{"", "a", "client-1", "日本語", "x y z", "ü"}).Draw(g.t, label)
	}
	return rapid.StringOfN(validRune, 0, 12, -1).Draw(g.t, label)
}

// bytes is nil or non-empty (the decoder's form), or in wild mode sometimes
// empty and non-nil.
func (g gen) bytes(label string) []byte {
	b := rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(g.t, label)
	if len(b) == 0 && !(g.wild && g.bool(label+"-empty")) {
		return nil
	}
	return b
}

func (g gen) topic(label string) string {
	if g.wild && g.rare(label+"-wild") {
		return rapid.SampledFrom(wildStrings).Draw(g.t, label)
	}
	levels := rapid.SliceOfN(rapid.SampledFrom([]string{"a", "b", "", "$SYS", "日本", "x y", "long-level-name"}), 1, 5).
		Draw(g.t, label)
	s := strings.Join(levels, "/")
	if s == "" {
		s = "t"
	}
	return s
}

func (g gen) filter(label string) string {
	if g.wild && g.rare(label+"-wild") {
		return rapid.SampledFrom(append(wildStrings, "a/#/b", "a+", "$share//a", "$share/g")).Draw(g.t, label)
	}
	levels := rapid.SliceOfN(rapid.SampledFrom([]string{"a", "b", "", "+", "$SYS", "日本"}), 1, 4).Draw(g.t, label)
	if g.bool(label + "-hash") {
		levels = append(levels, "#")
	}
	s := strings.Join(levels, "/")
	if s == "" {
		s = "/"
	}
	if g.rare(label + "-share") {
		s = "$share/" + rapid.SampledFrom([]string{"g", "group-1"}).Draw(g.t, label+"-group") + "/" + s
	}
	return s
}

func (g gen) qos(label string) byte {
	if g.wild {
		return byte(rapid.IntRange(0, 3).Draw(g.t, label))
	}
	return byte(rapid.IntRange(0, 2).Draw(g.t, label))
}

func (g gen) pid(label string) uint16 {
	if g.wild && g.rare(label+"-zero") {
		return 0
	}
	return rapid.Uint16Range(1, 0xFFFF).Draw(g.t, label)
}

func (g gen) reason(t wire.PacketType, label string) wire.ReasonCode {
	if g.wild && g.rare(label+"-wild") {
		return wire.ReasonCode(rapid.Byte().Draw(g.t, label))
	}
	if g.v != wire.V5 {
		switch t {
		case wire.CONNACK:
			return wire.ReasonCode(rapid.IntRange(0, 5).Draw(g.t, label))
		case wire.SUBACK:
			return rapid.SampledFrom([]wire.ReasonCode{0, 1, 2, 0x80}).Draw(g.t, label)
		}
		return 0
	}
	return rapid.SampledFrom(specReasons[t]).Draw(g.t, label)
}

func ptrOf[T any](v T) *T { return &v }

// flag01 draws a 0/1 byte (or, wild, any byte).
func (g gen) flag01(label string) byte {
	if g.wild && g.rare(label+"-wild") {
		return rapid.Byte().Draw(g.t, label)
	}
	return byte(rapid.IntRange(0, 1).Draw(g.t, label))
}

func (g gen) nonZero16(label string) uint16 {
	if g.wild && g.rare(label+"-zero") {
		return 0
	}
	return rapid.Uint16Range(1, 0xFFFF).Draw(g.t, label)
}

// props draws the properties of context ctx (nil when none); in wild mode
// sometimes properties from any context.
func (g gen) props(ctx string) *wire.Properties {
	if g.v != wire.V5 && !g.wild {
		return nil
	}
	ids := specProps[ctx]
	if g.wild && g.rare("props-any") {
		ids = []byte{0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A,
			0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A}
	}
	if g.bool("props-none") {
		if g.wild && g.rare("props-empty") {
			return &wire.Properties{}
		}
		return nil
	}
	p := &wire.Properties{}
	for _, id := range ids {
		if !g.bool("has-prop") {
			continue
		}
		switch id {
		case 0x01:
			p.PayloadFormat = ptrOf(g.flag01("payload-format"))
		case 0x02:
			p.MessageExpiry = ptrOf(rapid.Uint32().Draw(g.t, "message-expiry"))
		case 0x03:
			p.ContentType = ptrOf(g.str("content-type"))
		case 0x08:
			p.ResponseTopic = g.topic("response-topic")
		case 0x09:
			p.CorrelationData = rapid.SliceOfN(rapid.Byte(), 0, 16).Draw(g.t, "correlation")
		case 0x0B:
			n := 1
			if ctx == "PUBLISH" {
				n = 3
			}
			if g.wild {
				n = 3
			}
			gen := rapid.Uint32Range(1, 268435455)
			if g.wild && g.rare("subid-wild") {
				gen = rapid.SampledFrom([]uint32{0, 268435456, 0xFFFFFFFF})
			}
			p.SubscriptionIDs = rapid.SliceOfN(gen, 1, n).Draw(g.t, "subids")
		case 0x11:
			p.SessionExpiry = ptrOf(rapid.Uint32().Draw(g.t, "session-expiry"))
		case 0x12:
			p.AssignedClientID = g.str("assigned-client-id")
		case 0x13:
			p.ServerKeepAlive = ptrOf(rapid.Uint16().Draw(g.t, "server-keep-alive"))
		case 0x15:
			p.AuthMethod = ptrOf(g.str("auth-method"))
		case 0x16:
			if p.AuthMethod != nil || g.wild {
				p.AuthData = rapid.SliceOfN(rapid.Byte(), 0, 16).Draw(g.t, "auth-data")
			}
		case 0x17:
			p.RequestProblemInfo = ptrOf(g.flag01("request-problem-info"))
		case 0x18:
			p.WillDelay = ptrOf(rapid.Uint32().Draw(g.t, "will-delay"))
		case 0x19:
			p.RequestResponseInfo = ptrOf(g.flag01("request-response-info"))
		case 0x1A:
			p.ResponseInfo = g.str("response-info")
		case 0x1C:
			p.ServerReference = g.str("server-reference")
		case 0x1F:
			p.ReasonString = g.str("reason-string")
		case 0x21:
			p.ReceiveMaximum = ptrOf(g.nonZero16("receive-maximum"))
		case 0x22:
			p.TopicAliasMaximum = ptrOf(rapid.Uint16().Draw(g.t, "topic-alias-maximum"))
		case 0x23:
			p.TopicAlias = ptrOf(g.nonZero16("topic-alias"))
		case 0x24:
			p.MaximumQoS = ptrOf(g.flag01("maximum-qos"))
		case 0x25:
			p.RetainAvailable = ptrOf(g.flag01("retain-available"))
		case 0x26:
			n := rapid.IntRange(1, 3).Draw(g.t, "users")
			for range n {
				p.User = append(p.User, wire.UserProperty{Key: g.str("user-key"), Value: g.str("user-value")})
			}
		case 0x27:
			v := rapid.Uint32Range(1, 0xFFFFFFFF).Draw(g.t, "maximum-packet-size")
			if g.wild && g.rare("mps-zero") {
				v = 0
			}
			p.MaximumPacketSize = &v
		case 0x28:
			p.WildcardSubAvailable = ptrOf(g.flag01("wildcard-available"))
		case 0x29:
			p.SubIDAvailable = ptrOf(g.flag01("subid-available"))
		case 0x2A:
			p.SharedSubAvailable = ptrOf(g.flag01("shared-available"))
		}
	}
	if reflect.DeepEqual(*p, wire.Properties{}) && !g.wild {
		return nil
	}
	return p
}

// packet draws a packet of any type valid in g.v.
func (g gen) packet() wire.Packet {
	types := []wire.PacketType{wire.CONNECT, wire.CONNACK, wire.PUBLISH, wire.PUBACK, wire.PUBREC, wire.PUBREL,
		wire.PUBCOMP, wire.SUBSCRIBE, wire.SUBACK, wire.UNSUBSCRIBE, wire.UNSUBACK, wire.PINGREQ, wire.PINGRESP,
		wire.DISCONNECT}
	if g.v == wire.V5 || g.wild {
		types = append(types, wire.AUTH)
	}
	switch t := rapid.SampledFrom(types).Draw(g.t, "type"); t {
	case wire.CONNECT:
		return g.connect()
	case wire.CONNACK:
		c := &wire.Connack{ReasonCode: g.reason(wire.CONNACK, "connack-code"), Props: g.props("CONNACK")}
		c.SessionPresent = (c.ReasonCode == 0 || g.wild) && g.bool("session-present")
		return c
	case wire.PUBLISH:
		return g.publish()
	case wire.PUBACK, wire.PUBREC, wire.PUBREL, wire.PUBCOMP:
		a := &wire.Ack{Kind: t, PacketID: g.pid("ack-pid")}
		if g.v == wire.V5 || g.wild {
			a.ReasonCode, a.Props = g.reason(t, "ack-code"), g.props("ACK")
		}
		if g.wild && g.rare("ack-kind") {
			a.Kind = wire.PUBLISH
		}
		return a
	case wire.SUBSCRIBE:
		s := &wire.Subscribe{PacketID: g.pid("sub-pid"), Props: g.props("SUBSCRIBE")}
		n := rapid.IntRange(1, 4).Draw(g.t, "subs")
		if g.wild && g.rare("no-subs") {
			n = 0
		}
		for range n {
			sub := wire.Subscription{Filter: g.filter("filter"), QoS: g.qos("sub-qos")}
			if g.v == wire.V5 || g.wild {
				sub.NoLocal = g.bool("no-local") && (g.wild || !strings.HasPrefix(sub.Filter, "$share/"))
				sub.RetainAsPublished = g.bool("rap")
				sub.RetainHandling = byte(rapid.IntRange(0, 2).Draw(g.t, "rh"))
				if g.wild && g.rare("rh3") {
					sub.RetainHandling = 3
				}
			}
			s.Subscriptions = append(s.Subscriptions, sub)
		}
		return s
	case wire.SUBACK:
		s := &wire.Suback{PacketID: g.pid("suback-pid"), Props: g.props("SUBACK")}
		for range rapid.IntRange(1, 5).Draw(g.t, "codes") {
			s.ReasonCodes = append(s.ReasonCodes, g.reason(wire.SUBACK, "suback-code"))
		}
		return s
	case wire.UNSUBSCRIBE:
		u := &wire.Unsubscribe{PacketID: g.pid("unsub-pid"), Props: g.props("UNSUBSCRIBE")}
		for range rapid.IntRange(1, 4).Draw(g.t, "filters") {
			u.Filters = append(u.Filters, g.filter("filter"))
		}
		return u
	case wire.UNSUBACK:
		u := &wire.Unsuback{PacketID: g.pid("unsuback-pid")}
		if g.v == wire.V5 || g.wild {
			u.Props = g.props("UNSUBACK")
			for range rapid.IntRange(1, 5).Draw(g.t, "codes") {
				u.ReasonCodes = append(u.ReasonCodes, g.reason(wire.UNSUBACK, "unsuback-code"))
			}
		}
		return u
	case wire.PINGREQ:
		return &wire.Pingreq{}
	case wire.PINGRESP:
		return &wire.Pingresp{}
	case wire.DISCONNECT:
		d := &wire.Disconnect{}
		if g.v == wire.V5 || g.wild {
			d.ReasonCode, d.Props = g.reason(wire.DISCONNECT, "disconnect-code"), g.props("DISCONNECT")
		}
		return d
	default: // AUTH
		a := &wire.Auth{}
		if g.wild || g.bool("auth-long") {
			a.ReasonCode = g.reason(wire.AUTH, "auth-code")
			a.Props = g.props("AUTH")
			if !g.wild {
				if a.Props == nil {
					a.Props = &wire.Properties{}
				}
				if a.Props.AuthMethod == nil {
					a.Props.AuthMethod = new("m")
				}
			}
		}
		return a
	}
}

func (g gen) connect() *wire.Connect {
	c := &wire.Connect{Version: g.v, ProtocolName: "MQTT", CleanStart: g.bool("clean"),
		KeepAlive: rapid.Uint16().Draw(g.t, "keep-alive"), ClientID: g.str("client-id"), Props: g.props("CONNECT")}
	if g.v == wire.V31 {
		c.ProtocolName = "MQIsdp"
	}
	if g.wild && g.rare("connect-version") {
		c.Version, c.ProtocolName = 0, rapid.SampledFrom([]string{"", "MQTT", "MQIsdp", "X"}).Draw(g.t, "name")
	}
	if g.bool("will") {
		c.Will = &wire.Will{QoS: g.qos("will-qos"), Retain: g.bool("will-retain"), Topic: g.topic("will-topic"),
			Payload: g.bytes("will-payload"), Props: g.props("WILL")}
	}
	c.UsernameFlag = g.bool("username-flag")
	if c.UsernameFlag || g.wild && g.rare("stray-username") {
		c.Username = g.str("username")
	}
	c.PasswordFlag = g.bool("password-flag") && (c.UsernameFlag || g.v == wire.V5 || g.wild)
	if c.PasswordFlag || g.wild && g.rare("stray-password") {
		c.Password = g.bytes("password")
	}
	return c
}

func (g gen) publish() *wire.Publish {
	p := &wire.Publish{QoS: g.qos("qos"), Retain: g.bool("retain"), Topic: g.topic("topic"),
		Props: g.props("PUBLISH"), Payload: g.bytes("payload")}
	p.Dup = (p.QoS > 0 || g.wild) && g.bool("dup")
	if p.QoS > 0 || g.wild && g.rare("stray-pid") {
		p.PacketID = g.pid("pid")
	}
	if g.v == wire.V5 && p.Props != nil && p.Props.TopicAlias != nil && g.bool("alias-only") {
		p.Topic = ""
	}
	return p
}
