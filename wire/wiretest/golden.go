// Package wiretest holds test fixtures for package wire and for the tests of
// the packages built on it: a table of golden packets (raw bytes and the
// struct they decode to, for every packet type in every protocol version), a
// table of malformed inputs with the reason code each must produce, and Conn,
// a raw-packet MQTT test client.
//
// Invariants of the tables:
//   - Every Golden entry satisfies, for its Version:
//     wire.Decode(Raw) == Packet (reflect.DeepEqual) and
//     wire.AppendPacket(nil, Packet) == Raw, i.e. Raw is the canonical
//     encoding (minimal lengths, properties in identifier order, shortest
//     acknowledgement forms).
//   - Every Malformed entry is one complete packet on which wire.Decode and
//     wire.Reader.ReadPacket fail with an *wire.Error whose Code is Code.
//   - The raw bytes are assembled by build.go, independently of wire's
//     encoder.
//
// The tables are shared: callers must not modify them.
package wiretest

import (
	"fmt"

	"github.com/cairn-mqtt/cairn/wire"
)

// GoldenPacket is a named packet in its raw and decoded forms.
type GoldenPacket struct {
	Name    string
	Version wire.Version
	Raw     []byte
	Packet  wire.Packet
}

// Golden covers every packet type in each protocol version (3.1, 3.1.1,
// 5.0), including 5.0 packets carrying every property they allow.
var Golden = buildGolden()

// ByName returns the golden packet called name; it panics if there is none.
func ByName(name string) GoldenPacket {
	for _, g := range Golden {
		if g.Name == name {
			return g
		}
	}
	panic(fmt.Sprintf("wiretest: no golden packet %q", name))
}

func buildGolden() []GoldenPacket {
	var g []GoldenPacket
	g = append(g, golden3(wire.V31, "3.1", "MQIsdp")...)
	g = append(g, golden3(wire.V311, "3.1.1", "MQTT")...)
	g = append(g, golden5()...)
	return g
}

// golden3 builds the 3.1 / 3.1.1 table; the two differ only in CONNECT.
func golden3(v wire.Version, pre, name string) []GoldenPacket {
	gp := func(n string, raw []byte, p wire.Packet) GoldenPacket {
		return GoldenPacket{Name: pre + "/" + n, Version: v, Raw: raw, Packet: p}
	}
	level := byte(v)
	return []GoldenPacket{
		gp("CONNECT", pkt(0x10, str(name), bs(level, 0x02), u16(60), str("cairn-client")),
			&wire.Connect{ProtocolName: name, Version: v, CleanStart: true, KeepAlive: 60, ClientID: "cairn-client"}),
		// flags: username, password, will retain, will QoS 1, will.
		gp("CONNECT/will-auth", pkt(0x10, str(name), bs(level, 0xEC), u16(30), str("c1"),
			str("clients/c1/status"), str("offline"), str("user"), str("secret")),
			&wire.Connect{ProtocolName: name, Version: v, KeepAlive: 30, ClientID: "c1",
				Will:         &wire.Will{QoS: 1, Retain: true, Topic: "clients/c1/status", Payload: []byte("offline")},
				UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte("secret")}),
		// Empty client id, will QoS 2 with an empty payload, username with
		// an empty password.
		gp("CONNECT/empty-fields", pkt(0x10, str(name), bs(level, 0xD6), u16(0), str(""),
			str("w"), str(""), str("u"), str("")),
			&wire.Connect{ProtocolName: name, Version: v, CleanStart: true,
				Will:         &wire.Will{QoS: 2, Topic: "w"},
				UsernameFlag: true, Username: "u", PasswordFlag: true}),
		gp("CONNACK", pkt(0x20, bs(0x00, 0x00)), &wire.Connack{}),
		gp("CONNACK/session-present", pkt(0x20, bs(0x01, 0x00)), &wire.Connack{SessionPresent: true}),
		gp("CONNACK/refused", pkt(0x20, bs(0x00, 0x05)), &wire.Connack{ReasonCode: wire.ConnRefusedNotAuthorized}),
		gp("PUBLISH/qos0", pkt(0x30, str("a/b"), []byte("hello")),
			&wire.Publish{Topic: "a/b", Payload: []byte("hello")}),
		gp("PUBLISH/qos1-retain", pkt(0x33, str("sensors/1/temp"), u16(1), []byte("21.5")),
			&wire.Publish{QoS: 1, Retain: true, Topic: "sensors/1/temp", PacketID: 1, Payload: []byte("21.5")}),
		gp("PUBLISH/qos2-dup-empty", pkt(0x3C, str("$SYS/x"), u16(0xFFFF)),
			&wire.Publish{Dup: true, QoS: 2, Topic: "$SYS/x", PacketID: 0xFFFF}),
		gp("PUBLISH/utf8", pkt(0x30, str("météo/äöü/日本"), []byte{0, 1, 2}),
			&wire.Publish{Topic: "météo/äöü/日本", Payload: []byte{0, 1, 2}}),
		gp("PUBACK", pkt(0x40, u16(1)), &wire.Ack{Kind: wire.PUBACK, PacketID: 1}),
		gp("PUBREC", pkt(0x50, u16(2)), &wire.Ack{Kind: wire.PUBREC, PacketID: 2}),
		gp("PUBREL", pkt(0x62, u16(3)), &wire.Ack{Kind: wire.PUBREL, PacketID: 3}),
		gp("PUBCOMP", pkt(0x70, u16(0x1234)), &wire.Ack{Kind: wire.PUBCOMP, PacketID: 0x1234}),
		gp("SUBSCRIBE", pkt(0x82, u16(10), str("a/+"), bs(0), str("b/#"), bs(1), str("#"), bs(2)),
			&wire.Subscribe{PacketID: 10, Subscriptions: []wire.Subscription{
				{Filter: "a/+", QoS: 0}, {Filter: "b/#", QoS: 1}, {Filter: "#", QoS: 2}}}),
		gp("SUBACK", pkt(0x90, u16(10), bs(0, 1, 2, 0x80)),
			&wire.Suback{PacketID: 10, ReasonCodes: []wire.ReasonCode{0, 1, 2, 0x80}}),
		gp("UNSUBSCRIBE", pkt(0xA2, u16(11), str("a/+"), str("b/#")),
			&wire.Unsubscribe{PacketID: 11, Filters: []string{"a/+", "b/#"}}),
		gp("UNSUBACK", pkt(0xB0, u16(11)), &wire.Unsuback{PacketID: 11}),
		gp("PINGREQ", bs(0xC0, 0x00), &wire.Pingreq{}),
		gp("PINGRESP", bs(0xD0, 0x00), &wire.Pingresp{}),
		gp("DISCONNECT", bs(0xE0, 0x00), &wire.Disconnect{}),
	}
}

func golden5() []GoldenPacket {
	v := wire.V5
	gp := func(n string, raw []byte, p wire.Packet) GoldenPacket {
		return GoldenPacket{Name: "5.0/" + n, Version: v, Raw: raw, Packet: p}
	}
	user := []wire.UserProperty{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}
	users := cat(pUser("a", "1"), pUser("a", "2"))
	big := make([]byte, 200) // forces a 2-byte remaining length
	for i := range big {
		big[i] = byte(i)
	}
	return []GoldenPacket{
		gp("CONNECT", pkt(0x10, str("MQTT"), bs(5, 0x02), u16(60), props(), str("cairn-5")),
			&wire.Connect{ProtocolName: "MQTT", Version: v, CleanStart: true, KeepAlive: 60, ClientID: "cairn-5"}),
		// flags: username, password, will QoS 2, will, clean start.
		gp("CONNECT/all-properties", pkt(0x10, str("MQTT"), bs(5, 0xD6), u16(30),
			props(pU32(0x11, 3600), pStr(0x15, "SCRAM-SHA-1"), pStr(0x16, "client-first"), pByte(0x17, 0),
				pByte(0x19, 1), pU16(0x21, 100), pU16(0x22, 10), users, pU32(0x27, 1<<20)),
			str("cairn-5-full"),
			props(pByte(0x01, 1), pU32(0x02, 120), pStr(0x03, "text/plain"), pStr(0x08, "replies/c1"),
				pStr(0x09, "corr"), pU32(0x18, 5), pUser("k", "v")),
			str("clients/cairn-5-full/will"), str("gone"), str("user"), str("pw")),
			&wire.Connect{ProtocolName: "MQTT", Version: v, CleanStart: true, KeepAlive: 30, ClientID: "cairn-5-full",
				Props: &wire.Properties{SessionExpiry: ptr[uint32](3600), AuthMethod: new("SCRAM-SHA-1"),
					AuthData: []byte("client-first"), RequestProblemInfo: ptr[byte](0), RequestResponseInfo: ptr[byte](1),
					ReceiveMaximum: ptr[uint16](100), TopicAliasMaximum: ptr[uint16](10), User: user,
					MaximumPacketSize: ptr[uint32](1 << 20)},
				Will: &wire.Will{QoS: 2, Topic: "clients/cairn-5-full/will", Payload: []byte("gone"),
					Props: &wire.Properties{PayloadFormat: ptr[byte](1), MessageExpiry: ptr[uint32](120),
						ContentType: new("text/plain"), ResponseTopic: "replies/c1", CorrelationData: []byte("corr"),
						WillDelay: ptr[uint32](5), User: []wire.UserProperty{{Key: "k", Value: "v"}}}},
				UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte("pw")}),
		// 5.0 allows a password without a username; will with an empty
		// property block and empty correlation data elsewhere.
		gp("CONNECT/password-only", pkt(0x10, str("MQTT"), bs(5, 0x64), u16(0), props(), str(""),
			props(pStr(0x09, "")), str("w/t"), str(""), str("token")),
			&wire.Connect{ProtocolName: "MQTT", Version: v, KeepAlive: 0,
				Will:         &wire.Will{QoS: 0, Retain: true, Topic: "w/t", Props: &wire.Properties{CorrelationData: []byte{}}},
				PasswordFlag: true, Password: []byte("token")}),
		gp("CONNACK", pkt(0x20, bs(0x00, 0x00), props()), &wire.Connack{}),
		gp("CONNACK/all-properties", pkt(0x20, bs(0x01, 0x00), props(
			pU32(0x11, 0xFFFFFFFF), pStr(0x12, "auto-1"), pU16(0x13, 120), pStr(0x15, "SCRAM-SHA-1"),
			pStr(0x16, "server-first"), pStr(0x1A, "resp/"), pStr(0x1C, "other:1883"), pStr(0x1F, "welcome"),
			pU16(0x21, 20), pU16(0x22, 5), pByte(0x24, 1), pByte(0x25, 1), users, pU32(0x27, 65536),
			pByte(0x28, 1), pByte(0x29, 0), pByte(0x2A, 1))),
			&wire.Connack{SessionPresent: true, Props: &wire.Properties{
				SessionExpiry: ptr[uint32](0xFFFFFFFF), AssignedClientID: "auto-1", ServerKeepAlive: ptr[uint16](120),
				AuthMethod: new("SCRAM-SHA-1"), AuthData: []byte("server-first"), ResponseInfo: "resp/",
				ServerReference: "other:1883", ReasonString: "welcome", ReceiveMaximum: ptr[uint16](20),
				TopicAliasMaximum: ptr[uint16](5), MaximumQoS: ptr[byte](1), RetainAvailable: ptr[byte](1), User: user,
				MaximumPacketSize: ptr[uint32](65536), WildcardSubAvailable: ptr[byte](1), SubIDAvailable: ptr[byte](0),
				SharedSubAvailable: ptr[byte](1)}}),
		gp("CONNACK/refused", pkt(0x20, bs(0x00, 0x86), props(pStr(0x1F, "bad credentials"))),
			&wire.Connack{ReasonCode: wire.BadUsernameOrPassword, Props: &wire.Properties{ReasonString: "bad credentials"}}),
		gp("PUBLISH/qos0", pkt(0x30, str("a/b"), props(), []byte("hello")),
			&wire.Publish{Topic: "a/b", Payload: []byte("hello")}),
		gp("PUBLISH/all-properties", pkt(0x33, str("a/b"), u16(7), props(
			pByte(0x01, 1), pU32(0x02, 60), pStr(0x03, "application/json"), pStr(0x08, "replies/x"),
			pStr(0x09, "id-1"), pVBI(0x0B, 1), pVBI(0x0B, 268435455), pU16(0x23, 3), users), []byte(`{"t":1}`)),
			&wire.Publish{QoS: 1, Retain: true, Topic: "a/b", PacketID: 7, Payload: []byte(`{"t":1}`),
				Props: &wire.Properties{PayloadFormat: ptr[byte](1), MessageExpiry: ptr[uint32](60),
					ContentType: new("application/json"), ResponseTopic: "replies/x", CorrelationData: []byte("id-1"),
					SubscriptionIDs: []uint32{1, 268435455}, TopicAlias: ptr[uint16](3), User: user}}),
		// An empty Content Type is present (forwarded unaltered).
		gp("PUBLISH/empty-content-type", pkt(0x30, str("a/b"), props(pStr(0x03, "")), []byte("p")),
			&wire.Publish{Topic: "a/b", Payload: []byte("p"), Props: &wire.Properties{ContentType: new("")}}),
		gp("PUBLISH/topic-alias-only", pkt(0x30, str(""), props(pU16(0x23, 3)), []byte("p")),
			&wire.Publish{Payload: []byte("p"), Props: &wire.Properties{TopicAlias: ptr[uint16](3)}}),
		gp("PUBLISH/qos2-dup-large", pkt(0x3C, str("big"), u16(9), props(), big),
			&wire.Publish{Dup: true, QoS: 2, Topic: "big", PacketID: 9, Payload: big}),
		gp("PUBACK", pkt(0x40, u16(1)), &wire.Ack{Kind: wire.PUBACK, PacketID: 1}),
		gp("PUBACK/reason", pkt(0x40, u16(2), bs(0x10)),
			&wire.Ack{Kind: wire.PUBACK, PacketID: 2, ReasonCode: wire.NoMatchingSubscribers}),
		gp("PUBACK/all-properties", pkt(0x40, u16(3), bs(0x87), props(pStr(0x1F, "denied"), users)),
			&wire.Ack{Kind: wire.PUBACK, PacketID: 3, ReasonCode: wire.NotAuthorized,
				Props: &wire.Properties{ReasonString: "denied", User: user}}),
		gp("PUBACK/success-properties", pkt(0x40, u16(4), bs(0x00), props(pUser("k", "v"))),
			&wire.Ack{Kind: wire.PUBACK, PacketID: 4, Props: &wire.Properties{User: []wire.UserProperty{{Key: "k", Value: "v"}}}}),
		gp("PUBREC", pkt(0x50, u16(5)), &wire.Ack{Kind: wire.PUBREC, PacketID: 5}),
		gp("PUBREC/all-properties", pkt(0x50, u16(6), bs(0x91), props(pStr(0x1F, "in use"), users)),
			&wire.Ack{Kind: wire.PUBREC, PacketID: 6, ReasonCode: wire.PacketIDInUse,
				Props: &wire.Properties{ReasonString: "in use", User: user}}),
		gp("PUBREL", pkt(0x62, u16(7)), &wire.Ack{Kind: wire.PUBREL, PacketID: 7}),
		gp("PUBREL/reason", pkt(0x62, u16(8), bs(0x92)),
			&wire.Ack{Kind: wire.PUBREL, PacketID: 8, ReasonCode: wire.PacketIDNotFound}),
		gp("PUBREL/all-properties", pkt(0x62, u16(9), bs(0x92), props(pStr(0x1F, "unknown"), users)),
			&wire.Ack{Kind: wire.PUBREL, PacketID: 9, ReasonCode: wire.PacketIDNotFound,
				Props: &wire.Properties{ReasonString: "unknown", User: user}}),
		gp("PUBCOMP", pkt(0x70, u16(10)), &wire.Ack{Kind: wire.PUBCOMP, PacketID: 10}),
		gp("PUBCOMP/all-properties", pkt(0x70, u16(11), bs(0x92), props(pStr(0x1F, "unknown"), users)),
			&wire.Ack{Kind: wire.PUBCOMP, PacketID: 11, ReasonCode: wire.PacketIDNotFound,
				Props: &wire.Properties{ReasonString: "unknown", User: user}}),
		// options: QoS 1, no local, retain as published, retain handling 2
		// (0x2D); QoS 2, retain handling 1 (0x12); QoS 0 (0x00).
		gp("SUBSCRIBE/all-properties", pkt(0x82, u16(20), props(pVBI(0x0B, 42), users),
			str("a/+"), bs(0x2D), str("$share/g/b/#"), bs(0x12), str("c"), bs(0x00)),
			&wire.Subscribe{PacketID: 20, Props: &wire.Properties{SubscriptionIDs: []uint32{42}, User: user},
				Subscriptions: []wire.Subscription{
					{Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
					{Filter: "$share/g/b/#", QoS: 2, RetainHandling: 1},
					{Filter: "c"}}}),
		gp("SUBSCRIBE", pkt(0x82, u16(21), props(), str("x"), bs(0x01)),
			&wire.Subscribe{PacketID: 21, Subscriptions: []wire.Subscription{{Filter: "x", QoS: 1}}}),
		gp("SUBACK/all-properties", pkt(0x90, u16(20), props(pStr(0x1F, "partial"), users),
			bs(0x01, 0x02, 0x00, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)),
			&wire.Suback{PacketID: 20, Props: &wire.Properties{ReasonString: "partial", User: user},
				ReasonCodes: []wire.ReasonCode{0x01, 0x02, 0x00, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}}),
		gp("SUBACK", pkt(0x90, u16(21), props(), bs(0x01)),
			&wire.Suback{PacketID: 21, ReasonCodes: []wire.ReasonCode{1}}),
		gp("UNSUBSCRIBE/all-properties", pkt(0xA2, u16(22), props(users), str("a/+"), str("$share/g/b/#")),
			&wire.Unsubscribe{PacketID: 22, Props: &wire.Properties{User: user}, Filters: []string{"a/+", "$share/g/b/#"}}),
		gp("UNSUBSCRIBE", pkt(0xA2, u16(23), props(), str("x")),
			&wire.Unsubscribe{PacketID: 23, Filters: []string{"x"}}),
		gp("UNSUBACK/all-properties", pkt(0xB0, u16(22), props(pStr(0x1F, "mixed"), users),
			bs(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)),
			&wire.Unsuback{PacketID: 22, Props: &wire.Properties{ReasonString: "mixed", User: user},
				ReasonCodes: []wire.ReasonCode{0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}}),
		gp("UNSUBACK", pkt(0xB0, u16(23), props(), bs(0x00)),
			&wire.Unsuback{PacketID: 23, ReasonCodes: []wire.ReasonCode{0}}),
		gp("PINGREQ", bs(0xC0, 0x00), &wire.Pingreq{}),
		gp("PINGRESP", bs(0xD0, 0x00), &wire.Pingresp{}),
		gp("DISCONNECT", bs(0xE0, 0x00), &wire.Disconnect{}),
		gp("DISCONNECT/reason", bs(0xE0, 0x01, 0x04), &wire.Disconnect{ReasonCode: wire.DisconnectWithWill}),
		gp("DISCONNECT/all-properties", pkt(0xE0, bs(0x9C), props(pU32(0x11, 0), pStr(0x1C, "b:1883"),
			pStr(0x1F, "moving"), users)),
			&wire.Disconnect{ReasonCode: wire.UseAnotherServer, Props: &wire.Properties{
				SessionExpiry: ptr[uint32](0), ServerReference: "b:1883", ReasonString: "moving", User: user}}),
		gp("AUTH", bs(0xF0, 0x00), &wire.Auth{}),
		gp("AUTH/all-properties", pkt(0xF0, bs(0x18), props(pStr(0x15, "SCRAM-SHA-1"), pStr(0x16, "\x00\x01"),
			pStr(0x1F, "continue"), users)),
			&wire.Auth{ReasonCode: wire.ContinueAuthentication, Props: &wire.Properties{
				AuthMethod: new("SCRAM-SHA-1"), AuthData: []byte{0, 1}, ReasonString: "continue", User: user}}),
	}
}
