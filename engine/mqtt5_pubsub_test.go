package engine_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// PUBLISH properties reach 5.0 subscribers unchanged (user properties in
// order and with repetitions; request/response with response topic and
// correlation data) and are dropped toward 3.1.1 subscribers; a 3.1.1
// publisher's message reaches a 5.0 subscriber without properties.
func TestPublishPropertiesForwarded(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	requester, _ := mustConnect5(t, tb.addr, session5("requester", true, 0))
	requester.subscribe5(t, 1, nil, sub5("resp/requester", 1))
	responder, _ := mustConnect5(t, tb.addr, session5("responder", true, 0))
	responder.subscribe5(t, 1, nil, sub5("req/#", 1))
	old := dialRaw(t, tb.addr)
	old.connect(t, "old-sub", true, 60, nil)
	old.subscribe(t, 1, "req/#", 1)

	props := &wire.Properties{
		PayloadFormat:   ptrByte(1),
		ContentType:     new("application/json"),
		ResponseTopic:   "resp/requester",
		CorrelationData: []byte{0, 1, 2, 0xff},
		MessageExpiry:   ptrU32(60),
		User:            []wire.UserProperty{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "a", Value: "3"}},
	}
	requester.publishQoS1(t, 1, "req/time", `{"q":"now"}`, props)

	p := responder.expectPublish(t, 5*time.Second)
	got := p.Props
	if got == nil || deref(got.PayloadFormat) != byte(1) || deref(got.ContentType) != deref(props.ContentType) ||
		got.ResponseTopic != props.ResponseTopic || string(got.CorrelationData) != string(props.CorrelationData) ||
		fmt.Sprint(got.User) != fmt.Sprint(props.User) {
		t.Fatalf("forwarded properties %+v, want %+v", got, props)
	}
	if e := deref(got.MessageExpiry); e != uint32(60) && e != uint32(59) {
		t.Fatalf("Message Expiry Interval %v, want 60 (or 59)", e)
	}
	responder.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
	// The responder answers on the response topic with the correlation data.
	responder.publishQoS1(t, 2, got.ResponseTopic, `{"a":"noon"}`, &wire.Properties{CorrelationData: got.CorrelationData})
	reply := requester.expectPublish(t, 5*time.Second)
	if reply.Topic != "resp/requester" || reply.Props == nil || string(reply.Props.CorrelationData) != string(props.CorrelationData) {
		t.Fatalf("reply %s props %+v", reply.Topic, reply.Props)
	}
	// An empty Content Type is a Content Type: forwarded unaltered
	// (MQTT-3.3.2-20), not dropped as absent.
	requester.publishQoS1(t, 3, "req/empty", "x", &wire.Properties{ContentType: new("")})
	e := responder.expectPublish(t, 5*time.Second)
	if e.Topic != "req/empty" || e.Props == nil || e.Props.ContentType == nil || *e.Props.ContentType != "" {
		t.Fatalf("forwarded %s with properties %+v, want an empty Content Type", e.Topic, e.Props)
	}
	responder.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: e.PacketID})

	// 3.1.1 subscriber: same topic and payload, no properties (a property
	// block would corrupt the payload as 3.1.1 decodes it).
	q := old.expectPublish(t, 5*time.Second)
	if q.Topic != "req/time" || string(q.Payload) != `{"q":"now"}` || q.Props != nil {
		t.Fatalf("3.1.1 subscriber got %s %q %+v", q.Topic, q.Payload, q.Props)
	}
	// 3.1.1 publisher to a 5.0 subscriber.
	oldPub := dialRaw(t, tb.addr)
	oldPub.connect(t, "old-pub", true, 60, nil)
	oldPub.Send(&wire.Publish{QoS: 1, PacketID: 1, Topic: "req/old", Payload: []byte("from 3.1.1")})
	oldPub.expectAck(t, wire.PUBACK, 1)
	n := responder.expectPublish(t, 5*time.Second)
	if n.Topic != "req/old" || string(n.Payload) != "from 3.1.1" || n.Props != nil {
		t.Fatalf("5.0 subscriber got %s %q %+v", n.Topic, n.Payload, n.Props)
	}
}

// Message expiry counts down while a message waits in an offline queue —
// including across a crash and the time the broker was down — the
// remaining interval is forwarded, and an expired message is not delivered.
// Retained messages expire the same way.
func TestMessageExpiry(t *testing.T) {
	t.Parallel()
	clk := &testClock{}
	tb := startBroker(t, engine.Options{Now: clk.now})
	conn := session5("me-sub", false, 3600)
	sub, _ := mustConnect5(t, tb.addr, conn)
	sub.subscribe5(t, 1, nil, sub5("me/#", 1))
	sub.Send(&wire.Disconnect{})
	sub.expectClosed(t, 5*time.Second)
	// Offline in the store before the publishes: otherwise the crash
	// below may find it still connected, and the first window of its
	// queue is then taken for possibly sent (and resent though expired).
	waitStoredOffline(t, tb, "me-sub")

	pub, _ := mustConnect5(t, tb.addr, session5("me-pub", true, 0))
	pub.publishQoS1(t, 1, "me/short", "short", &wire.Properties{MessageExpiry: ptrU32(3)})
	pub.publishQoS1(t, 2, "me/long", "long", &wire.Properties{MessageExpiry: ptrU32(100)})
	pub.publishQoS1(t, 3, "me/none", "none", nil)
	pub.Send(&wire.Publish{QoS: 1, PacketID: 4, Retain: true, Topic: "me/retained", Payload: []byte("r"), Props: &wire.Properties{MessageExpiry: ptrU32(30)}})
	pub.expectAck(t, wire.PUBACK, 4)
	pub.Close()

	clk.advance(2 * time.Second)
	tb.crashFor(clk, 4*time.Second) // 6 s after publishing, 4 of them with the broker down

	sub, _ = mustConnect5(t, tb.addr, conn)
	var got []string
	for range 3 {
		p := sub.expectPublish(t, 5*time.Second)
		sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
		e := "-"
		if p.Props != nil && p.Props.MessageExpiry != nil {
			e = fmt.Sprint(*p.Props.MessageExpiry)
		}
		got = append(got, p.Topic+"="+e)
	}
	sub.expectSilence(t, 200*time.Millisecond)
	slices.Sort(got)
	if fmt.Sprint(got) != "[me/long=94 me/none=- me/retained=24]" {
		t.Fatalf("deliveries after 6 s: %v, want [me/long=94 me/none=- me/retained=24] (me/short expired)", got)
	}
	// A new subscription gets the retained message with what is left of
	// its interval, and nothing once it has run out.
	late, _ := mustConnect5(t, tb.addr, session5("me-late", true, 0))
	late.subscribe5(t, 1, nil, sub5("me/retained", 1))
	p := late.expectPublish(t, 5*time.Second)
	if !p.Retain || deref(p.Props.MessageExpiry) != uint32(24) {
		t.Fatalf("retained delivery retain=%v expiry %v, want 24", p.Retain, deref(p.Props.MessageExpiry))
	}
	clk.advance(25 * time.Second)
	later, _ := mustConnect5(t, tb.addr, session5("me-later", true, 0))
	later.subscribe5(t, 1, nil, sub5("me/retained", 1))
	later.expectSilence(t, 200*time.Millisecond)
}

// Subscription identifiers: every matching subscription's identifier on the
// delivery, replaced by a new SUBSCRIBE of the same filter, kept across a
// restart.
func TestSubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	conn := session5("sid", false, 3600)
	sub, _ := mustConnect5(t, tb.addr, conn)
	sub.subscribe5(t, 1, &wire.Properties{SubscriptionIDs: []uint32{5}}, sub5("si/#", 1))
	sub.subscribe5(t, 2, &wire.Properties{SubscriptionIDs: []uint32{268435455}}, sub5("si/+/x", 1))
	sub.subscribe5(t, 3, nil, sub5("si/plain", 1))
	pub, _ := mustConnect5(t, tb.addr, session5("sid-pub", true, 0))
	seen := map[string]bool{}
	ids := func() string {
		t.Helper()
		p := sub.expectPublish(t, 5*time.Second)
		sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
		for seen[string(p.Payload)] {
			// A redelivery after the restart: the shutdown may close the
			// connection before the broker has read the last PUBACK.
			p = sub.expectPublish(t, 5*time.Second)
			sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
		}
		seen[string(p.Payload)] = true
		if p.Props == nil {
			return "[]"
		}
		s := slices.Clone(p.Props.SubscriptionIDs)
		slices.Sort(s)
		return fmt.Sprint(s)
	}
	pub.publishQoS1(t, 1, "si/a/x", "1", nil)
	if got := ids(); got != "[5 268435455]" {
		t.Fatalf("overlapping subscriptions: ids %s", got)
	}
	pub.publishQoS1(t, 2, "si/b", "2", nil)
	if got := ids(); got != "[5]" {
		t.Fatalf("ids %s, want [5]", got)
	}
	sub.Close()
	tb.restart()
	sub, _ = mustConnect5(t, tb.addr, conn)
	pub, _ = mustConnect5(t, tb.addr, session5("sid-pub", true, 0))
	pub.publishQoS1(t, 1, "si/b", "3", nil)
	if got := ids(); got != "[5]" {
		t.Fatalf("after restart: ids %s, want [5]", got)
	}
	sub.subscribe5(t, 4, &wire.Properties{SubscriptionIDs: []uint32{9}}, sub5("si/#", 1))
	pub.publishQoS1(t, 2, "si/b", "4", nil)
	if got := ids(); got != "[9]" {
		t.Fatalf("after re-subscribing: ids %s, want [9]", got)
	}
	pub.publishQoS1(t, 3, "si/plain", "5", nil)
	if got := ids(); got != "[9]" { // si/# (id 9) and si/plain (none) overlap
		t.Fatalf("ids %s, want [9]", got)
	}
}

// No Local: a client does not get its own messages on that subscription.
func TestNoLocal(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	me, _ := mustConnect5(t, tb.addr, session5("nl-me", true, 0))
	me.subscribe5(t, 1, nil, wire.Subscription{Filter: "nl/t", QoS: 1, NoLocal: true})
	other, _ := mustConnect5(t, tb.addr, session5("nl-other", true, 0))
	other.subscribe5(t, 1, nil, sub5("nl/t", 1))
	me.publishQoS1(t, 1, "nl/t", "mine", nil)
	if p := other.expectPublish(t, 5*time.Second); string(p.Payload) != "mine" {
		t.Fatalf("other got %q", p.Payload)
	}
	other.publishQoS1(t, 2, "nl/t", "theirs", nil)
	if p := me.expectPublish(t, 5*time.Second); string(p.Payload) != "theirs" {
		t.Fatalf("got %q, want theirs (and never mine)", p.Payload)
	}
	me.expectSilence(t, 200*time.Millisecond)
}

// Retain As Published keeps RETAIN on live forwards; without it RETAIN is 0.
func TestRetainAsPublished(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	rap, _ := mustConnect5(t, tb.addr, session5("rap", true, 0))
	rap.subscribe5(t, 1, nil, wire.Subscription{Filter: "rap/t", QoS: 1, RetainAsPublished: true})
	plain, _ := mustConnect5(t, tb.addr, session5("rap-plain", true, 0))
	plain.subscribe5(t, 1, nil, sub5("rap/t", 1))
	pub, _ := mustConnect5(t, tb.addr, session5("rap-pub", true, 0))
	pub.Send(&wire.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: "rap/t", Payload: []byte("r")})
	pub.expectAck(t, wire.PUBACK, 1)
	if p := rap.expectPublish(t, 5*time.Second); !p.Retain {
		t.Fatal("Retain As Published: RETAIN cleared")
	}
	if p := plain.expectPublish(t, 5*time.Second); p.Retain {
		t.Fatal("without Retain As Published: RETAIN set on a live forward")
	}
}

// Retain Handling 0 sends retained messages at every SUBSCRIBE, 1 only for a
// new subscription, 2 never.
func TestRetainHandling(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	pub, _ := mustConnect5(t, tb.addr, session5("rh-pub", true, 0))
	for i, tp := range []string{"rh/0", "rh/1", "rh/2"} {
		pub.Send(&wire.Publish{QoS: 1, PacketID: uint16(i + 1), Retain: true, Topic: tp, Payload: []byte(tp)})
		pub.expectAck(t, wire.PUBACK, uint16(i+1))
	}
	r, _ := mustConnect5(t, tb.addr, session5("rh", true, 0))
	pid := uint16(0)
	retained := func(filter string, rh byte) int {
		t.Helper()
		pid++
		r.subscribe5(t, pid, nil, wire.Subscription{Filter: filter, QoS: 1, RetainHandling: rh})
		n := 0
		for {
			p, err := r.Recv(200 * time.Millisecond)
			if err != nil {
				return n
			}
			if pp, ok := p.(*wire.Publish); ok && pp.Retain && pp.Topic == filter {
				r.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: pp.PacketID})
				n++
			}
		}
	}
	for _, step := range []struct {
		filter string
		rh     byte
		want   int
	}{
		{"rh/0", 0, 1}, {"rh/0", 0, 1}, // every time
		{"rh/1", 1, 1}, {"rh/1", 1, 0}, // only when new
		{"rh/2", 2, 0}, {"rh/2", 2, 0}, // never
	} {
		if got := retained(step.filter, step.rh); got != step.want {
			t.Fatalf("SUBSCRIBE %s retain handling %d: %d retained messages, want %d", step.filter, step.rh, got, step.want)
		}
	}
}

// The broker's capability switches refuse what they turn off.
func TestSubscribeCapabilityRefusals(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{Features: engine.Features{NoSharedSubs: true, NoSubscriptionIDs: true}})
	r, _ := mustConnect5(t, tb.addr, session5("nosh", true, 0))
	sa := r.subscribe5(t, 1, nil, sub5("$share/g/t", 1), sub5("t", 1))
	if fmt.Sprint(sa.ReasonCodes) != fmt.Sprint([]wire.ReasonCode{wire.SharedSubNotSupported, wire.GrantedQoS1}) {
		t.Fatalf("SUBACK %v, want [0x9E 0x01]", sa.ReasonCodes)
	}
	r3 := dialRaw(t, tb.addr)
	r3.connect(t, "nosh3", true, 60, nil)
	if sa := r3.subscribe(t, 1, "$share/g/t", 1); fmt.Sprint(sa.ReasonCodes) != fmt.Sprint([]wire.ReasonCode{wire.SubackFailure3}) {
		t.Fatalf("3.1.1 SUBACK %v, want [0x80]", sa.ReasonCodes)
	}
	r.Send(&wire.Subscribe{PacketID: 2, Props: &wire.Properties{SubscriptionIDs: []uint32{1}}, Subscriptions: []wire.Subscription{sub5("u", 1)}})
	r.expectDisconnect(t, wire.SubIDsNotSupported)
}

// A 3.1.1 client connecting with the bridge bit in its protocol level
// (0x84, mosquitto's bridges) gets its subscriptions as No Local and Retain
// As Published: a two-way bridge sees no echo of what it published and
// keeps the retain flag of live messages. A plain 3.1.1 client gets both.
func TestBridgeProtocolLevel(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	bridge := dialRaw(t, tb.addr)
	if ack := bridge.Connect(t, &wire.Connect{Version: wire.V311, Bridge: true, CleanStart: true, ClientID: "br-edge"}); ack.ReasonCode != 0 {
		t.Fatalf("bridge CONNECT refused: 0x%02X", byte(ack.ReasonCode))
	}
	bridge.subscribe(t, 1, "br/#", 1)
	plain := dialRaw(t, tb.addr)
	plain.connect(t, "br-plain", true, 0, nil)
	plain.subscribe(t, 1, "br/#", 1)

	bridge.Send(&wire.Publish{QoS: 1, PacketID: 2, Retain: true, Topic: "br/up", Payload: []byte("from-bridge")})
	bridge.expectAck(t, wire.PUBACK, 2)
	if p := plain.expectPublish(t, 5*time.Second); string(p.Payload) != "from-bridge" || p.Retain {
		t.Fatalf("plain subscriber got %q retain=%v, want from-bridge without RETAIN", p.Payload, p.Retain)
	}
	plain.Send(&wire.Publish{QoS: 1, PacketID: 3, Retain: true, Topic: "br/down", Payload: []byte("from-plain")})
	plain.expectAck(t, wire.PUBACK, 3)
	if p := bridge.expectPublish(t, 5*time.Second); string(p.Payload) != "from-plain" || !p.Retain {
		t.Fatalf("bridge got %q retain=%v, want from-plain with RETAIN as published (and never its own message)", p.Payload, p.Retain)
	}
	if p := plain.expectPublish(t, 5*time.Second); string(p.Payload) != "from-plain" {
		t.Fatalf("plain subscriber got %q, want its own from-plain (no No Local for plain clients)", p.Payload)
	}
	bridge.expectSilence(t, 200*time.Millisecond)
}
