package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestStartupSummary: cairn serve logs one "cairn ready" line, after every
// listener accepts, that names its listeners (MQTT, WebSocket, admin), its
// store and its limits as configured.
func TestStartupSummary(t *testing.T) {
	b := startBroker(t, "--max-connections", "77", "--min-free-space", "1GiB", "--queue-limit-messages", "5",
		"--max-inflight", "9", "--sys-interval", "2s", "--publish-rate", "20")
	waitLog(t, b, "cairn ready", 1)
	rec := b.logs.lastJSON(1, "cairn ready")
	group := func(name string) map[string]any {
		g, _ := rec[name].(map[string]any)
		if g == nil {
			t.Fatalf("no %s group in the summary: %v", name, rec)
		}
		return g
	}
	ls, st, lim, auth := group("listeners"), group("store"), group("limits"), group("auth")
	admin := b.adminAddr(t)
	want := map[string]string{
		"listeners.mqtt":           "mqtt://" + b.addr,
		"listeners.ws":             "ws://" + b.wsAddr(t) + "/mqtt",
		"store.dir":                b.dir,
		"store.sessions":           "0",
		"limits.max_connections":   "77",
		"limits.max_inflight":      "9",
		"limits.min_free_space":    fmt.Sprint(1 << 30),
		"limits.publish_rate":      "20/s",
		"limits.max_subscriptions": "1000",
		"auth.password_file":       "none",
		"auth.allow_anonymous":     "false",
		"sys":                      "every 2s",
	}
	get := map[string]map[string]any{"listeners": ls, "store": st, "limits": lim, "auth": auth}
	for k, v := range want {
		g, f, ok := strings.Cut(k, ".")
		var got any
		if ok {
			got = get[g][f]
		} else {
			got = rec[k]
		}
		if fmt.Sprint(got) != v {
			t.Errorf("summary %s = %v, want %s", k, got, v)
		}
	}
	if a := fmt.Sprint(ls["admin"]); !strings.HasPrefix(a, "http://"+admin+" ") || !strings.Contains(a, "/metrics") {
		t.Errorf("summary admin = %s", a)
	}
	if q := fmt.Sprint(lim["queue_limit"]); !strings.HasPrefix(q, "5 messages") {
		t.Errorf("summary queue_limit = %s", q)
	}
	if rec["version"] == nil || st["disk_bytes"] == nil {
		t.Errorf("summary lacks the version or the store size: %v", rec)
	}
}
