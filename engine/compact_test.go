package engine_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// fakeClock is the broker's and the store's clock in these tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func u32(v uint32) *uint32 { return &v }

// dialV5 opens a 5.0 raw connection; expiry > 0 makes the session
// persistent.
func dialV5(t testing.TB, addr, id string, cleanStart bool, expiry uint32) *rawConn {
	t.Helper()
	r := dialRawV(t, addr, wire.V5)
	c := &wire.Connect{Version: wire.V5, CleanStart: cleanStart, ClientID: id}
	if expiry > 0 {
		c.Props = &wire.Properties{SessionExpiry: u32(expiry)}
	}
	if ack := r.Connect(t, c); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %s: 0x%02X", id, byte(ack.ReasonCode))
	}
	return r
}

// pub5 publishes at QoS 1 and returns the PUBACK reason code.
func pub5(t testing.TB, r *rawConn, pid uint16, topic, payload string, retain bool, expiry uint32) wire.ReasonCode {
	t.Helper()
	p := &wire.Publish{QoS: 1, PacketID: pid, Topic: topic, Payload: []byte(payload), Retain: retain}
	if expiry > 0 {
		p.Props = &wire.Properties{MessageExpiry: u32(expiry)}
	}
	r.Send(p)
	return r.expectAck(t, wire.PUBACK, pid).ReasonCode
}

// drain reads PUBLISH packets until none arrives for quiet, acknowledging
// QoS 1, and returns their payloads.
func drain(t testing.TB, r *rawConn, quiet time.Duration) []string {
	t.Helper()
	var out []string
	for {
		p, err := r.Recv(quiet)
		if err != nil {
			return out
		}
		pub, ok := p.(*wire.Publish)
		if !ok {
			continue
		}
		out = append(out, string(pub.Payload))
		if pub.QoS == 1 {
			r.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: pub.PacketID})
		}
	}
}

// offline subscribes a persistent 5.0 session, disconnects it cleanly and
// waits until the broker has stored it offline.
func offline(t testing.TB, tb *testBroker, id, filter string) {
	t.Helper()
	r := dialV5(t, tb.addr, id, true, 3600)
	r.subscribe(t, 1, filter, 1)
	r.Send(&wire.Disconnect{})
	r.expectClosed(t, 5*time.Second)
	waitStoredOffline(t, tb, id)
}

func compact(t testing.TB, tb *testBroker, full bool) store.CompactReport {
	t.Helper()
	rep, err := tb.b.Compact(context.Background(), full)
	if err != nil {
		t.Fatalf("compact: %v", err)
	}
	if err := tb.st.Verify(); err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

// Server-side retained TTL: per-filter rules (most specific wins, "never"
// exempts), readers skip expired values before the task runs, the task
// deletes them with a logged event and counts them.
func TestRetainedTTL(t *testing.T) {
	clk := newFakeClock()
	tb := startBroker(t, engine.Options{Now: clk.Now, Maint: engine.MaintOptions{
		RetainedTTL: time.Hour,
		RetainedTTLRules: []engine.TTLRule{
			{Filter: "sensors/#", TTL: time.Minute},
			{Filter: "sensors/critical/#", TTL: 0}, // never
			{Filter: "sensors/+/slow", TTL: 10 * time.Minute},
		},
	}})
	p := dialV5(t, tb.addr, "ttl-pub", true, 0)
	for i, topic := range []string{"sensors/a", "sensors/critical/x", "sensors/b/slow", "other/t"} {
		if rc := pub5(t, p, uint16(i+1), topic, topic, true, 0); rc != wire.Success && rc != wire.NoMatchingSubscribers {
			t.Fatalf("PUBACK %s: 0x%02X", topic, byte(rc))
		}
	}
	p.Close()
	seen := func() []string {
		t.Helper()
		r := dialV5(t, tb.addr, "ttl-sub", true, 0)
		defer r.Close()
		r.subscribe(t, 1, "#", 1)
		got := drain(t, r, 300*time.Millisecond)
		sort.Strings(got)
		return got
	}
	if got := strings.Join(seen(), ","); got != "other/t,sensors/a,sensors/b/slow,sensors/critical/x" {
		t.Fatalf("at once: %s", got)
	}
	clk.Add(time.Minute + time.Second)
	// Not swept yet, and already not served.
	if got := strings.Join(seen(), ","); got != "other/t,sensors/b/slow,sensors/critical/x" {
		t.Fatalf("after 1m: %s", got)
	}
	if rep := compact(t, tb, false); rep.RetainedExpired != 1 {
		t.Fatalf("pass after 1m expired %d", rep.RetainedExpired)
	}
	clk.Add(2 * time.Hour)
	if got := strings.Join(seen(), ","); got != "sensors/critical/x" {
		t.Fatalf("after 2h: %s", got)
	}
	if rep := compact(t, tb, false); rep.RetainedExpired != 2 {
		t.Fatalf("pass after 2h expired %d", rep.RetainedExpired)
	}
	if n := tb.b.MaintStats().RetainedExpired.Load(); n != 3 {
		t.Fatalf("RetainedExpired counter %d", n)
	}
}

// A retained deadline is absolute: after a restart with the clock moved on,
// the message is not served, and the first pass deletes it.
func TestRetainedExpiryAcrossRestart(t *testing.T) {
	clk := newFakeClock()
	tb := startBroker(t, engine.Options{Now: clk.Now, Maint: engine.MaintOptions{RetainedTTL: time.Minute}})
	p := dialV5(t, tb.addr, "rx-pub", true, 0)
	pub5(t, p, 1, "r/ttl", "server ttl", true, 0)
	pub5(t, p, 2, "r/expiry", "5.0 expiry", true, 3600) // its own expiry is longer: the TTL wins
	pub5(t, p, 3, "r/short", "5.0 expiry first", true, 20)
	p.Close()
	tb.restart()
	r := dialV5(t, tb.addr, "rx-sub", true, 0)
	r.subscribe(t, 1, "r/#", 1)
	if got := drain(t, r, 300*time.Millisecond); len(got) != 3 {
		t.Fatalf("after a quick restart got %q", got)
	}
	r.Close()
	clk.Add(30 * time.Second)
	tb.restart()
	r = dialV5(t, tb.addr, "rx-sub", true, 0)
	r.subscribe(t, 1, "r/#", 1)
	if got := drain(t, r, 300*time.Millisecond); len(got) != 2 {
		t.Fatalf("30s later got %q, want the two TTL'd ones", got)
	}
	r.Close()
	clk.Add(time.Minute)
	tb.restart()
	r = dialV5(t, tb.addr, "rx-sub", true, 0)
	r.subscribe(t, 1, "r/#", 1)
	if got := drain(t, r, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("after the deadline, across a restart, got %q", got)
	}
	r.Close()
	if rep := compact(t, tb, false); rep.RetainedExpired != 3 {
		t.Fatalf("first pass after restart expired %d, want 3", rep.RetainedExpired)
	}
}

// Queued messages whose 5.0 expiry passed are never served: the task
// removes them from offline sessions' disk queues, and a session that comes
// back before the task runs does not get them either.
func TestExpiredQueuedNeverServed(t *testing.T) {
	for _, sweep := range []bool{true, false} {
		t.Run(fmt.Sprintf("sweep=%v", sweep), func(t *testing.T) {
			clk := newFakeClock()
			tb := startBroker(t, engine.Options{Now: clk.Now})
			offline(t, tb, "q-sub", "q/#")
			p := dialV5(t, tb.addr, "q-pub", true, 0)
			for i := range 20 {
				expiry := uint32(10)
				if i%4 == 0 {
					expiry = 0 // never expires
				}
				pub5(t, p, uint16(i+1), "q/t", fmt.Sprint(i), false, expiry)
			}
			p.Close()
			clk.Add(11 * time.Second)
			if sweep {
				rep := compact(t, tb, false)
				if rep.QueuedExpired != 15 {
					t.Fatalf("expired %d queued messages, want 15", rep.QueuedExpired)
				}
				if qi := tb.st.QueueInfo("q-sub"); qi.Count != 5 {
					t.Fatalf("queue after the pass: %+v", qi)
				}
				if n := tb.b.MaintStats().QueuedExpired.Load(); n != 15 {
					t.Fatalf("QueuedExpired counter %d", n)
				}
			}
			r := dialV5(t, tb.addr, "q-sub", false, 3600)
			defer r.Close()
			if got := strings.Join(drain(t, r, 300*time.Millisecond), ","); got != "0,4,8,12,16" {
				t.Fatalf("delivered %s, want only the messages without expiry", got)
			}
			if err := tb.st.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A message whose expiry passes after it was sent but before it was
// acknowledged is resent on reconnect (MQTT-4.4.0-1), with DUP and 0 left of
// its interval, by the writer and whatever the compaction task or a restart
// did meanwhile; one that was never sent is deleted (MQTT-3.3.2-5).
func TestExpiredInflightIsResent(t *testing.T) {
	for _, mode := range []string{"writer", "sweep", "restart+sweep"} {
		t.Run(mode, func(t *testing.T) {
			clk := newFakeClock()
			tb := startBroker(t, engine.Options{Now: clk.Now, MaxInflight: 1})
			sub := dialV5(t, tb.addr, "inflight-sub", true, 3600)
			sub.subscribe(t, 1, "e/#", 1)
			p := dialV5(t, tb.addr, "inflight-pub", true, 0)
			pub5(t, p, 1, "e/t", "sent", false, 2)
			pub5(t, p, 2, "e/t", "never sent", false, 2)
			pub5(t, p, 3, "e/t", "no expiry", false, 0)
			p.Close()
			if got := sub.expectPublish(t, 5*time.Second); string(got.Payload) != "sent" {
				t.Fatalf("first delivery %q", got.Payload)
			}
			sub.Close() // without a PUBACK
			waitStoredOffline(t, tb, "inflight-sub")
			clk.Add(3 * time.Second)
			switch mode {
			case "sweep":
				if rep := compact(t, tb, false); rep.QueuedExpired != 1 {
					t.Fatalf("the pass expired %d, want 1 (the message never sent)", rep.QueuedExpired)
				}
			case "restart+sweep":
				tb.restart()
				if rep := compact(t, tb, false); rep.QueuedExpired != 1 {
					t.Fatalf("the pass expired %d, want 1 (the message never sent)", rep.QueuedExpired)
				}
			}
			sub = dialV5(t, tb.addr, "inflight-sub", false, 3600)
			defer sub.Close()
			got := sub.expectPublish(t, 5*time.Second)
			if string(got.Payload) != "sent" || !got.Dup || got.Props == nil || got.Props.MessageExpiry == nil || *got.Props.MessageExpiry != 0 {
				t.Fatalf("resent %q dup=%v props %+v, want \"sent\" with DUP and Message Expiry Interval 0", got.Payload, got.Dup, got.Props)
			}
			sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: got.PacketID})
			if rest := strings.Join(drain(t, sub, 300*time.Millisecond), ","); rest != "no expiry" {
				t.Fatalf("then delivered %q, want only \"no expiry\"", rest)
			}
		})
	}
}

// The task leaves a connected session's queue alone (its writer drops
// expired messages as it reaches them).
func TestCompactSparesConnectedQueues(t *testing.T) {
	clk := newFakeClock()
	tb := startBroker(t, engine.Options{Now: clk.Now})
	sub := dialV5(t, tb.addr, "live", true, 3600)
	defer sub.Close()
	sub.subscribe(t, 1, "l/#", 1)
	p := dialV5(t, tb.addr, "live-pub", true, 0)
	defer p.Close()
	pub5(t, p, 1, "l/t", "x", false, 5)
	got := sub.expectPublish(t, 5*time.Second) // in flight, not acknowledged
	clk.Add(time.Minute)
	rep := compact(t, tb, false)
	if rep.QueuedExpired != 0 || rep.QueuedSkipped != 1 {
		t.Fatalf("connected queue: expired %d skipped %d", rep.QueuedExpired, rep.QueuedSkipped)
	}
	sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: got.PacketID})
	deadline := time.Now().Add(5 * time.Second)
	for tb.st.QueueInfo("live").Count != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if qi := tb.st.QueueInfo("live"); qi.Count != 0 {
		t.Fatalf("queue after PUBACK: %+v", qi)
	}
}

// Policy reject: a 5.0 publisher gets 0x97 and nothing is delivered to
// anyone; a 3.1.1 publisher, which cannot be told, gets no PUBACK and its
// connection closed.
func TestQueueLimitReject(t *testing.T) {
	tb := startBroker(t, engine.Options{Maint: engine.MaintOptions{QueueLimitMessages: 3}})
	offline(t, tb, "full", "lim/#")
	live := dialV5(t, tb.addr, "live", true, 0)
	defer live.Close()
	live.subscribe(t, 1, "lim/#", 1)
	p := dialV5(t, tb.addr, "lim-pub", true, 0)
	defer p.Close()
	for i := range 3 {
		if rc := pub5(t, p, uint16(i+1), "lim/t", fmt.Sprint(i), false, 0); rc != wire.Success {
			t.Fatalf("publish %d: 0x%02X", i, byte(rc))
		}
	}
	if rc := pub5(t, p, 4, "lim/t", "refused", false, 0); rc != wire.QuotaExceeded {
		t.Fatalf("publish into a full queue: 0x%02X, want 0x97", byte(rc))
	}
	// QoS 2: PUBREC 0x97 ends the flow.
	p.Send(&wire.Publish{QoS: 2, PacketID: 5, Topic: "lim/t", Payload: []byte("refused2")})
	if rc := p.expectAck(t, wire.PUBREC, 5).ReasonCode; rc != wire.QuotaExceeded {
		t.Fatalf("QoS 2 into a full queue: PUBREC 0x%02X", byte(rc))
	}
	if got := strings.Join(drain(t, live, 300*time.Millisecond), ","); got != "0,1,2" {
		t.Fatalf("the live subscriber got %s: a refused publish reached it", got)
	}
	// 3.1.1: not acknowledged, the connection closed.
	r3 := dialRaw(t, tb.addr)
	defer r3.Close()
	r3.connect(t, "lim-pub3", true, 0, nil)
	r3.Send(&wire.Publish{QoS: 1, PacketID: 9, Topic: "lim/t", Payload: []byte("refused3")})
	if got := r3.ExpectClosed(t, 5*time.Second); len(got) != 0 {
		t.Fatalf("3.1.1 publisher got %v before the close, want nothing", got)
	}
	if n := tb.b.MaintStats().QueueFullRejected.Load(); n != 3 {
		t.Fatalf("QueueFullRejected %d, want 3", n)
	}
	if qi := tb.st.QueueInfo("full"); qi.Count != 3 {
		t.Fatalf("full queue %+v", qi)
	}
	// Room again: the 3.1.1 client's resend (on a new connection) is taken.
	s := dialV5(t, tb.addr, "full", false, 3600)
	drain(t, s, 300*time.Millisecond)
	s.Close()
	r3.Close()
	r3 = dialRaw(t, tb.addr)
	r3.connect(t, "lim-pub3", true, 0, nil)
	r3.Send(&wire.Publish{QoS: 1, PacketID: 9, Dup: true, Topic: "lim/t", Payload: []byte("resent")})
	r3.expectAck(t, wire.PUBACK, 9)
	if err := tb.st.Verify(); err != nil {
		t.Fatal(err)
	}
}

// Policy drop-oldest: the queue keeps the newest messages; every drop is
// counted and an event.
func TestQueueLimitDropOldest(t *testing.T) {
	tb := startBroker(t, engine.Options{Maint: engine.MaintOptions{QueueLimitMessages: 5, QueueLimitPolicy: engine.QueueDropOldest}})
	offline(t, tb, "slow", "d/#")
	p := dialV5(t, tb.addr, "d-pub", true, 0)
	for i := range 12 {
		if rc := pub5(t, p, uint16(i+1), "d/t", fmt.Sprint(i), false, 0); rc != wire.Success {
			t.Fatalf("publish %d: 0x%02X", i, byte(rc))
		}
	}
	p.Close()
	if qi := tb.st.QueueInfo("slow"); qi.Count != 5 {
		t.Fatalf("queue %+v", qi)
	}
	// Counted when the commit's deliveries run, just after the PUBACK is
	// queued (publish.go): the last PUBACK can arrive first.
	waitCounter(t, "QueueFullDropped", 7, tb.b.MaintStats().QueueFullDropped.Load)
	r := dialV5(t, tb.addr, "slow", false, 3600)
	defer r.Close()
	if got := strings.Join(drain(t, r, 300*time.Millisecond), ","); got != "7,8,9,10,11" {
		t.Fatalf("delivered %s, want the 5 newest", got)
	}
	dropped := 0
	if err := tb.st.Events(0, func(ev *store.Event) error { dropped += len(ev.Dropped); return nil }); err != nil {
		t.Fatal(err)
	}
	if dropped != 7 {
		t.Fatalf("%d drops in the log, want 7", dropped)
	}
}

// drop-oldest by bytes, with the session online: dropped messages leave its
// outbox too, and the ones in flight are kept.
func TestQueueLimitDropOldestOnline(t *testing.T) {
	tb := startBroker(t, engine.Options{MaxInflight: 1, Maint: engine.MaintOptions{QueueLimitBytes: 30, QueueLimitPolicy: engine.QueueDropOldest}})
	sub := dialV5(t, tb.addr, "online", true, 3600)
	defer sub.Close()
	sub.subscribe(t, 1, "o/#", 1)
	p := dialV5(t, tb.addr, "o-pub", true, 0)
	defer p.Close()
	pay := func(i int) string { return fmt.Sprintf("message-%02d", i) } // 10 bytes
	pub5(t, p, 1, "o/t", pay(0), false, 0)
	first := sub.expectPublish(t, 5*time.Second) // in flight (window 1), not acknowledged
	for i := 1; i < 8; i++ {
		pub5(t, p, uint16(i+1), "o/t", pay(i), false, 0)
	}
	if qi := tb.st.QueueInfo("online"); qi.Bytes > 30 || qi.Count != 3 {
		t.Fatalf("queue %+v", qi)
	}
	sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: first.PacketID})
	got := drain(t, sub, 300*time.Millisecond)
	if strings.Join(got, ",") != pay(6)+","+pay(7) {
		t.Fatalf("after the in-flight one got %q, want the two newest", got)
	}
}

// RunCompaction runs a pass at once and then on its interval, and stops
// with its context.
func TestRunCompaction(t *testing.T) {
	clk := newFakeClock()
	tb := startBroker(t, engine.Options{Now: clk.Now, Maint: engine.MaintOptions{RetainedTTL: time.Minute}})
	p := dialV5(t, tb.addr, "run-pub", true, 0)
	pub5(t, p, 1, "run/t", "x", true, 0)
	p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tb.b.RunCompaction(ctx, 10*time.Millisecond) }()
	st := tb.b.MaintStats()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("the first pass", func() bool { return st.CompactRuns.Load() >= 1 })
	if st.RetainedExpired.Load() != 0 {
		t.Fatal("expired before its TTL")
	}
	clk.Add(2 * time.Minute)
	waitFor("the expiry", func() bool { return st.RetainedExpired.Load() == 1 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunCompaction did not stop")
	}
	if st.CompactPauses.Load() == 0 || st.CompactPauseNanos.Load() <= 0 || st.CompactMaxPauseNanos.Load() <= 0 {
		t.Fatalf("pauses not recorded: %d commits, %d ns, max %d ns", st.CompactPauses.Load(), st.CompactPauseNanos.Load(), st.CompactMaxPauseNanos.Load())
	}
}

// A compaction pass expires the sessions whose expiry passed, before it
// reclaims the store (the expiry timer runs on real time, so the fake clock
// jumping over the deadline leaves it to the pass).
func TestCompactExpiresSessions(t *testing.T) {
	clk := &testClock{}
	tb := startBroker(t, engine.Options{Now: clk.now})
	r, _ := mustConnect5(t, tb.addr, session5("cx-gone", false, 60))
	r.Send(&wire.Disconnect{})
	r.expectClosed(t, 5*time.Second)
	r, _ = mustConnect5(t, tb.addr, session5("cx-kept", false, 3600))
	r.Send(&wire.Disconnect{})
	r.expectClosed(t, 5*time.Second)
	waitStoredOffline(t, tb, "cx-gone", "cx-kept")
	clk.advance(10 * time.Minute)
	if _, err := tb.b.Compact(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if storedSession(t, tb, "cx-gone") != nil {
		t.Fatal("the session whose expiry passed survived the compaction pass")
	}
	if storedSession(t, tb, "cx-kept") == nil {
		t.Fatal("a session still within its expiry was dropped")
	}
}

// A 5.0 publish refused with 0x97 ends its flow: it must give back its share
// of the broker's Receive Maximum, or a publisher that keeps hitting a full
// queue would be disconnected with 0x93 for a quota it no longer uses.
func TestQueueFullRefusalReleasesReceiveMaximum(t *testing.T) {
	tb := startBroker(t, engine.Options{
		Maint:    engine.MaintOptions{QueueLimitMessages: 1},
		Features: engine.Features{ReceiveMaximum: 4},
	})
	offline(t, tb, "rm-full", "rm/#")
	p := dialV5(t, tb.addr, "rm-pub", true, 0)
	defer p.Close()
	if rc := pub5(t, p, 1, "rm/t", "fills", false, 0); rc != wire.Success {
		t.Fatalf("first publish: 0x%02X", byte(rc))
	}
	for i := range 20 {
		pid := uint16(i + 2)
		if i%2 == 0 {
			if rc := pub5(t, p, pid, "rm/t", "refused", false, 0); rc != wire.QuotaExceeded {
				t.Fatalf("publish %d: 0x%02X, want 0x97", i, byte(rc))
			}
			continue
		}
		p.Send(&wire.Publish{QoS: 2, PacketID: pid, Topic: "rm/t", Payload: []byte("refused")})
		if rc := p.expectAck(t, wire.PUBREC, pid).ReasonCode; rc != wire.QuotaExceeded {
			t.Fatalf("QoS 2 publish %d: PUBREC 0x%02X, want 0x97", i, byte(rc))
		}
	}
}
