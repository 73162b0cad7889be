package bridge_test

import (
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// TestQoS2ExactlyOnceAcrossRemoteRestarts: QoS 2 messages forwarded while
// the remote restarts (gracefully, its sessions kept) several times reach
// the remote subscriber exactly once each and in order: a redelivery
// carries the packet id the remote still holds in its QoS 2 state.
func TestQoS2ExactlyOnceAcrossRemoteRestarts(t *testing.T) {
	remote := newNode(t, "")
	sub := dial(t, remote.addr, "sink", wire.V5, true)
	sub.subscribe(wire.Subscription{Filter: "q2/#", QoS: 2})
	sub.close()
	remote.stop()
	cfg := fastRetry(bridge.Config{Name: "q2", Address: remote.addr, Protocol: wire.V5, Window: 16,
		Rules: rules(t, `q2/# out 2`)})
	local := newNode(t, "", cfg)
	pub := dial(t, local.addr, "pub", wire.V5, false)
	const n = 3000
	pub.publish(n, 2, seqTopic("q2/x"), seqPayload)
	remote.start()
	// Restart the remote three times while the link is up and forwarding.
	last := n
	for i := 0; i < 3; i++ {
		if !waitFor(10*time.Second, func() bool {
			s := local.status("q2")
			return s.State == bridge.StateConnected && s.QueueDepth < last
		}) {
			t.Fatalf("no progress: %+v", local.status("q2"))
		}
		s := local.status("q2")
		if s.QueueDepth == 0 {
			t.Fatalf("drained before restart %d: nothing tested", i+1)
		}
		last = s.QueueDepth
		t.Logf("remote restart with %d messages to go, %d in flight", s.QueueDepth, s.InflightOut)
		remote.restart()
	}
	if !waitFor(20*time.Second, func() bool { return local.status("q2").QueueDepth == 0 }) {
		t.Fatalf("not drained: %+v", local.status("q2"))
	}
	sub = dial(t, remote.addr, "sink", wire.V5, true)
	got := sub.collect(n+1, 2*time.Second) // one more would be a duplicate
	checkInOrder(t, got, n, false)
	if len(got) != n {
		t.Fatalf("%d deliveries for %d messages", len(got), n)
	}
	t.Logf("status: connects %d, forwarded %d", local.status("q2").Connects, local.status("q2").OutForwarded)
}

// TestBridgeRestartKeepsItsQueue: a local broker stopped and started with
// messages queued for a bridge whose remote is down forwards them all once
// the remote is up.
func TestBridgeRestartKeepsItsQueue(t *testing.T) {
	remote := newNode(t, "")
	sub := dial(t, remote.addr, "sink", wire.V311, true)
	sub.subscribe(wire.Subscription{Filter: "r/#", QoS: 1})
	sub.close()
	remote.stop()
	cfg := fastRetry(bridge.Config{Name: "r", Address: remote.addr, Rules: rules(t, `r/# out 1`)})
	local := newNode(t, "", cfg)
	pub := dial(t, local.addr, "pub", wire.V311, false)
	const n = 500
	pub.publish(n, 1, seqTopic("r/x"), seqPayload)
	pub.close()
	local.restart()
	if d := local.status("r").QueueDepth; d != n {
		t.Fatalf("queue depth after the restart %d, want %d", d, n)
	}
	remote.start()
	sub = dial(t, remote.addr, "sink", wire.V311, true)
	checkInOrder(t, sub.collect(n, 5*time.Second), n, true)
}

// TestReservedClientIDRefused: a network client cannot take a bridge's
// session id (3.1.1: CONNACK 0x02, 5.0: 0x85) while the bridge itself has
// it.
func TestReservedClientIDRefused(t *testing.T) {
	local := newNode(t, "", fastRetry(bridge.Config{Name: "x", Address: "127.0.0.1:1", Rules: rules(t, `a/# out 1`)}))
	for v, code := range map[wire.Version]wire.ReasonCode{wire.V311: wire.ConnRefusedIdentifier, wire.V5: wire.ClientIDNotValid} {
		c := wiretest.Dial(t, local.addr, v)
		if ack := c.Connect(t, &wire.Connect{ClientID: engine.InternalPrefix + "x"}); ack.ReasonCode != code {
			t.Fatalf("%v: CONNACK 0x%02X, want 0x%02X", v, byte(ack.ReasonCode), byte(code))
		}
	}
	if f := local.b.SessionFilters(engine.InternalPrefix + "x"); len(f) != 1 || f[0] != "a/#" {
		t.Fatalf("the bridge's session filters: %v", f)
	}
}

// TestQueueLimitDropsCounted: the bridge's queue obeys the broker's queue
// limit (drop-oldest here) while the remote is down, and the drops are in
// its status.
func TestQueueLimitDropsCounted(t *testing.T) {
	remote := newNode(t, "")
	remote.stop()
	local := &node{t: t, bridges: []bridge.Config{fastRetry(bridge.Config{Name: "lim", Address: remote.addr, Rules: rules(t, `l/# out 1`)})},
		opts: engine.Options{Logger: testLogger(), Maint: engine.MaintOptions{QueueLimitMessages: 100, QueueLimitPolicy: engine.QueueDropOldest}}}
	local.fs, local.dir = nil, t.TempDir()
	local.start()
	t.Cleanup(local.stop)
	pub := dial(t, local.addr, "pub", wire.V311, false)
	pub.publish(250, 1, seqTopic("l/x"), seqPayload)
	s := local.status("lim")
	if s.QueueDepth != 100 || s.OutDropped != 150 {
		t.Fatalf("queue depth %d, dropped %d; want 100 and 150", s.QueueDepth, s.OutDropped)
	}
}

// TestRemovedBridgeStopsQueuing: a bridge dropped from the config keeps
// its queued messages but its session is unsubscribed, so it stops
// growing; configured again, it forwards what it kept.
func TestRemovedBridgeStopsQueuing(t *testing.T) {
	remote := newNode(t, "")
	sub := dial(t, remote.addr, "sink", wire.V311, true)
	sub.subscribe(wire.Subscription{Filter: "g/#", QoS: 1})
	sub.close()
	remote.stop()
	cfg := fastRetry(bridge.Config{Name: "gone", Address: remote.addr, Rules: rules(t, `g/# out 1`)})
	local := newNode(t, "", cfg)
	pub := dial(t, local.addr, "pub", wire.V311, false)
	pub.publish(10, 1, seqTopic("g/x"), seqPayload)
	pub.close()
	local.bridges = nil
	local.restart()
	id := engine.InternalPrefix + "gone"
	if f := local.b.SessionFilters(id); len(f) != 0 {
		t.Fatalf("removed bridge still subscribed to %v", f)
	}
	pub = dial(t, local.addr, "pub", wire.V311, false)
	pub.publish(10, 1, func(int) string { return "g/x" }, func(i int) []byte { return seqPayload(i + 10) })
	pub.close()
	if d, _ := local.b.SessionQueue(id); d != 10 {
		t.Fatalf("removed bridge's queue holds %d, want the 10 from before", d)
	}
	local.bridges = []bridge.Config{cfg}
	local.restart()
	remote.start()
	sub = dial(t, remote.addr, "sink", wire.V311, true)
	checkInOrder(t, sub.collect(20, time.Second), 10, true)
}

// TestPropertiesAndQoS0: 5.0 properties (user properties, content type,
// response topic, correlation data) cross the bridge unchanged, and QoS 0
// rules forward at QoS 0 while the link is up.
func TestPropertiesAndQoS0(t *testing.T) {
	remote := newNode(t, "")
	cfg := fastRetry(bridge.Config{Name: "p", Address: remote.addr, Protocol: wire.V5,
		Rules: rules(t, `p/# out 1`, `z/# out 0`)})
	local := newNode(t, "", cfg)
	if !waitFor(10*time.Second, func() bool { return local.status("p").State == bridge.StateConnected }) {
		t.Fatalf("not connected: %+v", local.status("p"))
	}
	sub := dial(t, remote.addr, "sub", wire.V5, false)
	sub.subscribe(wire.Subscription{Filter: "p/#", QoS: 1}, wire.Subscription{Filter: "z/#", QoS: 1})
	pub := dial(t, local.addr, "pub", wire.V5, false)
	props := &wire.Properties{ContentType: new("text/plain"), ResponseTopic: "p/reply", CorrelationData: []byte{1, 2},
		User: []wire.UserProperty{{Key: "site", Value: "17"}, {Key: "site", Value: "18"}}}
	pub.c.Send(&wire.Publish{QoS: 1, PacketID: 1, Topic: "p/x", Props: props, Payload: []byte("hello")})
	pub.c.Send(&wire.Publish{QoS: 1, PacketID: 2, Topic: "z/x", Payload: []byte("zero")})
	got := sub.collect(2, 5*time.Second)
	if len(got) != 2 {
		t.Fatalf("got %d messages, want 2", len(got))
	}
	for _, p := range got {
		switch p.Topic {
		case "p/x":
			q := p.Props
			if q == nil || q.ContentType == nil || *q.ContentType != "text/plain" || q.ResponseTopic != "p/reply" || string(q.CorrelationData) != "\x01\x02" ||
				len(q.User) != 2 || q.User[1] != (wire.UserProperty{Key: "site", Value: "18"}) || p.QoS != 1 {
				t.Fatalf("p/x: QoS %d props %+v", p.QoS, q)
			}
		case "z/x":
			if p.QoS != 0 {
				t.Fatalf("z/x forwarded at QoS %d, want 0 (the rule's)", p.QoS)
			}
		default:
			t.Fatalf("topic %q", p.Topic)
		}
	}
}
