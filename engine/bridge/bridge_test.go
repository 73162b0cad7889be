package bridge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/wire"
)

// checkInOrder fails unless got holds exactly the payloads 0..n-1, in
// order, each once (duplicates of a redelivery allowed when dups is set).
func checkInOrder(t *testing.T, got []*wire.Publish, n int, dups bool) {
	t.Helper()
	next := 0
	for _, p := range got {
		i := 0
		if _, err := fmt.Sscanf(string(p.Payload), "m%07d", &i); err != nil {
			t.Fatalf("payload %q", p.Payload)
		}
		switch {
		case i == next:
			next++
		case dups && i < next:
		default:
			t.Fatalf("message %d arrived when %d was expected (%d received)", i, next, len(got))
		}
	}
	if next != n {
		t.Fatalf("%d of %d messages arrived", next, n)
	}
}

// TestQueuedWhileRemoteDownAllArrive: messages published locally while the
// remote broker is down are queued (the local PUBACKs come back at once),
// counted in the bridge's queue depth, and all reach the remote, in
// order and renamed, when it comes back.
func TestQueuedWhileRemoteDownAllArrive(t *testing.T) {
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		t.Run(v.String(), func(t *testing.T) {
			remote := newNode(t, "")
			sub := dial(t, remote.addr, "sink", wire.V311, true)
			sub.subscribe(wire.Subscription{Filter: "edge/#", QoS: 1})
			sub.close()
			remote.stop()

			cfg := fastRetry(bridge.Config{Name: "up", Address: remote.addr, Protocol: v,
				Rules: rules(t, `sensors/# out 1 "" edge/`)})
			local := newNode(t, "", cfg)
			const n = 2000
			pub := dial(t, local.addr, "pub", wire.V311, false)
			pub.publish(n, 1, seqTopic("sensors/a"), seqPayload)
			pub.close()
			if s := local.status("up"); s.QueueDepth != n || s.State == bridge.StateConnected || s.LastError == "" {
				t.Fatalf("remote down: status %+v, want queue depth %d, not connected, an error", s, n)
			}

			remote.start()
			if !waitFor(20*time.Second, func() bool { return local.status("up").QueueDepth == 0 }) {
				t.Fatalf("queue not drained: %+v", local.status("up"))
			}
			sub = dial(t, remote.addr, "sink", wire.V311, true)
			got := sub.collect(n, 5*time.Second)
			for _, p := range got {
				if p.Topic != "edge/sensors/a" {
					t.Fatalf("topic %q, want edge/sensors/a", p.Topic)
				}
			}
			checkInOrder(t, got, n, true)
			s := local.status("up")
			if s.OutForwarded < n || s.State != bridge.StateConnected || s.Connects < 1 {
				t.Fatalf("status after the drain: %+v", s)
			}
		})
	}
}

// TestInboundRulesDeliverLocally: `in` rules subscribe on the remote and
// republish locally, renamed, at the rule's QoS (QoS 1 and 2), with the
// retain flag kept (5.0: Retain As Published).
func TestInboundRulesDeliverLocally(t *testing.T) {
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		t.Run(v.String(), func(t *testing.T) {
			remote := newNode(t, "")
			cfg := fastRetry(bridge.Config{Name: "down", Address: remote.addr, Protocol: v,
				Rules: rules(t, `cmd/# in 2 site/ ""`, `cfg/# in 1 site/ ""`)})
			local := newNode(t, "", cfg)
			if !waitFor(10*time.Second, func() bool { return local.status("down").State == bridge.StateConnected }) {
				t.Fatalf("not connected: %+v", local.status("down"))
			}
			// The bridge's SUBSCRIBE on the remote must be in place.
			if !waitFor(10*time.Second, func() bool { return len(remote.b.SessionFilters(cfg.ClientID)) == 2 }) {
				t.Fatalf("remote subscriptions: %v", remote.b.SessionFilters(cfg.ClientID))
			}
			sub := dial(t, local.addr, "app", wire.V5, false)
			sub.subscribe(wire.Subscription{Filter: "site/#", QoS: 2, RetainAsPublished: true})

			pub := dial(t, remote.addr, "cloud", wire.V311, false)
			const n = 300
			pub.publish(n, 2, seqTopic("cmd/reboot"), seqPayload)
			got := sub.collect(n, 5*time.Second)
			for _, p := range got {
				if p.Topic != "site/cmd/reboot" || p.QoS != 2 {
					t.Fatalf("got %q QoS %d, want site/cmd/reboot QoS 2", p.Topic, p.QoS)
				}
			}
			checkInOrder(t, got, n, false) // QoS 2: exactly once
			pub.c.Send(&wire.Publish{QoS: 1, PacketID: 9999, Retain: true, Topic: "cfg/rate", Payload: []byte("5")})
			got = sub.collect(1, 5*time.Second)
			// RETAIN survives the live forward: Retain As Published on a
			// 5.0 remote, the bridge flag (level 0x84) on a 3.1.1 one.
			if len(got) != 1 || got[0].Topic != "site/cfg/rate" || got[0].QoS != 1 || !got[0].Retain {
				for _, p := range got {
					t.Logf("got %q QoS %d retain %v", p.Topic, p.QoS, p.Retain)
				}
				t.Fatalf("retained: got %d messages, want site/cfg/rate QoS 1 retained", len(got))
			}
			if !waitFor(5*time.Second, func() bool { return local.status("down").InForwarded == n+1 }) {
				t.Fatalf("status: %+v", local.status("down"))
			}
		})
	}
}

// TestBothRulesDoNotLoop: with a `both` rule each message crosses once:
// a local publish reaches the remote subscriber once and does not come
// back to the local subscriber; a remote publish likewise. (5.0 remote:
// No Local on both sides.)
func TestBothRulesDoNotLoop(t *testing.T) {
	// 5.0: No Local on both sides; 3.1.1: the remote Cairn honours the
	// bridge flag of protocol level 0x84.
	for _, v := range []wire.Version{wire.V5, wire.V311} {
		t.Run(v.String(), func(t *testing.T) { bothRulesDoNotLoop(t, v) })
	}
}

func bothRulesDoNotLoop(t *testing.T, v wire.Version) {
	remote := newNode(t, "")
	cfg := fastRetry(bridge.Config{Name: "sync", Address: remote.addr, Protocol: v,
		Rules: rules(t, `shared/# both 1`)})
	local := newNode(t, "", cfg)
	if !waitFor(10*time.Second, func() bool {
		return local.status("sync").State == bridge.StateConnected && len(remote.b.SessionFilters(cfg.ClientID)) == 1
	}) {
		t.Fatalf("not connected and subscribed: %+v", local.status("sync"))
	}
	lsub := dial(t, local.addr, "lsub", wire.V5, false)
	lsub.subscribe(wire.Subscription{Filter: "shared/#", QoS: 1})
	rsub := dial(t, remote.addr, "rsub", wire.V5, false)
	rsub.subscribe(wire.Subscription{Filter: "shared/#", QoS: 1})

	lpub := dial(t, local.addr, "lpub", wire.V311, false)
	lpub.publish(1, 1, seqTopic("shared/x"), seqPayload)
	rpub := dial(t, remote.addr, "rpub", wire.V311, false)
	rpub.publish(1, 1, seqTopic("shared/y"), seqPayload)

	// Each subscriber gets the two messages once; a loop would bring
	// more (and keep the counters growing).
	quiet := time.Second
	lgot := lsub.collect(10, quiet)
	rgot := rsub.collect(10, quiet)
	topics := func(ps []*wire.Publish) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Topic)
		}
		return out
	}
	if len(lgot) != 2 || len(rgot) != 2 {
		t.Fatalf("local subscriber got %v, remote subscriber got %v; want shared/x and shared/y once each", topics(lgot), topics(rgot))
	}
	s := local.status("sync")
	if s.OutForwarded != 1 || s.InForwarded != 1 {
		t.Fatalf("bridge forwarded out %d, in %d; want 1 and 1", s.OutForwarded, s.InForwarded)
	}
}
