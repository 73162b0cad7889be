package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

const (
	takeoverTries  = 2                // pipelining publishers taken over
	takeoverWithin = 3 * time.Second  // new CONNACK and old connection closed, at most
	takeoverFlood  = 12 * time.Second // a flooding client's limit: longer than the broker's 10 s take-over wait
)

// TestTakeoverOfBusyConnection: a client id connecting again while its old
// connection is busy — streaming QoS 0 publishes, or pipelining QoS 1/2
// ones — takes the session over at once: CONNACK (accepted) within a few
// seconds and the old connection closed by the broker, rather than waiting
// for the old client to fall silent. What the broker acknowledged on the old
// connections still reaches the subscriber.
func TestTakeoverOfBusyConnection(t *testing.T) {
	b := startBroker(t)
	subscribePersistent(t, b.addr, "takeover-sub", wire.V311,
		wire.Subscription{Filter: "k/1/#", QoS: 1}, wire.Subscription{Filter: "k/2/#", QoS: 2})
	t.Run("streaming-qos0", func(t *testing.T) {
		var sent atomic.Int64
		floodErr := make(chan error, 1)
		go func() { floodErr <- flood(t, b.addr, "takeover-flood", "flood/takeover", &sent, nil, takeoverFlood) }()
		if !waitFor(10*time.Second, func() bool { return sent.Load() >= floodBefore }) {
			t.Fatalf("the flooding client wrote %d messages in 10s, want %d", sent.Load(), floodBefore)
		}
		start := time.Now()
		ack, took := takeOver(t, b.addr, "takeover-flood")
		var ended time.Duration
		select {
		case err := <-floodErr:
			ended = time.Since(start)
			if ended > takeoverWithin {
				t.Errorf("the taken-over connection ended %v after the new CONNECT (%v), want it closed by the broker within %v",
					ended.Round(time.Millisecond), err, takeoverWithin)
			}
		case <-time.After(takeoverFlood + ioTimeout):
			t.Fatalf("the flooding client did not stop")
		}
		t.Logf("take-over of a client streaming QoS 0 (%d messages written): CONNACK 0x%02x after %v, old connection ended after %v",
			sent.Load(), byte(ack), took.Round(time.Millisecond), ended.Round(time.Millisecond))
	})

	l := newKillLedger()
	for try := range takeoverTries {
		var acks atomic.Int64
		busy := make(chan struct{})
		var end pubEnd
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			end = l.publisher(t, b.addr, try, 0, wire.V311, livePatience, func() {
				if acks.Add(1) == liveAcks {
					close(busy)
				}
			})
		}()
		select {
		case <-busy:
		case <-time.After(15 * time.Second):
			t.Fatalf("try %d: the publisher got %d acknowledgements within 15s, want %d", try, acks.Load(), liveAcks)
		}

		id := fmt.Sprintf("kill-pub-%d-0", try) // the busy publisher's client id
		start := time.Now()
		_, took := takeOver(t, b.addr, id)
		waitGroupFor(t, &wg, 2*livePatience, "the taken-over publisher")
		if oldEnd := end.at.Sub(start); isTimeout(end.err) || oldEnd > takeoverWithin {
			t.Errorf("try %d: the taken-over connection ended %v after the new CONNECT (%v), want it closed by the broker within %v",
				try, oldEnd.Round(time.Millisecond), end.err, takeoverWithin)
		}
		t.Logf("try %d: take-over of %s pipelining publishes (%d acknowledged): CONNACK after %v, old connection ended after %v (%v)",
			try, id, acks.Load(), took.Round(time.Millisecond), end.at.Sub(start).Round(time.Millisecond), end.err)
	}

	// Everything acknowledged to the old connections was delivered.
	r := newReceiver("takeover-sub", wire.V311, 0) // QoS 1 and 2
	drained := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range []map[string]bool{l.acked1, l.acked2} {
			for p := range m {
				if r.delivered[p] == 0 {
					return false
				}
			}
		}
		return true
	}
	if err := r.session(t, b.addr, nil, drained, 300*time.Millisecond, 30*time.Second); err != nil {
		t.Errorf("draining takeover-sub: %v", err)
	}
	acked1, acked2, _, _ := l.snapshot()
	lost := 0
	for _, m := range []map[string]bool{acked1, acked2} {
		for p := range m {
			if r.get(p) == 0 {
				lost++
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged messages never reached the subscriber", lost, len(acked1)+len(acked2))
	}
	for _, p := range r.problems {
		t.Errorf("takeover-sub: %s", p)
	}
}

// takeOver connects a clean session with client id id, expecting the broker
// to accept it within takeoverWithin, and returns the CONNACK code and how
// long it took. The connection is closed when the test ends.
func takeOver(t *testing.T, addr, id string) (wire.ReasonCode, time.Duration) {
	t.Helper()
	c, err := dialRaw(t, addr, wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.send(&wire.Connect{Version: wire.V311, ClientID: id, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	p, err := c.recv(2 * livePatience)
	took := time.Since(start)
	switch ack, ok := p.(*wire.Connack); {
	case err != nil:
		t.Errorf("taking over %s: no CONNACK after %v: %v", id, took, err)
	case !ok:
		t.Errorf("taking over %s: got %s, want CONNACK", id, p.Type())
	case ack.ReasonCode != 0:
		t.Errorf("taking over %s: CONNACK refused with 0x%02x after %v (the old connection, busy, was not closed in time)",
			id, byte(ack.ReasonCode), took)
		return ack.ReasonCode, took
	case took > takeoverWithin:
		t.Errorf("taking over %s took %v, want at most %v (did the broker wait for the busy old client to fall silent?)",
			id, took, takeoverWithin)
		return ack.ReasonCode, took
	default:
		return ack.ReasonCode, took
	}
	return 0xff, took
}
