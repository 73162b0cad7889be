package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cairn-mqtt/cairn/bench"
	"github.com/cairn-mqtt/cairn/wire"
)

var benchUsage = map[string]string{
	"fanin":   "P publishers (--clients) → 1 wildcard subscriber",
	"fanout":  "1 publisher → S subscribers (--clients)",
	"pairs":   "N publisher/subscriber pairs (--clients)",
	"offline": "queue K messages (--count) for an offline persistent QoS 1 subscriber, then drain them",
	"connect": "connect storm of N connections (--clients); broker RSS per idle connection",
	"restart": "time from broker start to listening and to the first queued message (needs a broker command)",
	"crash":   "kill -9 checker: SIGKILL and restart the broker --kills times under persistent QoS 1/2 and retained load, then check nothing acknowledged was lost and no QoS 2 message was delivered twice (needs a broker command)",
}

func benchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "addr", Value: "127.0.0.1:1883", Usage: "address of a running broker"},
		&cli.IntFlag{Name: "broker-pid", Usage: "pid of the running broker, to report its CPU and RSS"},
		&cli.StringFlag{Name: "cmd", Usage: "start this broker command for each run (placeholders {addr} {host} {port} {dir} {work}; {dir} is wiped; with --addr, the address it listens on)"},
		&cli.BoolFlag{Name: "cairn", Usage: "start this cairn binary (serve) for each run"},
		&cli.BoolFlag{Name: "mosquitto", Usage: "start mosquitto with a generated best-throughput config (with --compare: as broker B)"},
		&cli.StringFlag{Name: "mosquitto-bin", Value: "/usr/sbin/mosquitto", Usage: "mosquitto binary"},
		&cli.StringFlag{Name: "name", Usage: "broker name in the results"},

		&cli.IntFlag{Name: "clients", Usage: "fanin publishers, fanout subscribers, pairs, offline publishers, connect connections (default 8, 50, 50, 1, 1000)"},
		&cli.IntFlag{Name: "qos", Value: 1, Usage: "QoS of publishes and subscriptions (0, 1, 2)"},
		&cli.IntFlag{Name: "payload", Value: 64, Usage: "payload bytes (at least 24)"},
		&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "publishing time (flows); a bound for the others"},
		&cli.Int64Flag{Name: "count", Usage: "messages per publisher (flows, 0 = until --duration); K for offline (100000) and restart (10000)"},
		&cli.IntFlag{Name: "window", Value: 16, Usage: "QoS 1/2 publishes in flight per publisher"},
		&cli.BoolFlag{Name: "clean", Usage: "clean sessions (default: persistent)"},
		&cli.Float64Flag{Name: "rate", Usage: "fixed publish rate per publisher, msg/s (0 = as fast as the window allows)"},
		&cli.IntFlag{Name: "mqtt-version", Value: 4, Usage: "protocol level: 4 (3.1.1) or 5"},
		&cli.IntFlag{Name: "parallel", Value: 16, Usage: "connections set up at once"},
		&cli.BoolFlag{Name: "kill", Usage: "restart: stop the broker with SIGKILL instead of SIGTERM"},
		&cli.IntFlag{Name: "sessions", Usage: "restart: persistent sessions the --count messages are queued for (default 1)"},
		&cli.DurationFlag{Name: "fsync-probe", Usage: "flows: measure the disk's one-writer fsync rate for this long before each run and report messages/s as a multiple of it"},
		&cli.StringFlag{Name: "probe-dir", Usage: "directory of the fsync probe (default: the temporary directory, where launched brokers keep their data)"},
		&cli.IntFlag{Name: "kills", Usage: "crash: how many times to SIGKILL and restart the broker (default 10)"},
		&cli.DurationFlag{Name: "kill-interval", Usage: "crash: mean time the broker runs after a round's first acknowledgement before the SIGKILL (default 500ms)"},
		&cli.StringFlag{Name: "prefix", Value: "bench", Usage: "topic prefix"},
		&cli.DurationFlag{Name: "grace", Value: 30 * time.Second, Usage: "wait for acks and deliveries after publishing stops"},
		&cli.StringFlag{Name: "username", Usage: "MQTT username"},
		&cli.StringFlag{Name: "password", Usage: "MQTT password"},

		&cli.BoolFlag{Name: "compare", Usage: "run against brokers A and B in alternation and print ratios A/B"},
		&cli.IntFlag{Name: "runs", Usage: "runs (default 3 with --compare, else 1)"},
		&cli.StringFlag{Name: "cmd-a", Usage: "command of broker A (default: this cairn binary)"},
		&cli.StringFlag{Name: "cmd-b", Usage: "command of broker B"},
		&cli.StringFlag{Name: "addr-a", Usage: "address of a running broker A"},
		&cli.StringFlag{Name: "addr-b", Usage: "address of a running broker B"},
		&cli.IntFlag{Name: "pid-a", Usage: "pid of the running broker A"},
		&cli.IntFlag{Name: "pid-b", Usage: "pid of the running broker B"},
		&cli.StringFlag{Name: "name-a", Usage: "name of broker A (default cairn)"},
		&cli.StringFlag{Name: "name-b", Usage: "name of broker B (default mosquitto with --mosquitto, else b)"},

		&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		&cli.StringFlag{Name: "report", Usage: "write a self-contained HTML report to this file"},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress lines on stderr"},
		&cli.StringFlag{Name: "cpuprofile", Usage: "write the load generator's own CPU profile to this file"},
	}
}

func benchCommand() *cli.Command {
	cmd := &cli.Command{
		Name:  "bench",
		Usage: "load-test an MQTT broker (Cairn or any other) over TCP",
		Description: "Scenarios: " + strings.Join(bench.Scenarios, ", ") + ". For example:\n" +
			"   cairn bench fanin --addr 127.0.0.1:1883 --broker-pid $(pidof cairn)\n" +
			"   cairn bench fanin --compare --mosquitto --report fanin.html",
	}
	for _, sc := range bench.Scenarios {
		cmd.Subcommands = append(cmd.Subcommands, &cli.Command{
			Name:   sc,
			Usage:  benchUsage[sc],
			Flags:  benchFlags(),
			Action: func(c *cli.Context) error { return runBench(c, sc) },
		})
	}
	return cmd
}

func runBench(c *cli.Context, scenario string) error {
	if c.Args().Present() {
		return fmt.Errorf("unexpected arguments: %v", c.Args().Slice())
	}
	cfg := bench.Config{
		Clients:      c.Int("clients"),
		QoS:          byte(c.Int("qos")),
		Payload:      c.Int("payload"),
		Duration:     c.Duration("duration"),
		Count:        c.Int64("count"),
		Window:       c.Int("window"),
		Clean:        c.Bool("clean"),
		Rate:         c.Float64("rate"),
		Version:      wire.Version(c.Int("mqtt-version")),
		Parallel:     c.Int("parallel"),
		Kill:         c.Bool("kill"),
		Kills:        c.Int("kills"),
		KillInterval: c.Duration("kill-interval"),
		Sessions:     c.Int("sessions"),
		Prefix:       c.String("prefix"),
		Grace:        c.Duration("grace"),
		Username:     c.String("username"),
		Password:     c.String("password"),
	}
	if c.Int("qos") < 0 || c.Int("qos") > 2 {
		return fmt.Errorf("--qos %d: want 0, 1 or 2", c.Int("qos"))
	}
	if c.IsSet("count") && !c.IsSet("duration") && (scenario == "fanin" || scenario == "fanout" || scenario == "pairs") {
		cfg.Duration = 10 * time.Minute // the count decides; the duration only bounds it
	}
	cfg.FsyncProbe, cfg.ProbeDir = c.Duration("fsync-probe"), c.String("probe-dir")
	if !c.Bool("quiet") {
		// On a terminal, a progress bar; log lines first erase it.
		clear := ""
		if isTerminal(os.Stderr) {
			cfg.Progress = bench.ProgressBar(os.Stderr, 30)
			clear = "\r\x1b[K"
		}
		cfg.Log = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, clear+"%s "+format+"\n", append([]any{time.Now().Format(time.TimeOnly)}, args...)...)
		}
	}
	if path := c.String("cpuprofile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var cmp *bench.Comparison
	var runErr error
	if c.Bool("compare") {
		a, err := benchTarget(c, "a")
		if err != nil {
			return err
		}
		defer closeTarget(a)
		b, err := benchTarget(c, "b")
		if err != nil {
			return err
		}
		defer closeTarget(b)
		cmp, runErr = bench.Compare(ctx, scenario, cfg, a, b, runsOr(c, 3))
	} else {
		t, err := benchTarget(c, "")
		if err != nil {
			return err
		}
		defer closeTarget(t)
		var rs []*bench.Result
		for range runsOr(c, 1) {
			r, err := bench.Run(ctx, scenario, cfg, t)
			if err != nil {
				runErr = err
				break
			}
			rs = append(rs, r)
		}
		cmp = bench.FromResults(rs...)
	}
	if cmp != nil && len(cmp.Runs) > 0 {
		var err error
		switch {
		case c.Bool("json"):
			if cmp.B == "" && len(cmp.Runs) == 1 {
				err = bench.WriteJSON(c.App.Writer, cmp.Runs[0].A)
			} else {
				err = bench.WriteJSON(c.App.Writer, cmp)
			}
		case scenario == "crash":
			err = writeSummaries(c.App.Writer, cmp) // one line per run
		default:
			err = bench.WriteComparison(c.App.Writer, cmp)
		}
		if err != nil {
			return err
		}
		if path := c.String("report"); path != "" {
			if err := writeReport(path, cmp); err != nil {
				return err
			}
		}
	}
	if runErr == nil && scenario == "crash" {
		runErr = crashVerdict(cmp)
	}
	return runErr
}

// writeSummaries prints each run's one-line summary (crash).
func writeSummaries(w io.Writer, cmp *bench.Comparison) error {
	for _, run := range cmp.Runs {
		for _, r := range []*bench.Result{run.A, run.B} {
			if r == nil {
				continue
			}
			if _, err := fmt.Fprintln(w, r.Summary); err != nil {
				return err
			}
			for _, e := range r.ErrorSamples {
				if _, err := fmt.Fprintf(w, "  error: %s\n", e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// crashVerdict fails the command when a crash run found a violation, so
// that scripts and CI see it in the exit code.
func crashVerdict(cmp *bench.Comparison) error {
	if cmp == nil {
		return nil
	}
	for _, run := range cmp.Runs {
		for _, r := range []*bench.Result{run.A, run.B} {
			if r != nil && r.Counts.Errors > 0 {
				return fmt.Errorf("crash check failed against %s: %d errors (%d acknowledged messages lost)", r.Broker, r.Counts.Errors, r.Counts.Lost)
			}
		}
	}
	return nil
}

func runsOr(c *cli.Context, def int) int {
	if c.Int("runs") > 0 {
		return c.Int("runs")
	}
	return def
}

func writeReport(path string, cmp *bench.Comparison) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := bench.WriteHTML(f, cmp); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchTarget builds the broker of side "" (single run), "a" or "b".
func benchTarget(c *cli.Context, side string) (bench.Target, error) {
	flag := func(n string) string {
		if side == "" {
			return n
		}
		return n + "-" + side
	}
	t := bench.Target{Name: c.String(flag("name"))}
	cmdLine := c.String(flag("cmd"))
	switch {
	case cmdLine != "":
		l := bench.NewProcLauncher(cmdLine)
		if c.IsSet(flag("addr")) {
			l.Addr = c.String(flag("addr")) // the command listens there
		}
		t.Launcher = l
		if t.Name == "" {
			t.Name = strings.Fields(cmdLine)[0]
			t.Name = t.Name[strings.LastIndexByte(t.Name, '/')+1:]
		}
	case side != "a" && c.Bool("mosquitto"):
		t.Launcher = bench.NewMosquittoLauncher(c.String("mosquitto-bin"))
		if t.Name == "" {
			t.Name = "mosquitto"
		}
	case side == "a" && c.String("addr-a") == "", side == "" && c.Bool("cairn"):
		exe, err := os.Executable()
		if err != nil {
			return t, err
		}
		// No connection limits: every connection of the load generator comes
		// from 127.0.0.1, and `connect` opens more than the default per-address
		// limit allows.
		t.Launcher = bench.NewProcLauncher(shellQuote(exe) + " --log-level warn serve --listen {addr} --data {dir} --admin 127.0.0.1:0 --listen-ws '' --max-connections 0 --max-connections-per-ip 0")
		if t.Name == "" {
			t.Name = "cairn"
		}
	default:
		t.Addr = c.String(flag("addr"))
		if side == "" {
			t.PID = c.Int("broker-pid")
		} else {
			t.PID = c.Int("pid-" + side)
		}
		if t.Addr == "" {
			return t, fmt.Errorf("broker %s: give --cmd-%s, --addr-%s or (for b) --mosquitto", strings.ToUpper(side), side, side)
		}
		if t.Name == "" {
			t.Name = map[string]string{"": "broker", "a": "a", "b": "b"}[side]
		}
	}
	return t, nil
}

func closeTarget(t bench.Target) {
	if t.Launcher != nil {
		if err := t.Launcher.Close(); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(os.Stderr, "cairn bench:", err)
		}
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
