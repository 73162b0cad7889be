package wire_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-mqtt/cairn/wire"
)

func u16p(v uint16) *uint16 { return &v }
func u32p(v uint32) *uint32 { return &v }
func bytep(v byte) *byte    { return &v }

// TestEncodeErrors: structs that cannot be encoded validly are refused with
// the reason code a receiver would use, and nothing is appended.
func TestEncodeErrors(t *testing.T) {
	const (
		mal   = wire.MalformedPacket
		proto = wire.ProtocolError
		topic = wire.TopicNameInvalid
		filt  = wire.TopicFilterInvalid
		unsup = wire.UnsupportedProtocolVersion
	)
	long := strings.Repeat("x", 65536)
	longB := make([]byte, 65536)
	c5 := func(mod func(c *wire.Connect)) *wire.Connect {
		c := &wire.Connect{Version: wire.V5, ClientID: "c"}
		mod(c)
		return c
	}
	tests := []struct {
		name string
		v    wire.Version
		p    wire.Packet
		code wire.ReasonCode
	}{
		{"publish/qos3", wire.V311, &wire.Publish{QoS: 3, Topic: "t", PacketID: 1}, mal},
		{"publish/dup-qos0", wire.V311, &wire.Publish{Dup: true, Topic: "t"}, mal},
		{"publish/pid0", wire.V311, &wire.Publish{QoS: 1, Topic: "t"}, proto},
		{"publish/wildcard", wire.V311, &wire.Publish{Topic: "a/+"}, topic},
		{"publish/empty-topic", wire.V31, &wire.Publish{}, topic},
		{"publish/empty-topic-5.0", wire.V5, &wire.Publish{}, proto},
		{"publish/long-topic", wire.V5, &wire.Publish{Topic: long}, topic},
		{"publish/nul-topic", wire.V5, &wire.Publish{Topic: "a\x00"}, topic},
		{"publish/prop-not-allowed", wire.V5, &wire.Publish{Topic: "t", Props: &wire.Properties{SessionExpiry: u32p(1)}}, mal},
		{"publish/alias-0", wire.V5, &wire.Publish{Topic: "t", Props: &wire.Properties{TopicAlias: u16p(0)}}, wire.TopicAliasInvalid},
		{"publish/subid-0", wire.V5, &wire.Publish{Topic: "t", Props: &wire.Properties{SubscriptionIDs: []uint32{0}}}, proto},
		{"publish/subid-big", wire.V5, &wire.Publish{Topic: "t", Props: &wire.Properties{SubscriptionIDs: []uint32{1 << 28}}}, mal},
		{"publish/payload-format-2", wire.V5, &wire.Publish{Topic: "t", Props: &wire.Properties{PayloadFormat: bytep(2)}}, proto},
		{"publish/content-type-utf8", wire.V5, &wire.Publish{Topic: "t", Props: &wire.Properties{ContentType: new("\xff")}}, mal},
		{"publish/response-topic", wire.V5, &wire.Publish{Topic: "t", Props: &wire.Properties{ResponseTopic: "#"}}, proto},
		{"publish/correlation-long", wire.V5, &wire.Publish{Topic: "t", Props: &wire.Properties{CorrelationData: longB}}, mal},
		{"publish/user-key-long", wire.V5, &wire.Publish{Topic: "t", Props: &wire.Properties{User: []wire.UserProperty{{Key: long}}}}, mal},
		{"publish/user-value-nul", wire.V5, &wire.Publish{Topic: "t", Props: &wire.Properties{User: []wire.UserProperty{{Value: "\x00"}}}}, mal},
		{"connect/level", wire.V311, &wire.Connect{Version: 7}, unsup},
		{"connect/level-from-v", 9, &wire.Connect{}, unsup},
		{"connect/name", wire.V311, &wire.Connect{Version: wire.V31, ProtocolName: "MQTT"}, unsup},
		{"connect/client-id", wire.V311, &wire.Connect{ClientID: long}, mal},
		{"connect/will-qos", wire.V311, &wire.Connect{Will: &wire.Will{QoS: 3, Topic: "w"}}, mal},
		{"connect/will-topic", wire.V311, &wire.Connect{Will: &wire.Will{Topic: "#"}}, topic},
		{"connect/will-payload", wire.V311, &wire.Connect{Will: &wire.Will{Topic: "w", Payload: longB}}, mal},
		{"connect/will-props", wire.V5, c5(func(c *wire.Connect) {
			c.Will = &wire.Will{Topic: "w", Props: &wire.Properties{TopicAlias: u16p(1)}}
		}), mal},
		{"connect/props", wire.V5, c5(func(c *wire.Connect) { c.Props = &wire.Properties{ReceiveMaximum: u16p(0)} }), proto},
		{"connect/auth-data", wire.V5, c5(func(c *wire.Connect) { c.Props = &wire.Properties{AuthData: []byte{1}} }), proto},
		{"connect/stray-username", wire.V311, &wire.Connect{Username: "u"}, mal},
		{"connect/stray-password", wire.V311, &wire.Connect{Password: []byte("p")}, mal},
		{"connect/password-only-3.1.1", wire.V311, &wire.Connect{PasswordFlag: true}, mal},
		{"connect/username-long", wire.V311, &wire.Connect{UsernameFlag: true, Username: long}, mal},
		{"connect/password-long", wire.V5, &wire.Connect{PasswordFlag: true, Password: longB}, mal},
		{"connack/code-3.1.1", wire.V311, &wire.Connack{ReasonCode: 6}, proto},
		{"connack/session-present", wire.V311, &wire.Connack{SessionPresent: true, ReasonCode: 5}, proto},
		{"connack/code-5.0", wire.V5, &wire.Connack{ReasonCode: 0x04}, proto},
		{"connack/props", wire.V5, &wire.Connack{Props: &wire.Properties{TopicAlias: u16p(1)}}, mal},
		{"ack/kind", wire.V311, &wire.Ack{Kind: wire.PUBLISH, PacketID: 1}, mal},
		{"ack/pid0", wire.V311, &wire.Ack{Kind: wire.PUBACK}, proto},
		{"ack/code", wire.V5, &wire.Ack{Kind: wire.PUBREL, PacketID: 1, ReasonCode: 0x10}, proto},
		{"ack/props", wire.V5, &wire.Ack{Kind: wire.PUBCOMP, PacketID: 1, Props: &wire.Properties{SessionExpiry: u32p(1)}}, mal},
		{"subscribe/none", wire.V311, &wire.Subscribe{PacketID: 1}, proto},
		{"subscribe/pid0", wire.V311, &wire.Subscribe{Subscriptions: []wire.Subscription{{Filter: "a"}}}, proto},
		{"subscribe/filter", wire.V311, &wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "a/#/b"}}}, filt},
		{"subscribe/qos3-3.1.1", wire.V311, &wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "a", QoS: 3}}}, mal},
		{"subscribe/qos3-5.0", wire.V5, &wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "a", QoS: 3}}}, proto},
		{"subscribe/rh3", wire.V5, &wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "a", RetainHandling: 3}}}, proto},
		{"subscribe/no-local-shared", wire.V5, &wire.Subscribe{PacketID: 1,
			Subscriptions: []wire.Subscription{{Filter: "$share/g/a", NoLocal: true}}}, proto},
		{"subscribe/two-subids", wire.V5, &wire.Subscribe{PacketID: 1, Props: &wire.Properties{SubscriptionIDs: []uint32{1, 2}},
			Subscriptions: []wire.Subscription{{Filter: "a"}}}, proto},
		{"suback/none", wire.V311, &wire.Suback{PacketID: 1}, proto},
		{"suback/pid0", wire.V311, &wire.Suback{ReasonCodes: []wire.ReasonCode{0}}, proto},
		{"suback/code", wire.V311, &wire.Suback{PacketID: 1, ReasonCodes: []wire.ReasonCode{0x87}}, proto},
		{"suback/props", wire.V5, &wire.Suback{PacketID: 1, ReasonCodes: []wire.ReasonCode{0},
			Props: &wire.Properties{AuthMethod: new("x")}}, mal},
		{"unsubscribe/none", wire.V311, &wire.Unsubscribe{PacketID: 1}, proto},
		{"unsubscribe/pid0", wire.V311, &wire.Unsubscribe{Filters: []string{"a"}}, proto},
		{"unsubscribe/filter", wire.V5, &wire.Unsubscribe{PacketID: 1, Filters: []string{"a+"}}, filt},
		{"unsubscribe/props", wire.V5, &wire.Unsubscribe{PacketID: 1, Filters: []string{"a"},
			Props: &wire.Properties{ReasonString: "x"}}, mal},
		{"unsuback/pid0", wire.V311, &wire.Unsuback{}, proto},
		{"unsuback/none", wire.V5, &wire.Unsuback{PacketID: 1}, proto},
		{"unsuback/code", wire.V5, &wire.Unsuback{PacketID: 1, ReasonCodes: []wire.ReasonCode{0x01}}, proto},
		{"disconnect/code", wire.V5, &wire.Disconnect{ReasonCode: 0x92}, proto},
		{"disconnect/props", wire.V5, &wire.Disconnect{Props: &wire.Properties{TopicAlias: u16p(1)}}, mal},
		{"auth/3.1.1", wire.V311, &wire.Auth{}, mal},
		{"auth/no-method", wire.V5, &wire.Auth{ReasonCode: wire.ContinueAuthentication}, proto},
		{"auth/props-no-method", wire.V5, &wire.Auth{Props: &wire.Properties{ReasonString: "r"}}, proto},
		{"auth/code", wire.V5, &wire.Auth{ReasonCode: 0x87, Props: &wire.Properties{AuthMethod: new("m")}}, proto},
		{"auth/props", wire.V5, &wire.Auth{ReasonCode: 0x18, Props: &wire.Properties{AuthMethod: new("m"), SessionExpiry: u32p(1)}}, mal},
		{"nil", wire.V311, nil, mal},
		{"typed-nil", wire.V311, (*wire.Publish)(nil), mal},
		{"foreign", wire.V311, foreign{}, mal},
		{"version", 9, &wire.Pingreq{}, unsup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := wire.AppendPacket(dst, tt.p, tt.v)
			we := wire.AsError(err)
			if we == nil || we.Code != tt.code {
				t.Fatalf("AppendPacket = % x, %v; want code 0x%02X", out, err, byte(tt.code))
			}
			if string(out) != "keep" {
				t.Errorf("AppendPacket changed dst to %q", out)
			}
		})
	}
	if wire.Size(nil, wire.V5) != 0 || wire.Size(foreign{}, wire.V5) != 0 || wire.Size(&wire.Pingreq{}, 9) != 0 {
		t.Errorf("Size of an unencodable packet is not 0")
	}
}

type foreign struct{}

func (foreign) Type() wire.PacketType { return wire.PINGREQ }

// TestEncodeTooLarge: a packet whose remaining length would exceed
// 268,435,455 is refused (built from one shared 64 KiB string, so the test
// allocates little).
func TestEncodeTooLarge(t *testing.T) {
	f := strings.Repeat("f", 65535)
	u := &wire.Unsubscribe{PacketID: 1, Filters: make([]string, 4097)}
	for i := range u.Filters {
		u.Filters[i] = f
	}
	_, err := wire.AppendPacket(nil, u, wire.V311)
	if we := wire.AsError(err); we == nil || we.Code != wire.PacketTooLarge {
		t.Fatalf("%v, want PacketTooLarge", err)
	}
	if s := wire.Size(u, wire.V311); s != 1+4+2+4097*65537 {
		t.Errorf("Size = %d", s)
	}
}

// TestEncodeIgnoresOtherVersionFields: fields a 3.x packet cannot carry are
// dropped, not refused, so that the engine can forward 5.0 messages.
func TestEncodeIgnoresOtherVersionFields(t *testing.T) {
	props := &wire.Properties{MessageExpiry: u32p(5), User: []wire.UserProperty{{Key: "k", Value: "v"}}}
	tests := []struct {
		p, want wire.Packet
	}{
		{&wire.Publish{Topic: "t", Props: props, PacketID: 9}, &wire.Publish{Topic: "t"}},
		{&wire.Ack{Kind: wire.PUBACK, PacketID: 1, ReasonCode: 0x80, Props: props}, &wire.Ack{Kind: wire.PUBACK, PacketID: 1}},
		{&wire.Subscribe{PacketID: 1, Props: props, Subscriptions: []wire.Subscription{
			{Filter: "a", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 3}}},
			&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "a", QoS: 1}}}},
		{&wire.Unsuback{PacketID: 1, ReasonCodes: []wire.ReasonCode{0x99}, Props: props}, &wire.Unsuback{PacketID: 1}},
		{&wire.Disconnect{ReasonCode: 0x99, Props: props}, &wire.Disconnect{}},
		{&wire.Connack{Props: props}, &wire.Connack{}},
		{&wire.Connect{Version: wire.V311, Props: props, Will: &wire.Will{Topic: "w", Props: props}},
			&wire.Connect{ProtocolName: "MQTT", Version: wire.V311, Will: &wire.Will{Topic: "w"}}},
	}
	for _, tt := range tests {
		b, err := wire.AppendPacket(nil, tt.p, wire.V311)
		if err != nil {
			t.Fatalf("%T: %v", tt.p, err)
		}
		got, _, err := wire.Decode(b, wire.V311)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%T: %v\n got %s\nwant %s", tt.p, err, dump(got), dump(tt.want))
		}
	}
	// An empty but non-nil Properties is the same as nil.
	for _, p := range []wire.Packet{
		&wire.Ack{Kind: wire.PUBACK, PacketID: 1, Props: &wire.Properties{}},
		&wire.Disconnect{Props: &wire.Properties{}},
		&wire.Auth{Props: &wire.Properties{}},
	} {
		if s := wire.Size(p, wire.V5); s > 4 {
			t.Errorf("%T with empty Properties: %d bytes", p, s)
		}
	}
}

// TestEncodeNoAllocs: encoding a PUBLISH into a buffer with room does not
// allocate.
func TestEncodeNoAllocs(t *testing.T) {
	p := &wire.Publish{QoS: 1, PacketID: 1, Topic: "a/b/c", Payload: make([]byte, 256),
		Props: &wire.Properties{MessageExpiry: u32p(10), User: []wire.UserProperty{{Key: "k", Value: "v"}}}}
	buf := make([]byte, 0, 1024)
	for _, v := range versions {
		n := testing.AllocsPerRun(100, func() {
			var err error
			if buf, err = wire.AppendPacket(buf[:0], p, v); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations", v, n)
		}
	}
}

func TestProperties(t *testing.T) {
	if b := wire.AppendProperties(nil, nil); !bytes.Equal(b, []byte{0}) {
		t.Fatalf("AppendProperties(nil) = % x", b)
	}
	if p, err := wire.DecodeProperties([]byte{0}); p != nil || err != nil {
		t.Fatalf("DecodeProperties(0) = %v, %v", p, err)
	}
	// Stored blocks take any property and no value rule applies.
	all := &wire.Properties{PayloadFormat: bytep(7), MessageExpiry: u32p(1), ContentType: new("c"), ResponseTopic: "r/#",
		CorrelationData: []byte{}, SubscriptionIDs: []uint32{0, 5, 268435455}, SessionExpiry: u32p(2),
		AssignedClientID: "a", ServerKeepAlive: u16p(3), AuthMethod: new(""), AuthData: []byte("d"),
		RequestProblemInfo: bytep(1), WillDelay: u32p(4), RequestResponseInfo: bytep(0), ResponseInfo: "ri",
		ServerReference: "sr", ReasonString: "rs", ReceiveMaximum: u16p(0), TopicAliasMaximum: u16p(6),
		TopicAlias: u16p(0), MaximumQoS: bytep(2), RetainAvailable: bytep(1),
		User: []wire.UserProperty{{Key: "", Value: ""}, {Key: "k", Value: "v"}}, MaximumPacketSize: u32p(0),
		WildcardSubAvailable: bytep(1), SubIDAvailable: bytep(0), SharedSubAvailable: bytep(1)}
	b := wire.AppendProperties([]byte("x"), all)
	p, err := wire.DecodeProperties(b[1:])
	if err != nil || !reflect.DeepEqual(p, all) {
		t.Fatalf("stored round trip: %v\n got %+v\nwant %+v", err, p, all)
	}
	if _, err := wire.DecodeProperties(append(b[1:], 0)); wire.AsError(err) == nil {
		t.Errorf("trailing byte accepted")
	}
	if _, err := wire.DecodeProperties(b[1 : len(b)-1]); wire.AsError(err) == nil {
		t.Errorf("truncated block accepted")
	}
	if _, err := wire.DecodeProperties(nil); wire.AsError(err) == nil {
		t.Errorf("empty input accepted")
	}
	// Out-of-limit values panic rather than write an unreadable block.
	for _, bad := range []*wire.Properties{
		{ReasonString: strings.Repeat("x", 65536)},
		{SubscriptionIDs: []uint32{1 << 28}},
		{User: []wire.UserProperty{{Key: "\xff"}}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AppendProperties(%+v) did not panic", bad)
				}
			}()
			wire.AppendProperties(nil, bad)
		}()
	}
}

func TestErrorText(t *testing.T) {
	_, _, err := wire.Decode([]byte{0x40, 0x02, 0, 0}, wire.V311)
	if s := err.Error(); !strings.Contains(s, "PUBACK") || !strings.Contains(s, "0x82") {
		t.Errorf("error text %q", s)
	}
	if s := wire.ValidateTopicName("").Error(); strings.Contains(s, "RESERVED") || !strings.Contains(s, "0x90") {
		t.Errorf("error text %q", s)
	}
	if wire.AsError(nil) != nil || wire.AsError(bytes.ErrTooLarge) != nil {
		t.Errorf("AsError of a non-wire error")
	}
}

func TestValidReasonCode(t *testing.T) {
	for pt := wire.PacketType(0); pt < 20; pt++ {
		for c := 0; c < 256; c++ {
			want := false
			for _, x := range specReasons[pt] {
				want = want || x == wire.ReasonCode(c)
			}
			if got := wire.ValidReasonCode(pt, wire.ReasonCode(c), wire.V5); got != want {
				t.Errorf("ValidReasonCode(%s, 0x%02X, 5.0) = %v", pt, c, got)
			}
		}
	}
	if !wire.ValidReasonCode(wire.SUBACK, 0x80, wire.V31) || wire.ValidReasonCode(wire.CONNACK, 6, wire.V311) ||
		wire.ValidReasonCode(wire.PUBACK, 0x80, wire.V311) || !wire.ValidReasonCode(wire.PUBACK, 0, wire.V311) {
		t.Errorf("ValidReasonCode for 3.x")
	}
}

func TestStringers(t *testing.T) {
	if wire.V31.String() != "3.1" || wire.Version(9).String() != "level(9)" || wire.AUTH.String() != "AUTH" ||
		wire.PacketType(16).String() != "type(16)" {
		t.Errorf("stringers")
	}
}
