package wiretest

import "github.com/cairn-mqtt/cairn/wire"

// BadPacket is a named invalid packet and the reason code its decoding must
// report (in a *wire.Error).
type BadPacket struct {
	Name    string
	Version wire.Version
	Raw     []byte
	Code    wire.ReasonCode
}

// Malformed lists invalid inputs, each one complete packet, with the reason
// code that applies.
var Malformed = buildMalformed()

// BadByName returns the Malformed entry called name; it panics if there is none.
func BadByName(name string) BadPacket {
	for _, b := range Malformed {
		if b.Name == name {
			return b
		}
	}
	panic("wiretest: no malformed packet " + name)
}

func buildMalformed() []BadPacket {
	const (
		v31      = wire.V31
		v311     = wire.V311
		v5       = wire.V5
		mal      = wire.MalformedPacket
		proto    = wire.ProtocolError
		badTopic = wire.TopicNameInvalid
		badFiltr = wire.TopicFilterInvalid
		unsup    = wire.UnsupportedProtocolVersion
	)
	conn4 := func(flags byte, rest ...[]byte) []byte {
		return pkt(0x10, cat(str("MQTT"), bs(4, flags), u16(60), str("c")), cat(rest...))
	}
	conn5 := func(flags byte, p []byte, rest ...[]byte) []byte {
		return pkt(0x10, cat(str("MQTT"), bs(5, flags), u16(60), p, str("c")), cat(rest...))
	}
	pub5 := func(p ...[]byte) []byte { return pkt(0x32, str("t"), u16(1), props(p...), []byte("x")) }
	sub5 := func(filter string, opts byte) []byte { return pkt(0x82, u16(1), props(), str(filter), bs(opts)) }
	sub3 := func(filter string, opts byte) []byte { return pkt(0x82, u16(1), str(filter), bs(opts)) }
	return []BadPacket{
		// Fixed header.
		{"header/type-0", v311, bs(0x00, 0x00), mal},
		{"header/auth-in-3.1.1", v311, bs(0xF0, 0x00), mal},
		{"header/auth-in-3.1", v31, bs(0xF0, 0x00), mal},
		{"header/connect-flags", v311, pkt(0x11, str("MQTT"), bs(4, 2), u16(0), str("c")), mal},
		{"header/subscribe-flags-0", v311, pkt(0x80, u16(1), str("a"), bs(0)), mal},
		{"header/subscribe-flags-3", v5, pkt(0x83, u16(1), props(), str("a"), bs(0)), mal},
		{"header/unsubscribe-flags", v311, pkt(0xA0, u16(1), str("a")), mal},
		{"header/pubrel-flags", v311, pkt(0x60, u16(1)), mal},
		// DUP on these is MQTT 3.1's resend marker only (engine TestMQTT31DupResends).
		{"header/pubrel-dup-3.1.1", v311, pkt(0x6A, u16(1)), mal},
		{"header/subscribe-dup-3.1.1", v311, pkt(0x8A, u16(1), str("a"), bs(0)), mal},
		{"header/unsubscribe-dup-5", v5, pkt(0xAA, u16(1), props(), str("a")), mal},
		{"header/pubrel-qos2-3.1", v31, pkt(0x64, u16(1)), mal},
		{"header/puback-flags", v5, pkt(0x42, u16(1)), mal},
		{"header/pingreq-flags", v311, bs(0xC1, 0x00), mal},
		{"header/disconnect-flags", v5, bs(0xE8, 0x00), mal},
		{"header/publish-qos3", v311, pkt(0x36, str("t"), u16(1)), mal},
		{"header/publish-qos3-5.0", v5, pkt(0x36, str("t"), u16(1), props()), mal},
		{"header/publish-dup-qos0", v311, pkt(0x38, str("t")), mal},
		{"header/5th-length-byte", v311, bs(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), mal},
		{"header/non-minimal-length-5.0", v5, bs(0xC0, 0x80, 0x00), mal},
		{"header/non-minimal-length-connect-5.0", v311,
			cat(bs(0x10, 0x8E, 0x00), str("MQTT"), bs(5, 2), u16(0), props(), str("c")), mal},

		// Lengths and trailing bytes.
		{"publish/truncated-topic", v311, pkt(0x30, u16(10), []byte("abc")), mal},
		{"publish/truncated-packet-id", v311, pkt(0x32, str("t"), bs(0x01)), mal},
		{"publish/truncated-topic-length", v311, pkt(0x30, bs(0x00)), mal},
		{"puback/trailing-3.1.1", v311, pkt(0x40, u16(1), bs(0)), mal},
		{"puback/short", v311, pkt(0x40, bs(1)), mal},
		{"puback/trailing-5.0", v5, pkt(0x40, u16(1), bs(0), props(), bs(0)), mal},
		{"pingreq/body", v311, pkt(0xC0, bs(0)), mal},
		{"pingresp/body", v5, pkt(0xD0, bs(0)), mal},
		{"disconnect/body-3.1.1", v311, pkt(0xE0, bs(0)), mal},
		{"connect/trailing", v311, conn4(0x02, bs(0)), mal},
		{"connack/trailing-3.1.1", v311, pkt(0x20, bs(0, 0, 0)), mal},
		{"connack/no-properties-5.0", v5, pkt(0x20, bs(0, 0)), mal},
		{"unsuback/trailing-3.1.1", v311, pkt(0xB0, u16(1), bs(0)), mal},
		{"properties/length-overflow", v5, pkt(0x30, str("t"), bs(0x05), pU16(0x23, 1)), mal},
		{"properties/non-minimal-length", v5, pkt(0x30, str("t"), bs(0x80, 0x00)), mal},
		{"properties/truncated-u32", v5, pub5(bs(0x02, 0x00, 0x00)), mal},
		{"properties/truncated-user", v5, pub5(bs(0x26, 0x00, 0x01, 'k', 0x00)), mal},
		{"properties/truncated-subid", v5, pub5(bs(0x0B, 0x80)), mal},
		{"properties/subid-5-bytes", v5, pub5(bs(0x0B, 0x80, 0x80, 0x80, 0x80, 0x01)), mal},
		{"properties/subid-non-minimal", v5, pub5(bs(0x0B, 0x81, 0x00)), mal},

		// UTF-8.
		{"utf8/invalid-topic", v311, pkt(0x30, str("a\xc3\x28")), mal},
		{"utf8/nul-in-topic", v311, pkt(0x30, str("a\x00b")), mal},
		{"utf8/surrogate-client-id", v311, pkt(0x10, str("MQTT"), bs(4, 2), u16(0), str("\xed\xa0\x80")), mal},
		{"utf8/overlong-nul-filter", v311, pkt(0x82, u16(1), str("a\xc0\x80"), bs(0)), mal},
		{"utf8/invalid-username", v311, conn4(0x82, str("\xff")), mal},
		{"utf8/invalid-user-property", v5, pub5(pUser("k", "\xfe")), mal},
		{"utf8/invalid-protocol-name", v311, pkt(0x10, str("MQ\xffT"), bs(4, 2), u16(0), str("c")), mal},

		// Topic names and filters.
		{"topic/plus-in-name", v311, pkt(0x30, str("a/+/b")), badTopic},
		{"topic/hash-in-name", v5, pkt(0x30, str("a/#"), props()), badTopic},
		{"topic/empty-name-3.1.1", v311, pkt(0x30, str("")), badTopic},
		{"topic/empty-name-no-alias-5.0", v5, pkt(0x30, str(""), props()), proto},
		{"topic/will-wildcard", v311, conn4(0x06, str("a/#"), str("x")), badTopic},
		{"filter/hash-not-last", v311, sub3("a/#/b", 0), badFiltr},
		{"filter/plus-in-level", v311, sub3("a+", 0), badFiltr},
		{"filter/hash-in-level", v5, sub5("a/b#", 0), badFiltr},
		{"filter/empty", v311, sub3("", 0), badFiltr},
		{"filter/unsubscribe-bad", v311, pkt(0xA2, u16(1), str("#/a")), badFiltr},
		{"filter/share-empty-group", v5, sub5("$share//a", 0), badFiltr},
		{"filter/share-no-filter", v5, sub5("$share/g", 0), badFiltr},
		{"filter/share-empty-filter", v5, sub5("$share/g/", 0), badFiltr},
		{"filter/share-wildcard-group", v5, sub5("$share/g+/a", 0), badFiltr},

		// Packet identifiers and empty lists.
		{"packet-id/publish-qos1", v311, pkt(0x32, str("t"), u16(0)), proto},
		{"packet-id/publish-qos2-5.0", v5, pkt(0x34, str("t"), u16(0), props()), proto},
		{"packet-id/puback", v311, pkt(0x40, u16(0)), proto},
		{"packet-id/pubrel", v5, pkt(0x62, u16(0)), proto},
		{"packet-id/subscribe", v311, pkt(0x82, u16(0), str("a"), bs(0)), proto},
		{"packet-id/unsubscribe", v311, pkt(0xA2, u16(0), str("a")), proto},
		{"packet-id/suback", v311, pkt(0x90, u16(0), bs(0)), proto},
		{"packet-id/unsuback", v311, pkt(0xB0, u16(0)), proto},
		{"subscribe/no-topic", v311, pkt(0x82, u16(1)), proto},
		{"subscribe/no-topic-5.0", v5, pkt(0x82, u16(1), props()), proto},
		{"unsubscribe/no-topic", v311, pkt(0xA2, u16(1)), proto},
		{"suback/no-code", v311, pkt(0x90, u16(1)), proto},
		{"unsuback/no-code-5.0", v5, pkt(0xB0, u16(1), props()), proto},

		// Subscription options.
		{"subscribe/3.1.1-reserved-bits", v311, sub3("a", 0x04), mal},
		{"subscribe/3.1.1-qos3", v311, sub3("a", 0x03), mal},
		{"subscribe/3.1-reserved-bits", v31, sub3("a", 0x80), mal},
		{"subscribe/5.0-reserved-bits", v5, sub5("a", 0x40), mal},
		{"subscribe/5.0-qos3", v5, sub5("a", 0x03), proto},
		{"subscribe/5.0-retain-handling-3", v5, sub5("a", 0x30), proto},
		{"subscribe/5.0-no-local-shared", v5, sub5("$share/g/a", 0x04), proto},
		{"subscribe/truncated-options", v311, pkt(0x82, u16(1), str("a")), mal},

		// Properties.
		{"properties/duplicate", v5, pub5(pU32(0x02, 1), pU32(0x02, 2)), proto},
		{"properties/duplicate-reason-string", v5, pkt(0x40, u16(1), bs(0), props(pStr(0x1F, "a"), pStr(0x1F, "b"))), proto},
		{"properties/duplicate-subid-in-subscribe", v5,
			pkt(0x82, u16(1), props(pVBI(0x0B, 1), pVBI(0x0B, 2)), str("a"), bs(0)), proto},
		{"properties/not-allowed-publish", v5, pub5(pU32(0x11, 1)), mal},
		{"properties/not-allowed-will", v5, conn5(0x06, props(), props(pU16(0x23, 1)), str("w"), str("x")), mal},
		{"properties/will-delay-in-connect", v5, conn5(0x02, props(pU32(0x18, 1))), mal},
		{"properties/not-allowed-puback", v5, pkt(0x40, u16(1), bs(0), props(pU32(0x11, 1))), mal},
		{"properties/not-allowed-auth", v5, pkt(0xF0, bs(0x18), props(pStr(0x15, "m"), pU32(0x11, 1))), mal},
		{"properties/unknown-id", v5, pub5(bs(0x7F, 0x00)), mal},
		{"properties/unknown-id-0", v5, pub5(bs(0x00, 0x00)), mal},
		{"properties/subscription-id-0", v5, pub5(pVBI(0x0B, 0)), proto},
		{"properties/subscription-id-0-subscribe", v5, pkt(0x82, u16(1), props(pVBI(0x0B, 0)), str("a"), bs(0)), proto},
		{"properties/topic-alias-0", v5, pub5(pU16(0x23, 0)), wire.TopicAliasInvalid},
		{"properties/receive-maximum-0", v5, conn5(0x02, props(pU16(0x21, 0))), proto},
		{"properties/maximum-packet-size-0", v5, conn5(0x02, props(pU32(0x27, 0))), proto},
		{"properties/payload-format-2", v5, pub5(pByte(0x01, 2)), proto},
		{"properties/request-problem-info-2", v5, conn5(0x02, props(pByte(0x17, 2))), proto},
		{"properties/maximum-qos-2", v5, pkt(0x20, bs(0, 0), props(pByte(0x24, 2))), proto},
		{"properties/auth-data-without-method", v5, conn5(0x02, props(pStr(0x16, "d"))), proto},
		{"properties/response-topic-wildcard", v5, pub5(pStr(0x08, "r/#")), proto},
		{"properties/response-topic-empty", v5, pub5(pStr(0x08, "")), proto},

		// CONNECT.
		{"connect/reserved-flag", v311, conn4(0x03), mal},
		{"connect/will-qos3", v311, conn4(0x1E, str("w"), str("x")), mal},
		{"connect/will-qos-without-will", v311, conn4(0x0A), mal},
		{"connect/will-retain-without-will", v5, conn5(0x22, props()), mal},
		{"connect/password-without-username-3.1.1", v311, conn4(0x42, str("pw")), mal},
		{"connect/password-without-username-3.1", v31,
			pkt(0x10, str("MQIsdp"), bs(3, 0x42), u16(60), str("c"), str("pw")), mal},
		{"connect/truncated-will", v311, conn4(0x06, str("w")), mal},
		{"connect/truncated-password", v311, conn4(0xC2, str("u"), bs(0x00, 0x05, 'p')), mal},
		{"connect/truncated-keepalive", v311, pkt(0x10, str("MQTT"), bs(4, 2, 0)), mal},
		{"connect/protocol-name", v311, pkt(0x10, str("MQTX"), bs(4, 2), u16(0), str("c")), unsup},
		{"connect/level-6", v311, pkt(0x10, str("MQTT"), bs(6, 2), u16(0), str("c")), unsup},
		{"connect/MQTT-level-3", v311, pkt(0x10, str("MQTT"), bs(3, 2), u16(0), str("c")), unsup},
		{"connect/MQIsdp-level-4", v311, pkt(0x10, str("MQIsdp"), bs(4, 2), u16(0), str("c")), unsup},
		{"connect/no-level", v311, pkt(0x10, str("MQTT")), mal},

		// Reason codes.
		{"connack/reserved-flags", v311, pkt(0x20, bs(0x02, 0)), mal},
		{"connack/return-code-6", v311, pkt(0x20, bs(0, 6)), proto},
		{"connack/session-present-refused", v311, pkt(0x20, bs(1, 5)), proto},
		{"connack/5.0-bad-reason", v5, pkt(0x20, bs(0, 0x04), props()), proto},
		{"puback/5.0-bad-reason", v5, pkt(0x40, u16(1), bs(0x05)), proto},
		{"pubrel/5.0-bad-reason", v5, pkt(0x62, u16(1), bs(0x10)), proto},
		{"disconnect/5.0-bad-reason", v5, bs(0xE0, 0x01, 0x92), proto},
		{"suback/3.1.1-code-3", v311, pkt(0x90, u16(1), bs(3)), proto},
		{"suback/5.0-bad-code", v5, pkt(0x90, u16(1), props(), bs(0x11)), proto},
		{"unsuback/5.0-bad-code", v5, pkt(0xB0, u16(1), props(), bs(0x01)), proto},
		{"auth/bad-reason", v5, pkt(0xF0, bs(0x87), props(pStr(0x15, "m"))), proto},
		{"auth/no-method", v5, pkt(0xF0, bs(0x18), props()), proto},
	}
}
