package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// TestServeConfigBridges: the config file's bridges list reaches the
// serve config, with both rule forms, defaults filled in and the other
// keys of the file still read by the flags.
func TestServeConfigBridges(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "cairn.yaml")
	doc := `listen: 127.0.0.1:2001
bridges:
  - name: cloud
    address: mqtt.example.org
    protocol: "5.0"
    client-id: edge-17
    username: edge
    password-file: ` + pw + `
    keepalive: 30s
    window: 32
    reconnect-min: 2s
    reconnect-max: 1m
    topics:
      - sensors/# out 1 "" edge-17/
      - {pattern: cmd/#, direction: in, qos: 2, remote-prefix: edge-17/}
  - name: backup
    address: 10.0.0.2:1884
    topics: ["# both 0"]
`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := runServeConfig(t, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:2001" || len(cfg.Bridges) != 2 {
		t.Fatalf("config: listen %q, %d bridges", cfg.Listen, len(cfg.Bridges))
	}
	c := cfg.Bridges[0]
	want := []bridge.Rule{
		{Pattern: "sensors/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "edge-17/"},
		{Pattern: "cmd/#", Direction: bridge.In, QoS: 2, RemotePrefix: "edge-17/"},
	}
	if c.Name != "cloud" || c.Address != "mqtt.example.org:1883" || c.Protocol != wire.V5 || c.ClientID != "edge-17" ||
		c.Username != "edge" || c.Password != "s3cret" || c.KeepAlive != 30*time.Second || c.Window != 32 ||
		c.ReconnectMin != 2*time.Second || c.ReconnectMax != time.Minute || len(c.Rules) != 2 || c.Rules[0] != want[0] || c.Rules[1] != want[1] {
		t.Fatalf("bridge 0: %+v", c)
	}
	if b := cfg.Bridges[1]; b.Protocol != wire.V311 || b.Rules[0].Direction != bridge.Both || b.Rules[0].QoS != 0 || b.Window != bridge.DefaultWindow {
		t.Fatalf("bridge 1: %+v", b)
	}
}

func TestServeConfigBridgeErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"bridges: {name: x}", "must be a list"},
		{"bridges:\n  - name: x\n    adress: h\n    topics: [a]\n", "adress"},
		{"bridges:\n  - name: x\n    address: h\n    protocol: 6\n    topics: [a]\n", "protocol"},
		{"bridges:\n  - name: x\n    address: h\n", "topics"},
		{"bridges:\n  - name: x\n    address: h\n    topics: [a sideways]\n", "direction"},
		{"bridges:\n  - name: x\n    address: h\n    topics: [{pattern: a, qos: 3}]\n", "qos"},
		{"bridges:\n  - name: x\n    address: h\n    keepalive: soon\n    topics: [a]\n", "line 4: cannot unmarshal !!str `soon` into time.Duration"},
		{"bridges:\n  - {name: x, address: h, topics: [a]}\n  - {name: x, address: h, topics: [a]}\n", "also the name"},
	} {
		file := filepath.Join(t.TempDir(), "cairn.yaml")
		if err := os.WriteFile(file, []byte(tc.doc), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := runServeConfig(t, "--config", file)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %q", tc.doc, err, tc.want)
		}
	}
}

// TestRenderBridges: the table shows state, queue, rates, drops and the
// last error.
func TestRenderBridges(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pinClock(t, at)
	var b strings.Builder
	err := renderBridges(&b, []bridge.Status{{Name: "cloud", Remote: "h:1883", Protocol: "5.0", TLS: true, State: bridge.StateBackoff,
		Since: at.Add(-90 * time.Second), QueueDepth: 1200, QueueBytes: 120000, OutForwarded: 7, OutRate: 1.5, OutDropped: 2, InDropped: 1,
		LastError: "dialing h:1883: refused", LastErrorAt: at.Add(-3 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"cloud", "h:1883 (5.0, TLS)", "waiting", "1m30s", "1200 (117.2 KiB)", "1.5", "dialing h:1883: refused (3s ago)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestServeReloadsBridges: SIGHUP rereads the config file's bridges: a
// changed rule takes effect without a restart, and a file that no longer
// validates changes nothing (the bridge keeps forwarding by the last good
// rules, the log says why).
func TestServeReloadsBridges(t *testing.T) {
	remote := startBroker(t)
	sink := wiretest.Dial(t, remote.addr, wire.V311)
	defer sink.Close()
	if ack := sink.Connect(t, &wire.Connect{ClientID: "sink", CleanStart: true, KeepAlive: 60}); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", byte(ack.ReasonCode))
	}
	if c := subCode(t, sink, 1, "#"); c != 1 {
		t.Fatalf("SUBACK 0x%02X", byte(c))
	}
	cfg := filepath.Join(t.TempDir(), "cairn.yaml")
	writeBridge := func(rule string) {
		doc := "bridges:\n  - name: up\n    address: " + remote.addr +
			"\n    reconnect-min: 50ms\n    reconnect-max: 500ms\n    topics: [\"" + rule + "\"]\n"
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeBridge("a/# out 1")
	edge := startBroker(t, "--config", cfg)
	// arrived publishes one message on each topic through the edge and
	// returns the topics that reached the remote's subscriber: it waits up
	// to 10 s for as many as want names (a restarted bridge may still be
	// connecting), then half a second for any more.
	arrived := func(want string, topics ...string) string {
		t.Helper()
		for _, tp := range topics {
			publishAcked(t, edge.addr, "pub", tp, 0, 1)
		}
		var got []string
		for {
			wait := 10 * time.Second
			if len(got) >= len(strings.Fields(want)) {
				wait = 500 * time.Millisecond
			}
			p, err := sink.Recv(wait)
			if err != nil {
				return strings.Join(got, " ")
			}
			if pub, ok := p.(*wire.Publish); ok {
				got = append(got, pub.Topic)
				sink.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: pub.PacketID})
			}
		}
	}
	if got := arrived("a/1", "a/1", "b/1"); got != "a/1" {
		t.Fatalf("before the reload the remote got %q, want a/1", got)
	}

	writeBridge("b/# out 1")
	hup(t, edge)
	waitLog(t, edge, "bridge restarted with its new config", 1)
	if got := arrived("b/2", "a/2", "b/2"); got != "b/2" {
		t.Fatalf("after the reload the remote got %q, want b/2", got)
	}

	writeBridge("c/# sideways 1")
	hup(t, edge)
	waitLog(t, edge, "reload failed; the previous configuration stays in force where it failed", 1)
	if got := arrived("b/3", "b/3", "c/3"); got != "b/3" {
		t.Fatalf("after a failed reload the remote got %q, want b/3", got)
	}
}
