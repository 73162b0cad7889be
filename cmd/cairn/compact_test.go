package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
)

func TestServeConfigMaint(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cairn.yaml")
	yml := `retained-ttl: 24h
retained-ttl-filters:
  "sensors/#": 1h
  sensors/critical/#: never
compact-interval: 30s
event-retention: 2h
event-retention-bytes: 64MiB
queue-limit-messages: 1000
queue-limit-bytes: 10MB
queue-limit-policy: drop-oldest
retained-limit-messages: 5000
retained-limit-bytes: 32MiB
`
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("defaults", func(t *testing.T) {
		cfg, err := runServeConfig(t)
		if err != nil {
			t.Fatal(err)
		}
		m := cfg.Engine.Maint
		if m.RetainedTTL != 0 || len(m.RetainedTTLRules) != 0 || cfg.CompactInterval != time.Minute ||
			m.EventRetention != 24*time.Hour || m.EventRetentionBytes != 512<<20 || m.QueueLimitMessages != 0 ||
			m.QueueLimitBytes != 0 || m.QueueLimitPolicy != engine.QueueReject ||
			m.RetainedLimitMessages != 0 || m.RetainedLimitBytes != 256<<20 {
			t.Fatalf("defaults: %+v, interval %v", m, cfg.CompactInterval)
		}
	})
	t.Run("file", func(t *testing.T) {
		cfg, err := runServeConfig(t, "--config", file)
		if err != nil {
			t.Fatal(err)
		}
		m := cfg.Engine.Maint
		want := []engine.TTLRule{{Filter: "sensors/#", TTL: time.Hour}, {Filter: "sensors/critical/#", TTL: 0}}
		if m.RetainedTTL != 24*time.Hour || len(m.RetainedTTLRules) != 2 || m.RetainedTTLRules[0] != want[0] || m.RetainedTTLRules[1] != want[1] {
			t.Fatalf("TTLs from file: %v %+v", m.RetainedTTL, m.RetainedTTLRules)
		}
		if cfg.CompactInterval != 30*time.Second || m.EventRetention != 2*time.Hour || m.EventRetentionBytes != 64<<20 ||
			m.QueueLimitMessages != 1000 || m.QueueLimitBytes != 10_000_000 || m.QueueLimitPolicy != engine.QueueDropOldest ||
			m.RetainedLimitMessages != 5000 || m.RetainedLimitBytes != 32<<20 {
			t.Fatalf("from file: %+v, interval %v", m, cfg.CompactInterval)
		}
	})
	t.Run("flags replace the file's filters", func(t *testing.T) {
		cfg, err := runServeConfig(t, "--config", file, "--retained-ttl-filter", "a/+=5m", "--retained-ttl", "never", "--compact-interval", "0")
		if err != nil {
			t.Fatal(err)
		}
		m := cfg.Engine.Maint
		if m.RetainedTTL != 0 || len(m.RetainedTTLRules) != 1 || m.RetainedTTLRules[0] != (engine.TTLRule{Filter: "a/+", TTL: 5 * time.Minute}) || cfg.CompactInterval != 0 {
			t.Fatalf("flags: %+v, interval %v", m, cfg.CompactInterval)
		}
	})
}

func TestServeConfigMaintErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("retained-ttl-filters:\n  - sensors/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badTTL := filepath.Join(t.TempDir(), "badttl.yaml")
	if err := os.WriteFile(badTTL, []byte("retained-ttl-filters:\n  a/#: soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--retained-ttl", "-1h"}, "retained-ttl"},
		{[]string{"--retained-ttl", "soon"}, "retained-ttl"},
		{[]string{"--retained-ttl-filter", "a/#/b=1h"}, "a/#/b"},
		{[]string{"--retained-ttl-filter", "nofilter"}, "FILTER=DURATION"},
		{[]string{"--event-retention-bytes", "lots"}, "event-retention-bytes"},
		{[]string{"--queue-limit-bytes", "-5"}, "queue-limit-bytes"},
		{[]string{"--queue-limit-messages", "-1"}, "queue limit"},
		{[]string{"--queue-limit-policy", "drop-newest"}, "drop-newest"},
		{[]string{"--retained-limit-bytes", "much"}, "retained-limit-bytes"},
		{[]string{"--retained-limit-messages", "-1"}, "retained limit"},
		{[]string{"--compact-interval", "-1s"}, "compact-interval"},
		{[]string{"--config", bad}, "must be a map"},
		{[]string{"--config", badTTL}, "a/#"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := runServeConfig(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "512MiB": 512 << 20, "64 KiB": 64 << 10, "10MB": 10_000_000, "3GiB": 3 << 30, "7B": 7} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5GiB", "12XB", "99999999TiB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}

// `cairn compact` on a stopped broker's store expires what came due,
// truncates the log and leaves a verified store.
func TestCompactCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(dir, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour).UnixNano()
	future := time.Now().Add(time.Hour).UnixNano()
	old := time.Now().Add(-48 * time.Hour).UnixNano()
	evs := []*store.Event{
		{Kind: store.EvPublished, Time: old, Msg: &store.Message{Topic: "r/gone", Payload: []byte("x"), Retain: true, RetainUntil: past}},
		{Kind: store.EvPublished, Time: old, Msg: &store.Message{Topic: "r/kept", Payload: []byte("x"), Retain: true, RetainUntil: future}},
		{Kind: store.EvPublished, Time: old, Msg: &store.Message{Topic: "q", Payload: []byte("x"), QoS: 1, ExpiresAt: past},
			Targets: []store.Target{{Client: "c1", QoS: 1}, {Client: "c2", QoS: 1}}},
	}
	done := make(chan error, 1)
	if err := st.Commit(evs, true, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	if err := app.Run([]string{"cairn", "--log-level", "error", "compact", "--data", dir}); err != nil {
		t.Fatalf("compact: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	for _, want := range []string{"retained expired:   1", "queued expired:     2", "events truncated:   3", "store verified"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	st, err = store.Open(dir, store.Options{Logger: slog.New(slog.DiscardHandler), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var topics []string
	_ = st.ForEachRetained(func(m *store.Message) error { topics = append(topics, m.Topic); return nil })
	if len(topics) != 1 || topics[0] != "r/kept" || st.QueueInfo("c1").Count != 0 || st.QueueInfo("c2").Count != 0 {
		t.Fatalf("after compact: retained %q, queues %+v %+v", topics, st.QueueInfo("c1"), st.QueueInfo("c2"))
	}
	// A missing store is an error, not a new empty store.
	if err := newApp().Run([]string{"cairn", "compact", "--data", filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Fatal("compact of a missing store succeeded")
	}
}
