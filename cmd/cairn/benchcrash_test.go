package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/bench"
)

// The short run of `cairn bench crash` that CI does: a real `cairn serve`
// child SIGKILLed and restarted three times under persistent QoS 1/2 and
// retained load; nothing acknowledged may be lost and no QoS 2 message
// delivered twice. (The long run, ≥ 100 kills: cairn bench crash --cairn
// --kills 100.)
func TestBenchCrashKillsCairn(t *testing.T) {
	cmd := exec.Command(cairnBinary(t), "bench", "crash", "--cairn", "--kills", "3", "--kill-interval", "200ms", "--clients", "3", "--json", "--quiet")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	var out []byte
	go func() {
		var err error
		out, err = cmd.Output()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("cairn bench crash: %v\n%s\n%s", err, out, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("cairn bench crash did not finish within 2 minutes")
	}
	var r bench.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	t.Log(r.Summary)
	metric := func(k string) float64 {
		m, ok := r.Metric(k)
		if !ok {
			t.Fatalf("no metric %s in %s", k, out)
		}
		return m.Value
	}
	if metric("kills") != 3 || metric("lost") != 0 || metric("qos2_duplicates") != 0 || metric("retained_stale") != 0 ||
		r.Counts.Acked == 0 || r.Counts.Errors != 0 {
		t.Fatalf("crash run: %s\nerrors: %v", r.Summary, r.ErrorSamples)
	}
	if strings.Contains(r.Summary, "\n") || !strings.HasSuffix(r.Summary, ": PASS") {
		t.Fatalf("summary is not one passing line: %q", r.Summary)
	}
}
