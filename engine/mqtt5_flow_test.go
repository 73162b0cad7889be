package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// The broker's Receive Maximum: QoS 2 PUBLISHes count until their PUBREL,
// a retransmission is not counted twice, and one more than allowed is
// DISCONNECT 0x93. QoS 1 ones count until their PUBACK.
func TestReceiveMaximumInbound(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{Features: engine.Features{ReceiveMaximum: 2}})
	pub := func(r *rawConn, pid uint16, dup bool) {
		r.Send(&wire.Publish{QoS: 2, PacketID: pid, Dup: dup, Topic: "rm/t", Payload: []byte("x")})
	}
	t.Run("exceeded", func(t *testing.T) {
		r, ack := mustConnect5(t, tb.addr, session5("rm-over", true, 0))
		if deref(ack.Props.ReceiveMaximum) != uint16(2) {
			t.Fatalf("Receive Maximum %v, want 2", deref(ack.Props.ReceiveMaximum))
		}
		pub(r, 1, false)
		r.expectAck(t, wire.PUBREC, 1)
		pub(r, 2, false)
		r.expectAck(t, wire.PUBREC, 2)
		pub(r, 2, true) // a retransmission takes no new quota
		r.expectAck(t, wire.PUBREC, 2)
		pub(r, 3, false)
		r.expectDisconnect(t, wire.ReceiveMaximumExceeded)
	})
	t.Run("released by PUBREL", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("rm-ok", true, 0))
		for pid := uint16(1); pid <= 6; pid++ {
			pub(r, pid, false)
			r.expectAck(t, wire.PUBREC, pid)
			if pid%2 == 0 { // two open at a time, never three
				r.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: pid - 1})
				r.expectAck(t, wire.PUBCOMP, pid-1)
				r.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: pid})
				r.expectAck(t, wire.PUBCOMP, pid)
			}
		}
		// QoS 1 releases its quota at PUBACK: many in sequence are fine.
		for pid := uint16(10); pid < 20; pid++ {
			r.publishQoS1(t, pid, "rm/t", "y", nil)
		}
	})
}

// The client's Receive Maximum bounds what the broker has in flight toward
// it.
func TestReceiveMaximumOutbound(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	sub, _ := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "rmo", CleanStart: true, KeepAlive: 60,
		Props: &wire.Properties{ReceiveMaximum: ptrU16(2)}})
	sub.subscribe5(t, 1, nil, sub5("rmo/t", 2))
	pub, _ := mustConnect5(t, tb.addr, session5("rmo-pub", true, 0))
	for i := range 5 {
		pub.publishQoS1(t, uint16(i+1), "rmo/t", fmt.Sprint(i), nil)
	}
	a := sub.expectPublish(t, 5*time.Second)
	b := sub.expectPublish(t, 5*time.Second)
	sub.expectSilence(t, 300*time.Millisecond)
	sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: a.PacketID})
	c := sub.expectPublish(t, 5*time.Second)
	sub.expectSilence(t, 200*time.Millisecond)
	if string(a.Payload)+string(b.Payload)+string(c.Payload) != "012" {
		t.Fatalf("order %q %q %q", a.Payload, b.Payload, c.Payload)
	}
}

// Topic aliases from the client: set, used, remapped; out of range is
// DISCONNECT 0x94, an alias never set is a Protocol Error; subscribers get
// the full topic name.
func TestTopicAliasesInbound(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	sub, _ := mustConnect5(t, tb.addr, session5("ta-sub", true, 0))
	sub.subscribe5(t, 1, nil, sub5("alias/#", 0))
	sub3 := dialRaw(t, tb.addr)
	sub3.connect(t, "ta-sub3", true, 60, nil)
	sub3.subscribe(t, 1, "alias/#", 0)

	pub, _ := mustConnect5(t, tb.addr, session5("ta-pub", true, 0))
	send := func(topic string, alias uint16, payload string) {
		pub.Send(&wire.Publish{Topic: topic, Payload: []byte(payload), Props: &wire.Properties{TopicAlias: ptrU16(alias)}})
	}
	send("alias/one", 1, "a")
	send("", 1, "b")
	send("alias/two", 1, "c") // remap alias 1
	send("", 1, "d")
	for _, want := range []string{"alias/one a", "alias/one b", "alias/two c", "alias/two d"} {
		for _, r := range []*rawConn{sub, sub3} {
			p := r.expectPublish(t, 5*time.Second)
			if got := p.Topic + " " + string(p.Payload); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
			if p.Props != nil && p.Props.TopicAlias != nil {
				t.Fatalf("the client's topic alias was forwarded: %d", *p.Props.TopicAlias)
			}
		}
	}
	t.Run("above maximum", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("ta-max", true, 0))
		r.Send(&wire.Publish{Topic: "alias/x", Props: &wire.Properties{TopicAlias: ptrU16(65)}})
		r.expectDisconnect(t, wire.TopicAliasInvalid)
	})
	t.Run("never set", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("ta-unset", true, 0))
		r.Send(&wire.Publish{Topic: "", Props: &wire.Properties{TopicAlias: ptrU16(5)}})
		r.expectDisconnect(t, wire.ProtocolError)
	})
	t.Run("per connection", func(t *testing.T) {
		// An alias set on one connection means nothing on the next.
		r, _ := mustConnect5(t, tb.addr, session5("ta-pub", true, 0))
		r.Send(&wire.Publish{Topic: "", Props: &wire.Properties{TopicAlias: ptrU16(1)}})
		r.expectDisconnect(t, wire.ProtocolError)
	})
	t.Run("not allowed", func(t *testing.T) {
		tb2 := startBroker(t, engine.Options{Features: engine.Features{NoTopicAliases: true}})
		r, _ := mustConnect5(t, tb2.addr, session5("ta-none", true, 0))
		r.Send(&wire.Publish{Topic: "alias/x", Props: &wire.Properties{TopicAlias: ptrU16(1)}})
		r.expectDisconnect(t, wire.TopicAliasInvalid)
	})
}

// Outbound topic aliases (an option): never above the client's maximum, the
// topic sent with its alias first, then an empty topic; slots reused round
// robin; none toward a client that allows none.
func TestTopicAliasesOutbound(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{Features: engine.Features{OutboundTopicAliases: true}})
	sub, _ := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "tao", CleanStart: true, KeepAlive: 60,
		Props: &wire.Properties{TopicAliasMaximum: ptrU16(2)}})
	sub.subscribe5(t, 1, nil, sub5("o/#", 0))
	plain, _ := mustConnect5(t, tb.addr, session5("tao-plain", true, 0))
	plain.subscribe5(t, 1, nil, sub5("o/#", 0))
	pub, _ := mustConnect5(t, tb.addr, session5("tao-pub", true, 0))
	topics := []string{"o/a", "o/a", "o/b", "o/c", "o/a", "o/c"}
	for i, tp := range topics {
		pub.Send(&wire.Publish{Topic: tp, Payload: []byte(fmt.Sprint(i))})
	}
	// wire topic, alias
	want := [][2]any{{"o/a", uint16(1)}, {"", uint16(1)}, {"o/b", uint16(2)}, {"o/c", uint16(1)}, {"o/a", uint16(2)}, {"", uint16(1)}}
	mapping := map[uint16]string{}
	for i, w := range want {
		p := sub.expectPublish(t, 5*time.Second)
		if p.Props == nil || p.Props.TopicAlias == nil {
			t.Fatalf("delivery %d without a topic alias", i)
		}
		a := *p.Props.TopicAlias
		if p.Topic != w[0] || a != w[1] {
			t.Fatalf("delivery %d: topic %q alias %d, want %q alias %d", i, p.Topic, a, w[0], w[1])
		}
		if p.Topic != "" {
			mapping[a] = p.Topic
		}
		if mapping[a] != topics[i] {
			t.Fatalf("delivery %d resolves to %q, want %q", i, mapping[a], topics[i])
		}
		q := plain.expectPublish(t, 5*time.Second)
		if q.Topic != topics[i] || (q.Props != nil && q.Props.TopicAlias != nil) {
			t.Fatalf("client without aliases got topic %q alias %v", q.Topic, q.Props)
		}
	}
}

// A PUBLISH that fits the client's Maximum Packet Size only without the
// alias it would set up goes without one, not dropped (MQTT-3.1.2-24 forbids
// only packets over the maximum).
func TestTopicAliasYieldsToMaximumPacketSize(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{Features: engine.Features{OutboundTopicAliases: true}})
	const max = 30
	sub, _ := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "tay", CleanStart: true, KeepAlive: 60,
		Props: &wire.Properties{TopicAliasMaximum: ptrU16(2), MaximumPacketSize: ptrU32(max)}})
	sub.subscribe5(t, 1, nil, sub5("f/#", 0))
	pub, _ := mustConnect5(t, tb.addr, session5("tay-pub", true, 0))
	fits := &wire.Publish{Topic: "f/fit", Payload: make([]byte, 20)}
	if n := wire.Size(fits, wire.V5); n != max {
		t.Fatalf("test packet is %d bytes without an alias, want %d", n, max)
	}
	pub.Send(fits)
	pub.Send(&wire.Publish{Topic: "f/small", Payload: []byte("s")})
	for _, want := range []string{"f/fit", "f/small"} {
		p := sub.expectPublish(t, 5*time.Second)
		if p.Topic != want {
			t.Fatalf("got topic %q, want %q", p.Topic, want)
		}
		if want == "f/fit" && p.Props != nil && p.Props.TopicAlias != nil {
			t.Fatalf("the packet that fits only without an alias carries alias %d", *p.Props.TopicAlias)
		}
	}
}

// PUBLISHes beyond the broker's capabilities: 5.0 DISCONNECT 0x9B / 0x9A,
// 3.1.1 a closed connection; SUBSCRIBE is granted at most the maximum QoS.
func TestPublishCapabilityRefusals(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{Features: engine.Features{MaximumQoS: ptrByte(1), NoRetain: true}})
	t.Run("QoS above maximum", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("cap-q", true, 0))
		r.Send(&wire.Publish{QoS: 2, PacketID: 1, Topic: "c", Payload: []byte("x")})
		r.expectDisconnect(t, wire.QoSNotSupported)
	})
	t.Run("retain not available", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("cap-r", true, 0))
		r.Send(&wire.Publish{Retain: true, Topic: "c", Payload: []byte("x")})
		r.expectDisconnect(t, wire.RetainNotSupported)
	})
	t.Run("3.1.1 QoS above maximum", func(t *testing.T) {
		r := dialRaw(t, tb.addr)
		r.connect(t, "cap-3", true, 60, nil)
		r.Send(&wire.Publish{QoS: 2, PacketID: 1, Topic: "c", Payload: []byte("x")})
		r.expectClosed(t, 5*time.Second)
	})
	t.Run("granted QoS capped", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("cap-s", true, 0))
		sa := r.subscribe5(t, 1, nil, sub5("c/#", 2), sub5("d", 0))
		if len(sa.ReasonCodes) != 2 || sa.ReasonCodes[0] != wire.GrantedQoS1 || sa.ReasonCodes[1] != wire.Success {
			t.Fatalf("SUBACK %v, want [1 0]", sa.ReasonCodes)
		}
	})
}

// A payload that is not UTF-8 although the Payload Format Indicator says so
// is refused with 0x99 and not delivered; a valid one is delivered with its
// payload format and content type.
func TestPayloadFormatIndicator(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	sub, _ := mustConnect5(t, tb.addr, session5("pf-sub", true, 0))
	sub.subscribe5(t, 1, nil, sub5("pf/#", 2))
	pub, _ := mustConnect5(t, tb.addr, session5("pf-pub", true, 0))
	bad := &wire.Properties{PayloadFormat: ptrByte(1)}
	if a := pub.publishQoS1(t, 1, "pf/bad", "\xff\xfe", bad); a.ReasonCode != wire.PayloadFormatInvalid || reasonOf(a.Props) == "" {
		t.Fatalf("PUBACK 0x%02X %q, want 0x99 with a reason string", byte(a.ReasonCode), reasonOf(a.Props))
	}
	pub.Send(&wire.Publish{QoS: 2, PacketID: 2, Topic: "pf/bad", Payload: []byte("\xc3"), Props: bad})
	if a := pub.expectAck(t, wire.PUBREC, 2); a.ReasonCode != wire.PayloadFormatInvalid {
		t.Fatalf("PUBREC 0x%02X, want 0x99", byte(a.ReasonCode))
	}
	// The QoS 2 exchange ended at the PUBREC with an error: no packet id is kept.
	pub.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: 2})
	if a := pub.expectAck(t, wire.PUBCOMP, 2); a.ReasonCode != wire.PacketIDNotFound {
		t.Fatalf("PUBCOMP 0x%02X, want 0x92", byte(a.ReasonCode))
	}
	good := &wire.Properties{PayloadFormat: ptrByte(1), ContentType: new("text/plain; charset=utf-8")}
	if a := pub.publishQoS1(t, 3, "pf/good", "grüße", good); a.ReasonCode != wire.Success {
		t.Fatalf("PUBACK 0x%02X for a valid payload", byte(a.ReasonCode))
	}
	p := sub.expectPublish(t, 5*time.Second)
	if p.Topic != "pf/good" || p.Props == nil || deref(p.Props.PayloadFormat) != byte(1) || deref(p.Props.ContentType) != deref(good.ContentType) {
		t.Fatalf("delivery %s props %+v", p.Topic, p.Props)
	}
	sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
	sub.expectSilence(t, 200*time.Millisecond)
	pub.Send(&wire.Publish{Topic: "pf/bad", Payload: []byte{0xff}, Props: bad})
	pub.expectDisconnect(t, wire.PayloadFormatInvalid)
}

// Reason codes on the acks: 0x10 when nobody subscribed, 0x00 when someone
// did, 0x92 for unknown packet ids, 0x11 for a missing subscription.
func TestAckReasonCodes(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	r, _ := mustConnect5(t, tb.addr, session5("rc", true, 0))
	if a := r.publishQoS1(t, 1, "nobody/here", "x", nil); a.ReasonCode != wire.NoMatchingSubscribers {
		t.Fatalf("PUBACK 0x%02X, want 0x10", byte(a.ReasonCode))
	}
	r.Send(&wire.Publish{QoS: 2, PacketID: 2, Topic: "nobody/here", Payload: []byte("x")})
	if a := r.expectAck(t, wire.PUBREC, 2); a.ReasonCode != wire.NoMatchingSubscribers {
		t.Fatalf("PUBREC 0x%02X, want 0x10", byte(a.ReasonCode))
	}
	r.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: 2})
	if a := r.expectAck(t, wire.PUBCOMP, 2); a.ReasonCode != wire.Success {
		t.Fatalf("PUBCOMP 0x%02X, want 0x00", byte(a.ReasonCode))
	}
	r.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: 9})
	if a := r.expectAck(t, wire.PUBCOMP, 9); a.ReasonCode != wire.PacketIDNotFound {
		t.Fatalf("PUBCOMP 0x%02X, want 0x92", byte(a.ReasonCode))
	}
	r.Send(&wire.Ack{Kind: wire.PUBREC, PacketID: 9})
	if a := r.expectAck(t, wire.PUBREL, 9); a.ReasonCode != wire.PacketIDNotFound {
		t.Fatalf("PUBREL 0x%02X, want 0x92", byte(a.ReasonCode))
	}
	sa := r.subscribe5(t, 3, nil, sub5("rc/0", 0), sub5("rc/1", 1), sub5("rc/2", 2))
	if fmt.Sprint(sa.ReasonCodes) != "[0 1 2]" {
		t.Fatalf("SUBACK %v", sa.ReasonCodes)
	}
	// The delivery to itself and the PUBACK may come in either order.
	r.Send(&wire.Publish{QoS: 1, PacketID: 4, Topic: "rc/1", Payload: []byte("x")})
	for gotAck, gotPub := false, false; !gotAck || !gotPub; {
		switch p := r.Expect(t, 5*time.Second).(type) {
		case *wire.Ack:
			if p.Kind != wire.PUBACK || p.PacketID != 4 || p.ReasonCode != wire.Success {
				t.Fatalf("want PUBACK 4 0x00 with a subscriber, got %#v", p)
			}
			gotAck = true
		case *wire.Publish:
			gotPub = true
		default:
			t.Fatalf("want PUBACK 4 and the delivery, got %s", p.Type())
		}
	}
	r.Send(&wire.Unsubscribe{PacketID: 5, Filters: []string{"rc/1", "rc/none"}})
	ua, ok := r.Expect(t, 5*time.Second).(*wire.Unsuback)
	if !ok || fmt.Sprint(ua.ReasonCodes) != fmt.Sprint([]wire.ReasonCode{wire.Success, wire.NoSubscriptionExisted}) {
		t.Fatalf("UNSUBACK %#v, want [0x00 0x11]", ua)
	}
}

// A subscriber's PUBREC with an error code ends the QoS 2 delivery: no
// PUBREL, the window slot is free, and the message is not sent again.
func TestPubrecErrorEndsDelivery(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	conn := &wire.Connect{ClientID: "refuser", KeepAlive: 60, Props: &wire.Properties{SessionExpiry: ptrU32(300), ReceiveMaximum: ptrU16(1)}}
	sub, _ := mustConnect5(t, tb.addr, conn)
	sub.subscribe5(t, 1, nil, sub5("ref/t", 2))
	pub, _ := mustConnect5(t, tb.addr, session5("ref-pub", true, 0))
	pub.publishQoS2(t, 1, "ref/t", "first", nil)
	pub.publishQoS2(t, 2, "ref/t", "second", nil)
	p := sub.expectPublish(t, 5*time.Second)
	if string(p.Payload) != "first" {
		t.Fatalf("got %q", p.Payload)
	}
	sub.Send(&wire.Ack{Kind: wire.PUBREC, PacketID: p.PacketID, ReasonCode: wire.UnspecifiedError})
	// No PUBREL: the next message takes the window slot at once.
	if q := sub.expectPublish(t, 5*time.Second); string(q.Payload) != "second" {
		t.Fatalf("got %q after the refusal, want second", q.Payload)
	} else {
		sub.Send(&wire.Ack{Kind: wire.PUBREC, PacketID: q.PacketID})
		sub.expectAck(t, wire.PUBREL, q.PacketID)
		sub.Send(&wire.Ack{Kind: wire.PUBCOMP, PacketID: q.PacketID})
	}
	sub.Send(&wire.Disconnect{})
	sub.expectClosed(t, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	sub, _ = mustConnect5(t, tb.addr, conn)
	sub.expectSilence(t, 300*time.Millisecond) // the refused message is not redelivered
}
