package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// A QoS 1 message a shared subscription gave a clean-session member that
// ended its session without acknowledging it goes to another member of the
// group (MQTT 5.0 §4.8.2, SHOULD): an online clean one first; when that one
// leaves unacknowledged too, the remaining persistent member, offline, gets
// it in its stored queue, which keeps it across a restart.
func TestSharedUnackedGoesToAnotherMember(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	const group = "$share/pool/jobs/#"
	w1 := dialV5(t, tb.addr, "worker-1", true, 0)
	w1.subscribe5(t, 1, nil, sub5(group, 1))
	pub := dialV5(t, tb.addr, "producer", true, 0)
	pub.publishQoS1(t, 1, "jobs/1", "one", nil)
	if p := w1.expectPublish(t, 5*time.Second); string(p.Payload) != "one" {
		t.Fatalf("worker-1 got %q", p.Payload)
	}

	w2 := dialV5(t, tb.addr, "worker-2", true, 0)
	w2.subscribe5(t, 1, nil, sub5(group, 1))
	w1.Close() // no PUBACK: its session ends with the message unacknowledged
	p := w2.expectPublish(t, 5*time.Second)
	if string(p.Payload) != "one" || p.Topic != "jobs/1" || p.QoS != 1 || p.Dup {
		t.Fatalf("worker-2 got %+v, want the unacknowledged message as a new delivery", p)
	}

	w3 := dialV5(t, tb.addr, "worker-3", true, 3600) // persistent
	w3.subscribe5(t, 1, nil, sub5(group, 1))
	w3.Send(&wire.Disconnect{})
	w3.expectClosed(t, 5*time.Second)
	time.Sleep(50 * time.Millisecond) // its session is offline now
	w2.Close()                        // unacknowledged again
	pub.Close()
	tb.restart() // Shutdown waits for the hand-off's commit

	w3 = dialV5(t, tb.addr, "worker-3", false, 3600)
	p = w3.expectPublish(t, 5*time.Second)
	if string(p.Payload) != "one" || p.QoS != 1 {
		t.Fatalf("worker-3 got %+v after the restart, want the message from its stored queue", p)
	}
	w3.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
	w3.expectSilence(t, 200*time.Millisecond) // once, nothing else
}

// A persistent member's stored queue is handed on when its session expires:
// the entries its shared subscription put there go to another member of the
// group (stored for an offline persistent one, across a restart); what an
// ordinary subscription queued for it expires with it. With a small
// MaxQueuedBytes the queue is read in many small pages. A member that left
// the group (unsubscribed) while deliveries of the group were still in its
// queue, sent and not acknowledged, has them handed on too.
func TestExpiringMemberQueueGoesToAnotherMember(t *testing.T) {
	t.Run("one page", func(t *testing.T) { expiringMemberHandOff(t, engine.Limits{}, 6, "", false) })
	t.Run("many pages", func(t *testing.T) {
		expiringMemberHandOff(t, engine.Limits{MaxQueuedBytes: 2048}, 40, strings.Repeat("p", 500), false)
	})
	t.Run("former member", func(t *testing.T) { expiringMemberHandOff(t, engine.Limits{}, 6, "", true) })
}

func expiringMemberHandOff(t *testing.T, limits engine.Limits, jobs int, pad string, leave bool) {
	clk := &testClock{}
	tb := startBroker(t, engine.Options{Now: clk.now, Limits: limits})
	const group = "$share/batch/work/#"
	for _, m := range []struct {
		id     string
		expiry uint32
	}{{"member-short", 60}, {"member-long", 3600}} {
		r := dialV5(t, tb.addr, m.id, true, m.expiry)
		r.subscribe5(t, 1, nil, sub5(group, 1))
		if m.id == "member-short" {
			r.subscribe5(t, 2, nil, sub5("own/#", 1))
		}
		r.Send(&wire.Disconnect{})
		r.expectClosed(t, 5*time.Second)
	}
	waitStoredOffline(t, tb, "member-short", "member-long")
	pub := dialV5(t, tb.addr, "producer", true, 0)
	want := map[string]bool{}
	for i := range jobs {
		payload := fmt.Sprintf("job-%d%s", i, pad)
		pub.publishQoS1(t, uint16(i+1), "work/x", payload, nil)
		want[payload] = true
	}
	pub.publishQoS1(t, uint16(jobs+1), "own/y", "not shared", nil)
	pub.Close()
	if leave {
		leaveGroup(t, tb, "member-short", group)
	}

	clk.advance(2 * time.Minute)
	if n, err := tb.b.ExpireSessions(clk.now()); err != nil || n != 1 {
		t.Fatalf("ExpireSessions = %d, %v, want member-short", n, err)
	}
	tb.restart() // the hand-off is durable

	r := dialV5(t, tb.addr, "member-long", false, 3600)
	got := map[string]bool{}
	for range want {
		p := r.expectPublish(t, 5*time.Second)
		if got[string(p.Payload)] || !want[string(p.Payload)] {
			t.Fatalf("member-long got %.12q (%d so far), want each of the %d jobs once", p.Payload, len(got), len(want))
		}
		got[string(p.Payload)] = true
		r.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
	}
	r.expectSilence(t, 200*time.Millisecond) // not the other subscription's message
}

// leaveGroup reconnects the offline member id, takes what it was queued
// without acknowledging any of it, unsubscribes from group and goes away.
func leaveGroup(t *testing.T, tb *testBroker, id, group string) {
	t.Helper()
	r := dialV5(t, tb.addr, id, false, 60)
	held := 0
	r.Send(&wire.Unsubscribe{PacketID: 9, Filters: []string{group}})
	for {
		p := r.Expect(t, 5*time.Second)
		if pub, ok := p.(*wire.Publish); ok {
			if pub.Topic == "work/x" {
				held++
			}
			continue
		}
		if ua, ok := p.(*wire.Unsuback); !ok || ua.PacketID != 9 || len(ua.ReasonCodes) != 1 || ua.ReasonCodes[0] != 0 {
			t.Fatalf("want UNSUBACK 9 success, got %+v", p)
		}
		break
	}
	r.Send(&wire.Disconnect{})
	r.expectClosed(t, 5*time.Second)
	waitStoredOffline(t, tb, id) // before its expiry is due
	if held == 0 {
		t.Fatalf("%s was given none of the jobs: nothing tested", id)
	}
}
