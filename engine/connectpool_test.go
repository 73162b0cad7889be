package engine_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
)

// CONNECT handling runs on long-lived workers (connectpool.go): one after
// another, connections reuse the first one's goroutine instead of each
// growing a fresh stack through the store commit; a burst starts more, never
// beyond the bound; Shutdown ends them all (TestMain checks for leaked
// goroutines).
func TestConnectWorkersReusedAndBounded(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	for i := range 20 {
		c := dialRaw(t, tb.addr)
		c.connect(t, fmt.Sprintf("seq-%d", i), false, 30, nil)
		c.Close()
		time.Sleep(5 * time.Millisecond) // let the worker park after its CONNACK
	}
	// One, give or take a connection that arrived before the worker was
	// back: never one per connection.
	if n := engine.ConnectWorkers(tb.b); n < 1 || n > 3 {
		t.Fatalf("after 20 connections one at a time: %d CONNECT workers, want 1 (reused)", n)
	}

	const burst = 200
	var wg sync.WaitGroup
	conns := make([]*rawConn, burst)
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i] = dialRaw(t, tb.addr)
			conns[i].connect(t, fmt.Sprintf("burst-%d", i), false, 30, nil)
		}()
	}
	wg.Wait()
	n := engine.ConnectWorkers(tb.b)
	if n < 1 || n > 64 {
		t.Fatalf("after a burst of %d: %d CONNECT workers, want 1..64", burst, n)
	}
	// Every connection is served after its CONNECT: a session each, and a
	// PINGREQ answered on the last one.
	conns[burst-1].ping(t)
	for _, c := range conns {
		c.Close()
	}

	b := tb.b
	tb.stop()
	deadline := time.Now().Add(5 * time.Second)
	for engine.ConnectWorkers(b) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d CONNECT workers alive after Shutdown", engine.ConnectWorkers(b))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
