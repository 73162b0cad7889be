package engine_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// retainedNow subscribes a fresh client to filter and returns the payloads
// of the retained messages it is sent, sorted.
func retainedNow(t *testing.T, tb *testBroker, filter string) []string {
	t.Helper()
	c := dialV5(t, tb.addr, "retained-reader", true, 0)
	defer c.Close()
	c.subscribe(t, 1, filter, 1)
	got := drain(t, c, 300*time.Millisecond)
	slices.Sort(got)
	return got
}

// The message limit: a new retained topic beyond it is refused whole, with
// each version's answer; replacing and clearing are always taken; a lowered
// limit keeps what the store holds.
func TestRetainedLimitMessages(t *testing.T) {
	tb := startBroker(t, engine.Options{Maint: engine.MaintOptions{RetainedLimitMessages: 3}})
	live := dialV5(t, tb.addr, "live", true, 0)
	defer live.Close()
	live.subscribe(t, 1, "r/#", 1)
	p := dialV5(t, tb.addr, "r-pub", true, 0)
	defer p.Close()
	for i := range 3 {
		if rc := pub5(t, p, uint16(i+1), fmt.Sprint("r/", i), fmt.Sprint("v", i), true, 0); rc != wire.Success {
			t.Fatalf("retained publish %d: 0x%02X", i, byte(rc))
		}
	}
	if rc := pub5(t, p, 4, "r/3", "over", true, 0); rc != wire.QuotaExceeded {
		t.Fatalf("a fourth retained topic: 0x%02X, want 0x97", byte(rc))
	}
	// QoS 2: PUBREC 0x97 ends the flow; the packet id is free again.
	p.Send(&wire.Publish{QoS: 2, PacketID: 5, Topic: "r/3", Payload: []byte("over2"), Retain: true})
	if rc := p.expectAck(t, wire.PUBREC, 5).ReasonCode; rc != wire.QuotaExceeded {
		t.Fatalf("QoS 2 fourth retained topic: PUBREC 0x%02X", byte(rc))
	}
	// Not retained messages are not limited, nor are replacements no larger
	// or clearing.
	if rc := pub5(t, p, 6, "r/3", "plain", false, 0); rc != wire.Success {
		t.Fatalf("a publish without retain: 0x%02X", byte(rc))
	}
	if rc := pub5(t, p, 7, "r/0", "w0", true, 0); rc != wire.Success {
		t.Fatalf("replacing a retained value: 0x%02X", byte(rc))
	}
	if rc := pub5(t, p, 8, "r/1", "", true, 0); rc != wire.Success {
		t.Fatalf("clearing a retained value: 0x%02X", byte(rc))
	}
	if got := strings.Join(drain(t, live, 300*time.Millisecond), ","); got != "v0,v1,v2,plain,w0," {
		t.Fatalf("the live subscriber got %q: a refused publish reached it", got)
	}
	// Room again after the clear.
	if rc := pub5(t, p, 9, "r/3", "v3", true, 0); rc != wire.Success {
		t.Fatalf("a new retained topic after a clear: 0x%02X", byte(rc))
	}
	if got := strings.Join(retainedNow(t, tb, "r/#"), ","); got != "v2,v3,w0" {
		t.Fatalf("retained %q", got)
	}

	// 3.1.1 QoS 1: no acknowledgement, the connection closed.
	r3 := dialRaw(t, tb.addr)
	defer r3.Close()
	r3.connect(t, "r-pub3", true, 0, nil)
	r3.Send(&wire.Publish{QoS: 1, PacketID: 1, Topic: "r/4", Payload: []byte("over3"), Retain: true})
	if got := r3.ExpectClosed(t, 5*time.Second); len(got) != 0 {
		t.Fatalf("3.1.1 publisher got %v before the close, want nothing", got)
	}
	// 5.0 QoS 0: DISCONNECT 0x97.
	q0 := dialV5(t, tb.addr, "r-pub0", true, 0)
	defer q0.Close()
	q0.Send(&wire.Publish{Topic: "r/4", Payload: []byte("over0"), Retain: true})
	got := q0.ExpectClosed(t, 5*time.Second)
	if len(got) != 1 || got[0].(*wire.Disconnect).ReasonCode != wire.QuotaExceeded {
		t.Fatalf("5.0 QoS 0 publisher got %v, want DISCONNECT 0x97", got)
	}
	if n := tb.b.MaintStats().RetainedFullRejected.Load(); n != 4 {
		t.Fatalf("RetainedFullRejected %d, want 4", n)
	}
	if got := strings.Join(retainedNow(t, tb, "r/#"), ","); got != "v2,v3,w0" {
		t.Fatalf("retained after the refusals %q", got)
	}

	// A lower limit after a restart keeps the stored set, refuses new topics.
	tb.opts.Maint.RetainedLimitMessages = 2
	tb.restart()
	if got := strings.Join(retainedNow(t, tb, "r/#"), ","); got != "v2,v3,w0" {
		t.Fatalf("retained after the restart %q", got)
	}
	p2 := dialV5(t, tb.addr, "r-pub", true, 0)
	defer p2.Close()
	if rc := pub5(t, p2, 1, "r/9", "new", true, 0); rc != wire.QuotaExceeded {
		t.Fatalf("a new topic over a lowered limit: 0x%02X, want 0x97", byte(rc))
	}
	// (Success or "no matching subscribers": the reader above may not be
	// gone yet.)
	if rc := pub5(t, p2, 2, "r/2", "x2", true, 0); rc != wire.Success && rc != wire.NoMatchingSubscribers {
		t.Fatalf("replacing over a lowered limit: 0x%02X", byte(rc))
	}
	if err := tb.st.Verify(); err != nil {
		t.Fatal(err)
	}
}

// The byte limit bounds the memory estimate of the retained set (messages
// and their index): a new topic or a larger value for a retained one is
// refused when it does not fit, a smaller one is taken. The limit is set
// from what two messages took on a broker without one.
func TestRetainedLimitBytes(t *testing.T) {
	ten := strings.Repeat("a", 10)
	probe := startBroker(t, engine.Options{})
	pp := dialV5(t, probe.addr, "b-pub", true, 0)
	pub5(t, pp, 1, "b/1", ten, true, 0)
	pub5(t, pp, 2, "b/2", ten, true, 0)
	two := engine.RetainedBytes(probe.b)
	pp.Close()
	probe.stop()
	if two < 2*(3+10) {
		t.Fatalf("two retained messages estimated at %d bytes", two)
	}

	tb := startBroker(t, engine.Options{Maint: engine.MaintOptions{RetainedLimitBytes: two + 5}})
	p := dialV5(t, tb.addr, "b-pub", true, 0)
	defer p.Close()
	const ok = wire.NoMatchingSubscribers // accepted; nobody subscribes
	for i, tc := range []struct {
		topic, payload string
		want           wire.ReasonCode
	}{
		{"b/1", ten, ok},
		{"b/2", ten, ok},
		{"b/3", "", ok},                                         // clearing nothing: always
		{"b/3", "x", wire.QuotaExceeded},                        // a third does not fit
		{"b/1", ten + "12345", ok},                              // five bytes more: fits exactly
		{"b/2", ten + "1", wire.QuotaExceeded},                  // one more does not
		{"b/1", "short", ok},                                    // smaller: always
		{"b/2", ten + "12345678901", wire.QuotaExceeded},        // 11 more, 10 free
		{"b/2", ten + "1234567890", ok},                         // 10 more
		{"b/2", strings.Repeat("z", 1<<16), wire.QuotaExceeded}, // far too big
	} {
		if rc := pub5(t, p, uint16(i+1), tc.topic, tc.payload, true, 0); rc != tc.want {
			t.Fatalf("step %d (%s, %d bytes): 0x%02X, want 0x%02X (estimate %d of %d)", i, tc.topic, len(tc.payload), byte(rc), byte(tc.want), engine.RetainedBytes(tb.b), two+5)
		}
	}
	if got := strings.Join(retainedNow(t, tb, "b/#"), ","); got != ten+"1234567890,short" {
		t.Fatalf("retained %q", got)
	}
}

// Concurrent publishers racing for the last places of the limit cannot
// overshoot it: room is reserved before the commit (which waits for an
// fsync), not checked against the set as it was.
func TestRetainedLimitExactUnderConcurrency(t *testing.T) {
	const limit, pubs, each = 20, 6, 10
	tb := startBroker(t, engine.Options{Maint: engine.MaintOptions{RetainedLimitMessages: limit}})
	var wg sync.WaitGroup
	accepted := make(chan int, pubs)
	errs := make(chan error, pubs)
	for i := range pubs {
		c := dialV5(t, tb.addr, fmt.Sprint("race-", i), true, 0)
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// All of this publisher's messages in flight at once: their
			// commits overlap the other publishers'.
			for j := range each {
				c.Send(&wire.Publish{QoS: 1, PacketID: uint16(j + 1), Topic: fmt.Sprintf("race/%d/%d", i, j), Payload: []byte("x"), Retain: true})
			}
			n := 0
			for range each {
				pk, err := c.Recv(5 * time.Second)
				if err != nil {
					errs <- err
					return
				}
				ack, ok := pk.(*wire.Ack)
				if !ok || ack.Kind != wire.PUBACK {
					errs <- fmt.Errorf("publisher %d got %v, want PUBACK", i, pk)
					return
				}
				switch ack.ReasonCode {
				case wire.NoMatchingSubscribers: // accepted; nobody subscribes
					n++
				case wire.QuotaExceeded:
				default:
					errs <- fmt.Errorf("publisher %d: PUBACK 0x%02X", i, byte(ack.ReasonCode))
					return
				}
			}
			accepted <- n
		}()
	}
	wg.Wait()
	close(errs)
	close(accepted)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for n := range accepted {
		total += n
	}
	if total != limit {
		t.Fatalf("%d retained publishes accepted, want exactly the limit %d", total, limit)
	}
	if got := len(retainedNow(t, tb, "race/#")); got != limit {
		t.Fatalf("%d retained, want %d", got, limit)
	}
	if n := tb.b.MaintStats().RetainedFullRejected.Load(); n != pubs*each-limit {
		t.Fatalf("RetainedFullRejected %d, want %d", n, pubs*each-limit)
	}
}
