package engine_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// goroutinesSettle waits until the goroutine count is at most want and
// returns it (or the last count after the timeout).
func goroutinesSettle(want int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An idle connection costs one goroutine (its reader, parked without a read
// buffer): the writer runs only while there is something to write.
func TestIdleConnectionsHaveNoWriter(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	base := goroutinesSettle(0, 0)
	const n = 100
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = dialRaw(t, tb.addr)
		conns[i].connect(t, fmt.Sprintf("idle-%d", i), i%2 == 0, 0, nil)
	}
	conns[0].subscribe(t, 1, "idle/t", 0)
	// Allow a few for the broker's own work in flight.
	if got := goroutinesSettle(base+n+5, 5*time.Second); got > base+n+5 {
		t.Fatalf("%d goroutines for %d idle connections (%d before): more than one each", got-base, n, base)
	}
	// Deliveries start a writer, which stops again when it is done.
	pub := dialRaw(t, tb.addr)
	pub.connect(t, "pub", true, 0, nil)
	for i := range 50 {
		pub.Send(&wire.Publish{Topic: "idle/t", Payload: []byte(fmt.Sprint(i))})
	}
	for i := range 50 {
		if p := conns[0].expectPublish(t, 5*time.Second); string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, p.Payload)
		}
	}
	if got := goroutinesSettle(base+n+1+5, 5*time.Second); got > base+n+1+5 {
		t.Fatalf("%d goroutines after the deliveries: the writer did not stop", got-base)
	}
	for _, c := range conns {
		c.Close()
	}
}
