package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cairn serve opens the admin endpoint (flag, CAIRN_ADMIN, config key),
// answers health, readiness, /metrics, the inspect endpoints and the
// actions on one listener, records its address for the tools, and
// removes the record when it stops.
func TestServeAdminEndpoint(t *testing.T) {
	cfg, err := runServeConfig(t)
	if err != nil || cfg.Admin != "127.0.0.1:8081" {
		t.Fatalf("default admin: %q %v", cfg.Admin, err)
	}
	t.Setenv("CAIRN_ADMIN", "127.0.0.1:9999")
	if cfg, _ := runServeConfig(t); cfg.Admin != "127.0.0.1:9999" {
		t.Fatalf("CAIRN_ADMIN: %q", cfg.Admin)
	}
	file := filepath.Join(t.TempDir(), "cairn.yaml")
	if err := os.WriteFile(file, []byte("admin: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("CAIRN_ADMIN")
	if cfg, _ := runServeConfig(t, "--config", file); cfg.Admin != "" {
		t.Fatalf("admin from the config file: %q", cfg.Admin)
	}

	b := startBroker(t)
	rec := b.logs.lastJSON(1, "admin endpoint listening")
	addr, _ := rec["addr"].(string)
	if addr == "" {
		t.Fatalf("no admin endpoint in the log:\n%s", b.logs.tail(logTail))
	}
	// /readyz turns 200 once every listener accepts, a moment after the MQTT
	// listener's "listening" line that startBroker waits for.
	ready := func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	if !waitFor(5*time.Second, ready) {
		t.Fatal("/readyz did not turn 200")
	}
	// One listener serves health, readiness, the metrics, the endpoints
	// cairn inspect reads and the actions.
	for path, want := range map[string]string{
		"/healthz": "", "/readyz": "",
		"/metrics":  "cairn_build_info{", // Prometheus text format (serve.go)
		"/v1/stats": "", "/v1/sessions": "", "/v1/retained": "",
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, err := http.Post("http://"+addr+"/v1/compact", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /v1/compact: %d", resp.StatusCode)
	}
	if got, ok := readAdminAddr(b.dir); !ok || got != addr {
		t.Fatalf("recorded admin address %q, listening on %s", got, addr)
	}
	_, err = runCLI(t, "inspect", "sessions", "--data", b.dir)
	if err == nil || !strings.Contains(err.Error(), "cairn inspect sessions --admin "+addr) {
		t.Fatalf("inspect of the running broker's store: %v", err)
	}
	if out := mustCLI(t, "inspect", "sessions", "--admin", addr); !strings.Contains(out, "0 sessions") {
		t.Fatalf("inspect through the endpoint: %s", out)
	}
	if code, _ := b.terminate(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if _, ok := readAdminAddr(b.dir); ok {
		t.Fatal("the admin address is still recorded after the broker stopped")
	}
	if out := mustCLI(t, "inspect", "sessions", "--data", b.dir); !strings.Contains(out, "0 sessions") {
		t.Fatalf("inspect of the stopped store: %s", out)
	}
}

// Other parts of Cairn add endpoints to the running admin server.
func TestAdminEndpointHandle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	lb := startLive(t, dir, nil)
	lb.adm.handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "cairn_up 1\n")
	}))
	resp, err := http.Get("http://" + lb.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "cairn_up 1\n" {
		t.Fatalf("/metrics: %d %q", resp.StatusCode, body)
	}
	var disabled *adminEndpoint
	disabled.handle("GET /x", http.NotFoundHandler()) // a disabled endpoint ignores it
}
