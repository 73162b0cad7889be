package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
)

// Flags and commands of the compaction task: retained TTLs, queue limits,
// event log retention, `cairn compact`.

const (
	defaultEventRetention      = 24 * time.Hour
	defaultEventRetentionBytes = "512MiB"
	// defaultRetainedLimitBytes bounds the memory of retained messages
	// (they are served from memory): room for several hundred thousand
	// small ones.
	defaultRetainedLimitBytes = "256MiB"
	defaultCompactInterval    = time.Minute
	ttlFiltersKey             = "retained-ttl-filters" // config file only: a map FILTER: DURATION
)

// retentionFlags are shared by serve and compact.
func retentionFlags() []cli.Flag {
	return []cli.Flag{
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "event-retention", Value: defaultEventRetention, Usage: "keep logged events this long (0: no time limit)", EnvVars: []string{"CAIRN_EVENT_RETENTION"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "event-retention-bytes", Value: defaultEventRetentionBytes, Usage: "keep about this much event log on disk, e.g. 512MiB (0: no size limit)", EnvVars: []string{"CAIRN_EVENT_RETENTION_BYTES"}}),
	}
}

// maintFlags are serve's flags for the compaction task and queue limits.
func maintFlags() []cli.Flag {
	return append(retentionFlags(),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "retained-ttl", Value: "never", Usage: "how long retained messages are kept (a duration, or never)", EnvVars: []string{"CAIRN_RETAINED_TTL"}}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "retained-ttl-filter", Usage: "per-filter retained TTL, FILTER=DURATION|never (repeatable; the most specific matching filter wins; replaces the config file's " + ttlFiltersKey + ")", EnvVars: []string{"CAIRN_RETAINED_TTL_FILTER"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "compact-interval", Value: defaultCompactInterval, Usage: "how often the compaction task runs (0: only on demand)", EnvVars: []string{"CAIRN_COMPACT_INTERVAL"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "queue-limit-messages", Value: 0, Usage: "messages a persistent session's queue may hold (0: unlimited)", EnvVars: []string{"CAIRN_QUEUE_LIMIT_MESSAGES"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "queue-limit-bytes", Value: "0", Usage: "payload bytes a persistent session's queue may hold, e.g. 64MiB (0: unlimited)", EnvVars: []string{"CAIRN_QUEUE_LIMIT_BYTES"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "queue-limit-policy", Value: string(engine.QueueReject), Usage: "when a queue is full: reject (refuse the publish) or drop-oldest", EnvVars: []string{"CAIRN_QUEUE_LIMIT_POLICY"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "retained-limit-messages", Value: 0, Usage: "retained messages clients may keep on the broker (0: unlimited)", EnvVars: []string{"CAIRN_RETAINED_LIMIT_MESSAGES"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "retained-limit-bytes", Value: defaultRetainedLimitBytes, Usage: "memory the retained messages may take, e.g. 256MiB, as estimated: records, topics, payloads, properties and their index (0: unlimited)", EnvVars: []string{"CAIRN_RETAINED_LIMIT_BYTES"}}),
	)
}

// loadMaint reads the compaction and queue limit settings of serve.
func loadMaint(c *cli.Context) (engine.MaintOptions, time.Duration, error) {
	var o engine.MaintOptions
	var err error
	if o.RetainedTTL, err = engine.ParseTTL(c.String("retained-ttl")); err != nil {
		return o, 0, fmt.Errorf("retained-ttl: %w", err)
	}
	if c.IsSet("retained-ttl-filter") {
		for _, s := range c.StringSlice("retained-ttl-filter") {
			r, err := engine.ParseTTLRule(s)
			if err != nil {
				return o, 0, fmt.Errorf("retained-ttl-filter: %w", err)
			}
			o.RetainedTTLRules = append(o.RetainedTTLRules, r)
		}
	} else if file := c.String("config"); file != "" {
		if o.RetainedTTLRules, err = ttlRulesFromFile(file); err != nil {
			return o, 0, err
		}
	}
	if o.EventRetention, o.EventRetentionBytes, err = loadRetention(c); err != nil {
		return o, 0, err
	}
	o.QueueLimitMessages = c.Int("queue-limit-messages")
	if o.QueueLimitBytes, err = parseBytes(c.String("queue-limit-bytes")); err != nil {
		return o, 0, fmt.Errorf("queue-limit-bytes: %w", err)
	}
	o.QueueLimitPolicy = engine.QueuePolicy(c.String("queue-limit-policy"))
	o.RetainedLimitMessages = c.Int("retained-limit-messages")
	if o.RetainedLimitBytes, err = parseBytes(c.String("retained-limit-bytes")); err != nil {
		return o, 0, fmt.Errorf("retained-limit-bytes: %w", err)
	}
	if err := o.Check(); err != nil {
		return o, 0, err
	}
	every := c.Duration("compact-interval")
	if every < 0 {
		return o, 0, fmt.Errorf("compact-interval: %v is negative", every)
	}
	return o, every, nil
}

func loadRetention(c *cli.Context) (time.Duration, int64, error) {
	d := c.Duration("event-retention")
	if d < 0 {
		return 0, 0, fmt.Errorf("event-retention: %v is negative", d)
	}
	n, err := parseBytes(c.String("event-retention-bytes"))
	if err != nil {
		return 0, 0, fmt.Errorf("event-retention-bytes: %w", err)
	}
	return d, n, nil
}

// ttlRulesFromFile reads the config file's retained-ttl-filters map, in
// file order (the order does not matter: the most specific filter wins).
func ttlRulesFromFile(file string) ([]engine.TTLRule, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	var doc struct {
		Filters yaml.Node `yaml:"retained-ttl-filters"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	n := &doc.Filters
	if n.Kind == 0 {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config %s line %d: %s must be a map of topic filter to TTL (e.g. \"sensors/#\": 1h)", file, n.Line, ttlFiltersKey)
	}
	var rules []engine.TTLRule
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("config %s line %d: %s entries must be FILTER: DURATION", file, k.Line, ttlFiltersKey)
		}
		d, err := engine.ParseTTL(v.Value)
		if err != nil {
			return nil, fmt.Errorf("config %s line %d: %s %q: %w", file, v.Line, ttlFiltersKey, k.Value, err)
		}
		rules = append(rules, engine.TTLRule{Filter: k.Value, TTL: d})
	}
	return rules, nil
}

// parseBytes parses a size: a number of bytes, or a number with KiB, MiB,
// GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size like 512MiB, 64KB or 1048576", s)
	}
	return n * mult, nil
}

// startCompaction runs the broker's compaction task in the background; the
// returned function stops it and waits for a pass in progress to end (call
// it before closing the store).
func startCompaction(ctx context.Context, b *engine.Broker, every time.Duration) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.RunCompaction(ctx, every)
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

func compactCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML config file (keys are the flag names)", EnvVars: []string{"CAIRN_CONFIG"}},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data", Value: "./cairn-data", Usage: "store directory (of a stopped broker)", EnvVars: []string{"CAIRN_DATA"}}),
		&cli.BoolFlag{Name: "full", Value: true, Usage: "also collect orphan message bodies (reads every queue entry)"},
		&cli.StringFlag{Name: "admin", Usage: "compact a running broker through its admin endpoint (host:port) instead of a stopped store; the broker's own retention settings apply", EnvVars: []string{"CAIRN_ADMIN_ADDR"}},
	}, retentionFlags()...)
	return &cli.Command{
		Name:  "compact",
		Usage: "run the compaction task now, on a stopped broker's store (--data) or a running broker (--admin)",
		Description: "Expires retained and queued messages whose deadline passed, removes orphan bodies (--full),\n" +
			"truncates the event log past its retention window and compacts what was freed, then verifies\n" +
			"the store. A running broker does this itself (--compact-interval) and on demand through its\n" +
			"admin endpoint; this command is for a store no broker has open.",
		Flags: flags,
		Before: func(c *cli.Context) error {
			if c.String("config") == "" {
				return nil
			}
			return altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config"))(c)
		},
		Action: func(c *cli.Context) error {
			if addr := c.String("admin"); addr != "" {
				return compactLive(c, addr)
			}
			return compactOffline(c)
		},
	}
}

// compactLive asks a running broker for a pass (POST /v1/compact).
func compactLive(c *cli.Context, addr string) error {
	var res compactResult
	path := "/v1/compact"
	if c.Bool("full") {
		path += "?full=true"
	}
	if err := newAdminClient(addr).post(c.Context, path, &res); err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "compacted the running broker at %s in %.1f ms (longest pause of its commits %.2f ms)\n", addr, res.TookMS, res.MaxPauseMS)
	fmt.Fprintf(w, "  retained expired:   %d\n  queued expired:     %d\n  bodies collected:   %d\n  events truncated:   %d (log starts at seq %d)\n  pebble compactions: %d\n  disk: %s -> %s\n",
		res.RetainedExpired, res.QueuedExpired, res.BodiesCollected, res.EventsTruncated, res.LogFirstSeq, res.Compactions,
		humanBytes(res.DiskBefore), humanBytes(res.DiskAfter))
	return nil
}

func compactOffline(c *cli.Context) error {
	log, err := newLogger(c, os.Stderr)
	if err != nil {
		return err
	}
	retention, retentionBytes, err := loadRetention(c)
	if err != nil {
		return err
	}
	dir := c.String("data")
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no store in %s: %w", dir, err)
	}
	st, err := store.Open(dir, store.Options{Logger: log, MustExist: true})
	if err != nil {
		return explainOpenErr(c, dir, err)
	}
	rep, err := st.Compact(c.Context, store.CompactOptions{
		EventRetention:      retention,
		EventRetentionBytes: retentionBytes,
		Full:                c.Bool("full"),
		CompactThreshold:    1,
	})
	verr := st.Verify()
	cerr := st.Close()
	if err != nil {
		return err
	}
	printCompactReport(c.App.Writer, dir, rep)
	if verr != nil {
		return fmt.Errorf("store check after compaction: %w", verr)
	}
	fmt.Fprintln(c.App.Writer, "store verified: no problems")
	return cerr
}

func printCompactReport(w io.Writer, dir string, r store.CompactReport) {
	fmt.Fprintf(w, "compacted %s in %v\n", dir, r.Took.Round(time.Millisecond))
	fmt.Fprintf(w, "  retained expired:   %d\n", r.RetainedExpired)
	fmt.Fprintf(w, "  queued expired:     %d (left in place: %d)\n", r.QueuedExpired, r.QueuedSkipped)
	fmt.Fprintf(w, "  orphan bodies:      %d\n", r.BodiesCollected)
	fmt.Fprintf(w, "  events truncated:   %d (the log starts at seq %d)\n", r.EventsTruncated, r.LogFirstSeq)
	fmt.Fprintf(w, "  pebble compactions: %d (%v)\n", r.Compactions, r.CompactTime.Round(time.Millisecond))
	fmt.Fprintf(w, "  commits:            %d, longest held the store %v\n", len(r.Pauses), r.MaxPause)
	fmt.Fprintf(w, "  disk:               %s -> %s\n", humanBytes(r.DiskBefore), humanBytes(r.DiskAfter))
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
