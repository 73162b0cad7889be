package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// Config is a run's parameters; the zero value of a field takes the
// scenario's default (see Defaults).
type Config struct {
	// Clients is the scenario's main client count: fanin publishers, fanout
	// subscribers, pairs, offline publishers, connect connections.
	Clients int `json:"clients"`
	// QoS of publishes and subscriptions (offline and restart use at least 1).
	QoS byte `json:"qos"`
	// Payload is the message size in bytes, at least 24 (the stamp).
	Payload int `json:"payload_bytes"`
	// Duration bounds the publishing phase.
	Duration time.Duration `json:"duration_ns"`
	// Count is the number of messages per publisher (fanin, fanout, pairs;
	// 0 = until Duration), or the total K queued (offline, restart).
	Count int64 `json:"count"`
	// Window is the number of QoS 1/2 publishes in flight per publisher.
	Window int `json:"window"`
	// Clean uses clean sessions; otherwise sessions are persistent.
	Clean bool `json:"clean"`
	// Rate is a fixed publish rate per publisher, messages/s (0 = as fast as
	// the window allows).
	Rate float64 `json:"rate"`
	// Version is the MQTT protocol level (4 = 3.1.1, 5 = 5.0).
	Version wire.Version `json:"mqtt_version"`
	// Parallel is how many connections are set up at once.
	Parallel int `json:"parallel"`
	// Kill stops the broker with SIGKILL instead of SIGTERM (restart).
	Kill bool `json:"kill"`
	// Kills is how many times crash SIGKILLs the broker; KillInterval is
	// the mean time it lets the broker run after a round's first
	// acknowledgement (the delay is uniform in 0.2–1.8 × KillInterval).
	Kills        int           `json:"kills,omitempty"`
	KillInterval time.Duration `json:"kill_interval_ns,omitempty"`
	// Prefix starts every topic.
	Prefix string `json:"topic_prefix"`
	// Grace bounds the wait for acknowledgements and deliveries after
	// publishing stops (and for the drain of offline and restart).
	Grace time.Duration `json:"grace_ns"`
	// Username and Password, if the broker wants them.
	Username string `json:"-"`
	Password string `json:"-"`
	// Log, if set, receives progress lines.
	Log func(format string, args ...any) `json:"-"`
}

// Scenarios lists the scenario names in the order they are documented.
var Scenarios = []string{"fanin", "fanout", "pairs", "offline", "connect", "restart", "crash"}

type scenarioFunc func(ctx context.Context, cfg Config, e *env) (*Result, error)

var scenarioFuncs = map[string]scenarioFunc{
	"fanin":   runFanin,
	"fanout":  runFanout,
	"pairs":   runPairs,
	"offline": runOffline,
	"connect": runConnect,
	"restart": runRestart,
	"crash":   runCrash,
}

// Defaults returns cfg with the scenario's defaults filled in.
func Defaults(scenario string, cfg Config) Config {
	if cfg.Clients <= 0 {
		cfg.Clients = map[string]int{"fanin": 8, "fanout": 50, "pairs": 50, "offline": 1, "connect": 1000, "restart": 1, "crash": 4}[scenario]
	}
	if cfg.Payload <= 0 {
		cfg.Payload = 64
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Count <= 0 {
		cfg.Count = map[string]int64{"offline": 100_000, "restart": 10_000}[scenario]
	}
	if cfg.Window <= 0 {
		cfg.Window = 16
	}
	if cfg.Version == 0 {
		cfg.Version = wire.V311
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 16
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "bench"
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}
	if scenario == "offline" || scenario == "restart" {
		cfg.QoS = max(cfg.QoS, 1)
	}
	if scenario == "crash" {
		if cfg.Kills <= 0 {
			cfg.Kills = 10
		}
		if cfg.KillInterval <= 0 {
			cfg.KillInterval = 500 * time.Millisecond
		}
	}
	return cfg
}

func (cfg Config) check(scenario string) error {
	switch {
	case scenarioFuncs[scenario] == nil:
		return fmt.Errorf("unknown scenario %q (want one of %v)", scenario, Scenarios)
	case cfg.QoS > 2:
		return fmt.Errorf("qos %d: want 0, 1 or 2", cfg.QoS)
	case cfg.Payload < stampLen:
		return fmt.Errorf("payload %d: at least %d bytes (the stamp: run, publisher, sequence, send time)", cfg.Payload, stampLen)
	case cfg.Window > 65535:
		return fmt.Errorf("window %d: at most 65535", cfg.Window)
	case cfg.Version != wire.V311 && cfg.Version != wire.V5:
		return fmt.Errorf("mqtt version %d: want 4 (3.1.1) or 5", cfg.Version)
	case cfg.Rate < 0:
		return fmt.Errorf("rate %v: must not be negative", cfg.Rate)
	case scenario == "fanout" && cfg.Clients > 100_000, cfg.Clients > 1_000_000:
		return fmt.Errorf("clients %d: too many", cfg.Clients)
	}
	return nil
}

func (cfg Config) logf(format string, args ...any) {
	if cfg.Log != nil {
		cfg.Log(format, args...)
	}
}

// Target is the broker a run drives: one already running at Addr (PID, if
// known, for its CPU and memory), or one the run starts with Launcher.
type Target struct {
	Name     string
	Addr     string
	PID      int
	Launcher Launcher
}

// env is what a scenario gets: where the broker is, and the run's identity.
type env struct {
	scenario string
	name     string
	addr     string
	pid      int
	launcher Launcher // restart only: the scenario starts the broker itself
	run      uint32   // nonce stamped in every payload
}

// Run runs one scenario against t. A launched broker is started on a wiped
// data directory and stopped afterwards (restart starts it itself).
func Run(ctx context.Context, scenario string, cfg Config, t Target) (*Result, error) {
	cfg = Defaults(scenario, cfg)
	if err := cfg.check(scenario); err != nil {
		return nil, err
	}
	e := &env{scenario: scenario, name: t.Name, addr: t.Addr, pid: t.PID, run: rand.Uint32()}
	if e.name == "" {
		e.name = "broker"
	}
	switch {
	case scenario == "restart" || scenario == "crash":
		if t.Launcher == nil {
			return nil, fmt.Errorf("%s needs a broker it can start (a command), not just an address", scenario)
		}
		e.launcher = t.Launcher
	case t.Launcher != nil:
		addr, pid, err := t.Launcher.Start(ctx, true)
		if err != nil {
			return nil, fmt.Errorf("starting %s: %w", e.name, err)
		}
		e.addr, e.pid = addr, pid
		defer func() { _ = t.Launcher.Stop(false) }()
	case t.Addr == "":
		return nil, errors.New("no broker: give an address or a command")
	}
	started := time.Now()
	res, err := scenarioFuncs[scenario](ctx, cfg, e)
	if res != nil {
		res.Scenario, res.Broker, res.Addr, res.Started, res.Config = scenario, e.name, e.addr, started, cfg
	}
	return res, err
}

// measure samples the broker and this process over a run's measured phase.
type measure struct {
	broker, self *procWatch
}

func (e *env) measure() *measure {
	return &measure{broker: watchProc(e.pid, 100*time.Millisecond), self: watchProc(pidSelf, 100*time.Millisecond)}
}

func (m *measure) stop(r *Result) {
	r.BrokerProc = m.broker.stop()
	r.BenchProc = m.self.stop()
}

// parallel runs f(0..n-1) on k goroutines and returns the first error.
func parallel(ctx context.Context, n, k int, f func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	for range min(k, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= n || first != nil || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
