package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testBroker is a real broker on a loopback TCP port over a store in a
// temporary directory, restartable over the same directory.
type testBroker struct {
	t    testing.TB
	dir  string
	fs   *vfs.MemFS // crashable: crash() keeps only what was synced
	opts engine.Options
	st   *store.Store
	b    *engine.Broker
	l    net.Listener
	addr string
	done chan struct{}

	// storeOpts are the store's options; Logger and FS (and Now, unless
	// set) are the broker's.
	storeOpts store.Options
}

func testLogger() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("CAIRN_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func startBroker(t testing.TB, opts engine.Options) *testBroker {
	t.Helper()
	return startBrokerStore(t, opts, store.Options{})
}

// startBrokerStore is startBroker with store options (memtable size, ...).
func startBrokerStore(t testing.TB, opts engine.Options, so store.Options) *testBroker {
	t.Helper()
	tb := &testBroker{t: t, dir: "/cairn", fs: vfs.NewCrashableMem(), opts: opts, storeOpts: so}
	if tb.opts.Logger == nil {
		tb.opts.Logger = testLogger()
	}
	tb.start()
	t.Cleanup(tb.stop)
	return tb
}

func (tb *testBroker) start() {
	tb.t.Helper()
	so := tb.storeOpts
	so.Logger, so.FS = tb.opts.Logger, tb.fs
	if so.Now == nil {
		so.Now = tb.opts.Now
	}
	st, err := store.Open(tb.dir, so)
	if err != nil {
		tb.t.Fatalf("open store: %v", err)
	}
	b := engine.New(st, tb.opts)
	if _, err := recovery.Restore(st, b); err != nil {
		tb.t.Fatalf("restore: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.t.Fatalf("listen: %v", err)
	}
	tb.st, tb.b, tb.l, tb.addr = st, b, l, l.Addr().String()
	tb.done = make(chan struct{})
	go func() { defer close(tb.done); _ = b.Serve(l) }()
}

// stop shuts the broker down gracefully and closes the store.
func (tb *testBroker) stop() {
	if tb.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.b.Shutdown(ctx); err != nil {
		tb.t.Errorf("shutdown: %v", err)
	}
	<-tb.done
	if err := tb.st.Close(); err != nil {
		tb.t.Errorf("close store: %v", err)
	}
	tb.b = nil
}

// crash simulates a power cut: the broker restarts over a copy of its file
// system holding only what had been synced; the old broker is then
// abandoned (shut down against the old copy, which nobody reads again).
func (tb *testBroker) crash() {
	tb.t.Helper()
	clone := tb.fs.CrashClone(vfs.CrashCloneCfg{})
	tb.stop()
	tb.fs = clone
	tb.start()
}

// restart stops and starts the broker over the same store (new port).
func (tb *testBroker) restart() {
	tb.t.Helper()
	tb.stop()
	tb.start()
}

// received collects messages delivered to a paho client.
type received struct {
	mu   sync.Mutex
	msgs []paho.Message
	ch   chan struct{}
}

func newReceived() *received { return &received{ch: make(chan struct{}, 1)} }

func (r *received) handler(_ paho.Client, m paho.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

// waitN waits until at least n messages arrived and returns them.
func (r *received) waitN(t testing.TB, n int, timeout time.Duration) []paho.Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		if len(r.msgs) >= n {
			out := append([]paho.Message(nil), r.msgs...)
			r.mu.Unlock()
			return out
		}
		got := len(r.msgs)
		r.mu.Unlock()
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %d messages, got %d", n, got)
		}
	}
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

type clientOpt func(*paho.ClientOptions)

func clean(c bool) clientOpt { return func(o *paho.ClientOptions) { o.SetCleanSession(c) } }

func withWill(topic, payload string, qos byte, retain bool) clientOpt {
	return func(o *paho.ClientOptions) { o.SetWill(topic, payload, qos, retain) }
}

func withHandler(r *received) clientOpt {
	return func(o *paho.ClientOptions) { o.SetDefaultPublishHandler(r.handler) }
}

// connect dials a paho 3.1.1 client and fails the test on error.
func connect(t testing.TB, addr, id string, opts ...clientOpt) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
		SetConnectTimeout(5 * time.Second).SetOrderMatters(true).SetKeepAlive(30 * time.Second)
	for _, f := range opts {
		f(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}

func wait(t testing.TB, tok paho.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func subscribe(t testing.TB, c paho.Client, filter string, qos byte, h paho.MessageHandler) {
	t.Helper()
	wait(t, c.Subscribe(filter, qos, h), "subscribe "+filter)
}

func publish(t testing.TB, c paho.Client, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	wait(t, c.Publish(topic, qos, retain, payload), fmt.Sprintf("publish %s", topic))
}
