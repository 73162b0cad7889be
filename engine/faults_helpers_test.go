package engine_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
)

// faultBroker is a broker on loopback over a store on any file system (a
// storetest wrapper, an errorfs): the harness of the storage-fault tests.
type faultBroker struct {
	t    testing.TB
	st   *store.Store
	b    *engine.Broker
	addr string
	done chan struct{}
	// closeErr is what closing the store returned (a failed store reports
	// its failure there).
	closeErr error
}

// startFaultBroker opens the store (so.FS set; Logger defaults to the
// broker's), restores it and serves. It is stopped at the end of the test
// unless stopped before.
func startFaultBroker(t testing.TB, opts engine.Options, so store.Options) *faultBroker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	if so.Logger == nil {
		so.Logger = opts.Logger
	}
	st, err := store.Open("/cairn", so)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	b := engine.New(st, opts)
	if _, err := recovery.Restore(st, b); err != nil {
		t.Fatalf("restore: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &faultBroker{t: t, st: st, b: b, addr: l.Addr().String(), done: make(chan struct{})}
	go func() { defer close(fb.done); _ = b.Serve(l) }()
	t.Cleanup(fb.stop)
	return fb
}

// stop shuts the broker down and closes the store (once).
func (fb *faultBroker) stop() {
	if fb.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fb.b.Shutdown(ctx); err != nil {
		fb.t.Errorf("shutdown: %v", err)
	}
	<-fb.done
	fb.closeErr = fb.st.Close()
	fb.b = nil
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}

// quietLogger drops everything unless CAIRN_TEST_LOG is set: the fault
// tests provoke the store's error lines on purpose.
func quietLogger() *slog.Logger {
	if os.Getenv("CAIRN_TEST_LOG") != "" {
		return testLogger()
	}
	return slog.New(slog.DiscardHandler)
}

// waitStoredOffline waits until the sessions are stored as offline: a client
// sees its socket closed before the broker has marked the session offline
// (with its disconnect time), and a test that moves the clock or runs the
// compaction task must not overtake that.
func waitStoredOffline(t testing.TB, tb *testBroker, ids ...string) {
	t.Helper()
	for _, id := range ids {
		waitFor(t, 5*time.Second, "session "+id+" stored offline", func() bool {
			s := storedSession(t, tb, id)
			return s != nil && !s.Connected
		})
	}
}
