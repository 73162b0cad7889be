package bench_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/bench"
	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// inproc runs a real Cairn broker inside the test process (bench itself may
// not import the engine): a Launcher over a data directory that Start wipes
// on request. Stop is always graceful: an in-process broker cannot be
// killed.
type inproc struct {
	t    testing.TB
	dir  string
	addr string
	st   *store.Store
	b    *engine.Broker
	done chan struct{}
}

func newInproc(t testing.TB) *inproc { return &inproc{t: t, dir: t.TempDir()} }

func (p *inproc) Start(_ context.Context, wipe bool) (string, int, error) {
	if wipe {
		if err := os.RemoveAll(p.dir); err != nil {
			return "", 0, err
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(p.dir, store.Options{Logger: log})
	if err != nil {
		return "", 0, err
	}
	b := engine.New(st, engine.Options{Logger: log})
	if _, err := recovery.Restore(st, b); err != nil {
		st.Close()
		return "", 0, err
	}
	var l net.Listener
	if p.addr == "" {
		l, err = wiretest.ListenLowPort() // restarts keep the port: one not ephemeral
	} else {
		l, err = net.Listen("tcp", p.addr)
	}
	if err != nil {
		st.Close()
		return "", 0, err
	}
	p.addr, p.st, p.b, p.done = l.Addr().String(), st, b, make(chan struct{})
	go func() { defer close(p.done); _ = b.Serve(l) }()
	return p.addr, os.Getpid(), nil
}

func (p *inproc) Stop(bool) error {
	if p.b == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.b.Shutdown(ctx)
	<-p.done
	err = errors.Join(err, p.st.Close())
	p.b = nil
	return err
}

func (p *inproc) Close() error { return p.Stop(false) }

// smokeConfig is a run small enough for go test (also with -race).
func smokeConfig(t *testing.T) bench.Config {
	cfg := bench.Config{Duration: 300 * time.Millisecond, Grace: 10 * time.Second, Window: 8, Payload: 64, Parallel: 8, QoS: 1}
	if testing.Verbose() {
		cfg.Log = t.Logf
	}
	return cfg
}

func checkResult(t *testing.T, r *bench.Result, headline string) {
	t.Helper()
	if r == nil {
		t.Fatal("no result")
	}
	var b strings.Builder
	if err := bench.WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	if r.Counts.Errors != 0 || r.Counts.Lost != 0 {
		t.Fatalf("%s: %d errors, %d lost: %v", r.Scenario, r.Counts.Errors, r.Counts.Lost, r.ErrorSamples)
	}
	m, ok := r.Metric(headline)
	if !ok || m.Value <= 0 {
		t.Fatalf("%s: metric %s = %+v", r.Scenario, headline, m)
	}
	if r.BrokerProc == nil || r.BenchProc == nil {
		t.Errorf("%s: process stats missing", r.Scenario)
	}
}

func TestSmokeScenarios(t *testing.T) {
	b := newInproc(t)
	target := bench.Target{Name: "cairn", Launcher: b}
	defer b.Close()
	for _, tc := range []struct {
		scenario string
		headline string
		edit     func(*bench.Config)
	}{
		{"fanin", "msgs_per_s", func(c *bench.Config) { c.Clients = 3 }},
		{"fanin", "msgs_per_s", func(c *bench.Config) { c.Clients = 2; c.QoS = 0; c.Clean = true; c.Rate = 2000 }},
		{"fanout", "msgs_per_s", func(c *bench.Config) { c.Clients = 4; c.QoS = 2 }},
		{"pairs", "msgs_per_s", func(c *bench.Config) { c.Clients = 3; c.Clean = true; c.Rate = 1000 }},
		{"offline", "drain_per_s", func(c *bench.Config) { c.Count = 2000; c.Clients = 2 }},
		{"connect", "connects_per_s", func(c *bench.Config) { c.Clients = 60 }},
		{"restart", "listen_ms", func(c *bench.Config) { c.Count = 300 }},
		{"restart", "all_msgs_ms", func(c *bench.Config) { c.Count = 900; c.Sessions = 40; c.Clients = 3 }},
		{"fanin", "x_fsync", func(c *bench.Config) { c.Clients = 1; c.Window = 32; c.FsyncProbe = 50 * time.Millisecond }},
		// In process the "kills" are graceful stops; cmd/cairn's
		// TestBenchCrashKillsCairn kills a real broker.
		{"crash", "acked", func(c *bench.Config) { c.Clients = 2; c.Kills = 2; c.KillInterval = 100 * time.Millisecond }},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			cfg := smokeConfig(t)
			tc.edit(&cfg)
			r, err := bench.Run(context.Background(), tc.scenario, cfg, target)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, r, tc.headline)
			if tc.scenario == "crash" {
				if k, _ := r.Metric("kills"); k.Value != float64(cfg.Kills) || !strings.HasSuffix(r.Summary, ": PASS") {
					t.Fatalf("crash: %v kills, summary %q", k.Value, r.Summary)
				}
			}
			if tc.scenario == "offline" || tc.scenario == "restart" {
				if r.Counts.Received != cfg.Count || r.Counts.Acked != cfg.Count {
					t.Fatalf("%s: acked %d received %d of %d", tc.scenario, r.Counts.Acked, r.Counts.Received, cfg.Count)
				}
			}
		})
	}
}

func TestSmokeRunningBrokerByAddress(t *testing.T) {
	b := newInproc(t)
	addr, pid, err := b.Start(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := smokeConfig(t)
	cfg.Clients = 5
	cfg.Count = 200 // the count ends the run before the duration
	cfg.Duration = time.Minute
	r, err := bench.Run(context.Background(), "pairs", cfg, bench.Target{Name: "cairn", Addr: addr, PID: pid})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r, "msgs_per_s")
	if r.Counts.Received != 5*200 {
		t.Fatalf("received %d, want %d", r.Counts.Received, 5*200)
	}
	if _, err := bench.Run(context.Background(), "restart", cfg, bench.Target{Addr: addr}); err == nil {
		t.Fatal("restart without a launcher did not fail")
	}
}

func TestSmokeCompare(t *testing.T) {
	a, b := newInproc(t), newInproc(t)
	defer a.Close()
	defer b.Close()
	cfg := smokeConfig(t)
	cfg.Clients = 2
	cmp, err := bench.Compare(context.Background(), "fanin", cfg,
		bench.Target{Name: "cairn-a", Launcher: a}, bench.Target{Name: "cairn-b", Launcher: b}, 2)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := bench.WriteComparison(&out, cmp); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if len(cmp.Runs) != 2 || cmp.Runs[1].A.Broker != "cairn-a" || cmp.Runs[1].B.Broker != "cairn-b" {
		t.Fatalf("runs %+v", cmp.Runs)
	}
	if m := cmp.Metrics[0]; len(m.Ratios) != 2 || m.MedianRatio <= 0 {
		t.Fatalf("headline %+v", m)
	}
	if err := bench.WriteHTML(io.Discard, cmp); err != nil {
		t.Fatal(err)
	}
}

// TestSmokeMosquitto drives Debian's mosquitto through the process launcher
// and its generated configuration, where it is installed.
func TestSmokeMosquitto(t *testing.T) {
	const bin = "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("mosquitto is not installed")
	}
	l := bench.NewMosquittoLauncher(bin)
	defer l.Close()
	cfg := smokeConfig(t)
	cfg.Clients = 2
	r, err := bench.Run(context.Background(), "fanin", cfg, bench.Target{Name: "mosquitto", Launcher: l})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r, "msgs_per_s")
	cfg.Count = 200
	r, err = bench.Run(context.Background(), "restart", cfg, bench.Target{Name: "mosquitto", Launcher: l})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r, "listen_ms")
}
