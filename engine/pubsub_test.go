package engine_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

func TestPublishSubscribeQoS(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	cases := []struct {
		name           string
		pubQoS, subQoS byte
		wantQoS        byte
	}{
		{"qos0->0", 0, 0, 0},
		{"qos1->1", 1, 1, 1},
		{"qos2->2", 2, 2, 2},
		{"qos2 downgraded to sub qos1", 2, 1, 1},
		{"qos1 downgraded to sub qos0", 1, 0, 0},
		{"qos0 not upgraded by sub qos2", 0, 2, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := fmt.Sprintf("qos/%d", i)
			got := newReceived()
			sub := connect(t, tb.addr, "sub-"+strconv.Itoa(i))
			defer sub.Disconnect(100)
			subscribe(t, sub, topic, tc.subQoS, got.handler)
			pub := connect(t, tb.addr, "pub-"+strconv.Itoa(i))
			defer pub.Disconnect(100)
			publish(t, pub, topic, tc.pubQoS, false, "hello")
			m := got.waitN(t, 1, 5*time.Second)[0]
			if string(m.Payload()) != "hello" || m.Topic() != topic || m.Qos() != tc.wantQoS || m.Retained() {
				t.Fatalf("got topic=%q payload=%q qos=%d retained=%v, want qos %d", m.Topic(), m.Payload(), m.Qos(), m.Retained(), tc.wantQoS)
			}
		})
	}
}

func TestWildcardsAndDollarTopics(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	cases := []struct {
		filter string
		topic  string
		match  bool
	}{
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "x/y", true},
		// $SYS/ itself is the broker's (clients cannot publish there: see
		// sys_test.go, which checks the same rule on the broker's topics).
		{"#", "$app/x", false},
		{"+/x", "$app/x", false},
		{"$app/#", "$app/x", true},
		{"+/+", "/a", true},
	}
	for i, tc := range cases {
		t.Run(tc.filter+" "+tc.topic, func(t *testing.T) {
			got := newReceived()
			sub := connect(t, tb.addr, fmt.Sprintf("wsub-%d", i))
			defer sub.Disconnect(100)
			subscribe(t, sub, tc.filter, 1, got.handler)
			sentinel := fmt.Sprintf("sentinel/%d", i)
			subscribe(t, sub, sentinel, 1, got.handler)
			pub := connect(t, tb.addr, fmt.Sprintf("wpub-%d", i))
			defer pub.Disconnect(100)
			publish(t, pub, tc.topic, 1, false, "m")
			// Per-publisher ordering: once the sentinel is here, the first
			// message has been delivered if it ever will be.
			publish(t, pub, sentinel, 1, false, "end")
			var msgs []paho.Message
			for done := false; !done; {
				msgs = got.waitN(t, len(msgs)+1, 5*time.Second)
				for _, m := range msgs {
					done = done || m.Topic() == sentinel
				}
			}
			n := 0
			for _, m := range msgs {
				if m.Topic() == tc.topic {
					n++
				}
			}
			if (n == 1) != tc.match || n > 1 {
				t.Fatalf("filter %q topic %q: delivered %d times, want match=%v", tc.filter, tc.topic, n, tc.match)
			}
		})
	}
}

func TestOverlappingSubscriptionsDeliverOnceAtMaxQoS(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	got := newReceived()
	sub := connect(t, tb.addr, "overlap-sub", withHandler(got))
	defer sub.Disconnect(100)
	wait(t, sub.SubscribeMultiple(map[string]byte{"o/#": 0, "o/+": 2, "o/x": 1}, nil), "subscribe")
	pub := connect(t, tb.addr, "overlap-pub")
	defer pub.Disconnect(100)
	publish(t, pub, "o/x", 2, false, "once")
	publish(t, pub, "o/y/z", 2, false, "sentinel")
	msgs := got.waitN(t, 2, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	if got.count() != 2 {
		t.Fatalf("got %d messages, want 2 (one per topic)", got.count())
	}
	for _, m := range msgs {
		if m.Topic() == "o/x" && m.Qos() != 2 {
			t.Fatalf("o/x delivered at QoS %d, want 2 (max of overlapping)", m.Qos())
		}
		if m.Topic() == "o/y/z" && m.Qos() != 0 {
			t.Fatalf("o/y/z delivered at QoS %d, want 0", m.Qos())
		}
	}
}

func TestOrderingPerPublisher(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			got := newReceived()
			id := fmt.Sprintf("order-%d", qos)
			sub := connect(t, tb.addr, id+"-sub")
			defer sub.Disconnect(100)
			subscribe(t, sub, id+"/t", qos, got.handler)
			pub := connect(t, tb.addr, id+"-pub")
			defer pub.Disconnect(100)
			const n = 300
			toks := make([]paho.Token, n)
			for i := 0; i < n; i++ {
				toks[i] = pub.Publish(id+"/t", qos, false, strconv.Itoa(i))
			}
			for _, tok := range toks {
				wait(t, tok, "publish")
			}
			msgs := got.waitN(t, n, 10*time.Second)
			for i, m := range msgs {
				if string(m.Payload()) != strconv.Itoa(i) {
					t.Fatalf("message %d is %q: out of order", i, m.Payload())
				}
			}
		})
	}
}

// A retained change at QoS 0 is made durable before anyone sees it: after
// a power cut the retained store is as the subscribers last saw it, not an
// older value brought back (set, replaced and deleted at QoS 0).
func TestRetainedQoS0SurvivesPowerCut(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	pub := dialRaw(t, tb.addr)
	pub.connect(t, "r0-pub", true, 0, nil)
	pub.Send(&wire.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: "r0/del", Payload: []byte("old")})
	pub.expectAck(t, wire.PUBACK, 1)
	pub.Send(&wire.Publish{QoS: 1, PacketID: 2, Retain: true, Topic: "r0/rep", Payload: []byte("old")})
	pub.expectAck(t, wire.PUBACK, 2)
	watch := dialRaw(t, tb.addr)
	watch.connect(t, "r0-watch", true, 0, nil)
	watch.subscribe(t, 1, "r0/#", 0)
	for range 2 {
		watch.expectPublish(t, 5*time.Second) // the two retained values
	}
	pub.Send(&wire.Publish{Retain: true, Topic: "r0/del"})
	pub.Send(&wire.Publish{Retain: true, Topic: "r0/rep", Payload: []byte("new")})
	pub.Send(&wire.Publish{Retain: true, Topic: "r0/set", Payload: []byte("set")})
	for range 3 {
		watch.expectPublish(t, 5*time.Second) // seen live: so they must survive
	}
	pub.Close()
	watch.Close()
	tb.crash()
	after := dialRaw(t, tb.addr)
	defer after.Close()
	after.connect(t, "r0-after", true, 0, nil)
	after.subscribe(t, 1, "r0/#", 0)
	got := map[string]string{}
	for range 2 {
		p := after.expectPublish(t, 5*time.Second)
		got[p.Topic] = string(p.Payload)
	}
	after.expectSilence(t, 200*time.Millisecond)
	if want := map[string]string{"r0/rep": "new", "r0/set": "set"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("retained after a power cut %v, want %v (r0/del deleted)", got, want)
	}
}

func TestRetained(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	pub := connect(t, tb.addr, "ret-pub")
	defer pub.Disconnect(100)
	publish(t, pub, "ret/a", 1, true, "A1")
	publish(t, pub, "ret/a", 1, true, "A2") // replaces
	publish(t, pub, "ret/b", 0, true, "B")
	publish(t, pub, "ret/c", 1, true, "C")
	publish(t, pub, "ret/c", 1, true, "") // clears

	got := newReceived()
	sub := connect(t, tb.addr, "ret-sub")
	defer sub.Disconnect(100)
	subscribe(t, sub, "ret/#", 1, got.handler)
	msgs := got.waitN(t, 2, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	if got.count() != 2 {
		t.Fatalf("got %d retained messages, want 2", got.count())
	}
	want := map[string]string{"ret/a": "A2", "ret/b": "B"}
	for _, m := range msgs {
		if !m.Retained() || want[m.Topic()] != string(m.Payload()) {
			t.Fatalf("retained %s=%q retain=%v; want %v", m.Topic(), m.Payload(), m.Retained(), want)
		}
	}
	// A live publish with RETAIN is forwarded with RETAIN 0 (3.1.1 §3.3.1.3).
	publish(t, pub, "ret/a", 1, true, "A3")
	m := got.waitN(t, 3, 5*time.Second)[2]
	if m.Retained() || string(m.Payload()) != "A3" {
		t.Fatalf("live retained publish delivered retain=%v payload=%q", m.Retained(), m.Payload())
	}
	// Retained messages survive a restart.
	sub.Disconnect(100)
	pub.Disconnect(100)
	tb.restart()
	got2 := newReceived()
	sub2 := connect(t, tb.addr, "ret-sub2")
	defer sub2.Disconnect(100)
	subscribe(t, sub2, "ret/+", 0, got2.handler)
	msgs = got2.waitN(t, 2, 5*time.Second)
	want = map[string]string{"ret/a": "A3", "ret/b": "B"}
	for _, m := range msgs {
		if !m.Retained() || want[m.Topic()] != string(m.Payload()) {
			t.Fatalf("after restart retained %s=%q; want %v", m.Topic(), m.Payload(), want)
		}
	}
}

func TestResubscribeReplacesQoSAndResendsRetained(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	pub := connect(t, tb.addr, "rs-pub")
	defer pub.Disconnect(100)
	publish(t, pub, "rs/t", 2, true, "kept")
	got := newReceived()
	sub := connect(t, tb.addr, "rs-sub")
	defer sub.Disconnect(100)
	subscribe(t, sub, "rs/t", 0, got.handler)
	if m := got.waitN(t, 1, 5*time.Second)[0]; m.Qos() != 0 || !m.Retained() {
		t.Fatalf("first retained delivery qos=%d retained=%v", m.Qos(), m.Retained())
	}
	subscribe(t, sub, "rs/t", 2, got.handler)
	if m := got.waitN(t, 2, 5*time.Second)[1]; m.Qos() != 2 || !m.Retained() {
		t.Fatalf("retained after resubscribe qos=%d retained=%v", m.Qos(), m.Retained())
	}
	publish(t, pub, "rs/t", 2, false, "live")
	if m := got.waitN(t, 3, 5*time.Second)[2]; m.Qos() != 2 {
		t.Fatalf("live delivery after resubscribe at QoS %d, want 2", m.Qos())
	}
}
