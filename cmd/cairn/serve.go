package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/engine/metrics"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
)

func serveFlags() []cli.Flag {
	d := engine.DefaultOptions()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML config file (keys are the flag names)", EnvVars: []string{"CAIRN_CONFIG"}},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "listen", Value: "127.0.0.1:1883", Usage: "TCP listener address", EnvVars: []string{"CAIRN_LISTEN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data", Value: "./cairn-data", Usage: "store directory", EnvVars: []string{"CAIRN_DATA"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-inflight", Value: d.MaxInflight, Usage: "QoS 1/2 messages in flight toward each client", EnvVars: []string{"CAIRN_MAX_INFLIGHT"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-queued-memory", Value: d.MaxQueuedMemory, Usage: "QoS 1/2 messages held in memory per session (persistent sessions keep the rest on disk)", EnvVars: []string{"CAIRN_MAX_QUEUED_MEMORY"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-packet-size", Value: int(d.MaxPacketSize), Usage: "largest packet accepted, bytes", EnvVars: []string{"CAIRN_MAX_PACKET_SIZE"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "connect-timeout", Value: d.ConnectTimeout, Usage: "time a new connection has to send CONNECT", EnvVars: []string{"CAIRN_CONNECT_TIMEOUT"}}),
		&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the broker to this file until it stops (for performance work)", Hidden: true},
		&cli.StringFlag{Name: "memprofile", Usage: "write an allocation profile of the broker to this file when it stops (for performance work)", Hidden: true},
		altsrc.NewIntFlag(&cli.IntFlag{Name: "memtable-size", Value: 64, Usage: "Pebble memtable size, MiB", EnvVars: []string{"CAIRN_MEMTABLE_SIZE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "admin", Value: defaultAdmin, Usage: "admin HTTP endpoint (/metrics, health, readiness, inspect, backup, compact and reload actions); empty disables it", EnvVars: []string{"CAIRN_ADMIN"}}),
	}
	flags = append(flags, mqtt5Flags()...)    // mqtt5flags.go
	flags = append(flags, storeFlags()...)    // storeflags.go
	flags = append(flags, maintFlags()...)    // compact.go
	flags = append(flags, securityFlags()...) // security.go
	return append(flags, opsFlags()...)       // ops.go
}

func serveCommand() *cli.Command {
	flags := serveFlags()
	return &cli.Command{
		Name:   "serve",
		Usage:  "run the broker",
		Flags:  flags,
		Before: func(c *cli.Context) error { return loadConfigFile(c, flags) }, // config.go
		Action: serve,
	}
}

// serveConfig is everything `cairn serve` was told, after flags, CAIRN_*
// variables and the config file were merged (in that order of precedence).
type serveConfig struct {
	Listen      string
	Data        string
	Admin       string // admin endpoint address; "" disables it
	MemTableMiB int
	// MinFreeSpace is store.Options.MinFreeSpace (storeflags.go).
	MinFreeSpace int64
	Engine       engine.Options
	Sec          securityConfig
	// CompactInterval is how often the compaction task runs (0: never).
	CompactInterval time.Duration
	Ops             opsConfig       // WebSocket, $SYS (ops.go)
	Bridges         []bridge.Config // bridges.go
}

func loadServeConfig(c *cli.Context) (serveConfig, error) {
	cfg, err := loadServeSettings(c)
	return cfg, atConfigLine(c, err) // config.go: which line of the file a bad value came from
}

func loadServeSettings(c *cli.Context) (serveConfig, error) {
	cfg := serveConfig{
		Listen:      c.String("listen"),
		Data:        c.String("data"),
		Admin:       c.String("admin"),
		MemTableMiB: c.Int("memtable-size"),
		Engine: engine.Options{
			MaxInflight:     c.Int("max-inflight"),
			MaxQueuedMemory: c.Int("max-queued-memory"),
			MaxPacketSize:   uint32(c.Int("max-packet-size")),
			ConnectTimeout:  c.Duration("connect-timeout"),
		},
	}
	switch {
	case cfg.Listen == "":
		return cfg, errors.New("listen: an address is required")
	case cfg.Data == "":
		return cfg, errors.New("data: a directory is required")
	case cfg.Engine.MaxInflight < 1 || cfg.Engine.MaxInflight > 65535:
		return cfg, fmt.Errorf("max-inflight: %d is not in 1..65535", cfg.Engine.MaxInflight)
	case cfg.Engine.MaxQueuedMemory < 1:
		return cfg, fmt.Errorf("max-queued-memory: %d must be positive", cfg.Engine.MaxQueuedMemory)
	case c.Int("max-packet-size") < 64 || c.Int("max-packet-size") > 268435460:
		return cfg, fmt.Errorf("max-packet-size: %d is not in 64..268435460", c.Int("max-packet-size"))
	case cfg.Engine.ConnectTimeout <= 0:
		return cfg, fmt.Errorf("connect-timeout: %v must be positive", cfg.Engine.ConnectTimeout)
	case cfg.MemTableMiB < 1 || cfg.MemTableMiB > 4096:
		return cfg, fmt.Errorf("memtable-size: %d MiB is not in 1..4096", cfg.MemTableMiB)
	}
	var err error
	if cfg.Engine.Features, err = loadFeatures(c); err != nil { // mqtt5flags.go
		return cfg, err
	}
	if cfg.MinFreeSpace, err = loadMinFreeSpace(c); err != nil { // storeflags.go
		return cfg, err
	}
	if cfg.Engine.Maint, cfg.CompactInterval, err = loadMaint(c); err != nil { // compact.go
		return cfg, err
	}
	if cfg.Bridges, err = loadBridges(c); err != nil { // bridges.go
		return cfg, err
	}
	if len(cfg.Bridges) == 0 {
		cfg.Bridges = nil // "bridges: []" (cairn config example) is no bridge, like no key
	}
	if err := loadSecurityConfig(c, &cfg.Sec, &cfg.Engine); err != nil { // security.go
		return cfg, err
	}
	return cfg, loadOps(c, &cfg.Ops, &cfg.Sec) // ops.go
}

func serve(c *cli.Context) error {
	cfg, err := loadServeConfig(c)
	if err != nil {
		return err
	}
	log, err := newLogger(c, os.Stderr)
	if err != nil {
		return err
	}
	policy, err := newPolicy(&cfg.Sec)
	if err != nil {
		return err
	}
	cfg.Engine.Auth = policy
	if path := c.String("cpuprofile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if path := c.String("memprofile"); path != "" {
		defer writeAllocProfile(log, path)
	}
	dir := cfg.Data
	m := metrics.New(buildVersion()) // /metrics on the admin endpoint; observes the store and the engine
	st, err := store.Open(dir, store.Options{Logger: log, MemTableSize: uint64(cfg.MemTableMiB) << 20,
		MinFreeSpace: cfg.MinFreeSpace, FS: storeFS(c), Observer: m})
	if err != nil {
		if derr := damagedStoreErr(dir, err); derr != nil {
			return derr
		}
		return fmt.Errorf("opening the store in %s: %w", dir, err)
	}
	defer st.Close()
	cfg.Engine.Logger = log
	cfg.Engine.Observer = m
	b := engine.New(st, cfg.Engine)
	m.Attach(b, st)
	adm, err := startAdmin(cfg.Admin, dir, st, b, log)
	if err != nil {
		return err
	}
	defer adm.stop()
	registerAdminActions(adm, b) // admin_actions.go
	adm.handle("GET /metrics", m.Handler())
	rep, err := recovery.Restore(st, b)
	if err != nil {
		if derr := damagedStoreErr(dir, err); derr != nil {
			return derr
		}
		return err
	}
	log.Info("store recovered", "dir", dir, "sessions", rep.Sessions, "subscriptions", rep.Subscriptions,
		"queued", rep.Queued, "retained", rep.Retained, "inbound_qos2", rep.InboundQoS2, "wills_published", rep.Wills, "sessions_expired", rep.Expired, "took", rep.Took)

	// SIGTERM and Ctrl-C shut down cleanly and SIGHUP reloads from here on,
	// before the first "listening" line: a supervisor may signal the moment
	// it sees the broker listening (or /readyz turn 200), and a signal that
	// arrived before its handler would kill the process outright. During
	// recovery above, the default action still applies: the store is
	// crash-safe, and a long replay stays interruptible.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopHUP := reloadOnHUP(b, log)
	defer stopHUP()
	bridges, err := startBridges(b, cfg.Bridges, adm, log) // bridges.go
	if err != nil {
		return err
	}
	defer bridges.Stop()
	reloadBridges(c, b, bridges)
	m.SetBridges(bridges.Status) // per-bridge families on /metrics
	logAuth(log, &cfg.Sec, policy)
	checkFileLimit(log, cfg.Engine.Limits.MaxConnections)
	served := make(chan error, 4)
	closeListeners, mqttURLs, err := serveListeners(b, &cfg, log, served)
	if err != nil {
		return err
	}
	defer closeListeners()
	wsURLs, closeWS, err := startWebSockets(b, &cfg, m, log, served) // ops.go
	if err != nil {
		return err
	}
	defer closeWS()
	stopSys := func() {}
	if cfg.Ops.SysInterval > 0 {
		stopSys = b.StartSys(cfg.Ops.SysInterval, buildVersion())
	}
	defer stopSys()
	adm.setReady() // recovery is done and every listener accepts
	logSummary(log, &cfg, mqttURLs, wsURLs, adm, st, rep)

	stopCompaction := startCompaction(ctx, b, cfg.CompactInterval)
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-served:
		if err != nil && !errors.Is(err, engine.ErrClosed) && st.Err() == nil {
			log.Error("listener failed; shutting down", "err", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	stopCompaction()
	stopSys()
	bridges.Stop() // before the broker: their sessions close with a DISCONNECT
	if err := b.Shutdown(sctx); err != nil {
		log.Error("shutdown did not finish", "err", err)
	}
	adm.stop()
	if err := st.Close(); err != nil {
		if ferr := st.Err(); ferr != nil {
			return storeFailedError(ferr) // exit non-zero (storeflags.go)
		}
		return fmt.Errorf("closing the store: %w", err)
	}
	log.Info("stopped")
	return nil
}

// writeAllocProfile writes the allocations since the start (pprof "allocs":
// alloc_space, alloc_objects, and what is still in use) to path.
func writeAllocProfile(log *slog.Logger, path string) {
	f, err := os.Create(path)
	if err == nil {
		err = errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
	}
	if err != nil {
		log.Error("--memprofile", "err", err)
	}
}
