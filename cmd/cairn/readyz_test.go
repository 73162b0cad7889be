package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// TestReadyOnlyAfterRecovery: over a store with many sessions (recovery
// takes a while), /healthz answers while the store is being recovered and
// /readyz says 503; the first 200 from /readyz comes only when every
// session is back (the metrics already count them all) and the MQTT
// listener accepts.
func TestReadyOnlyAfterRecovery(t *testing.T) {
	const sessions = 30000
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < sessions; i += 1000 {
		var evs []*store.Event
		for j := i; j < i+1000; j++ {
			id := fmt.Sprintf("ready-%06d", j)
			evs = append(evs,
				&store.Event{Kind: store.EvSessionOpened, Client: id, Session: &store.Session{ClientID: id, Version: 4, ExpiryInterval: 0xFFFFFFFF}},
				&store.Event{Kind: store.EvSubscribed, Client: id, Filter: "ready/" + id, Sub: &store.Subscription{QoS: 1}})
		}
		if err := st.Commit(evs, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(cairnBinary(t), "serve", "--data", dir, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--listen-ws", "")
	cmd.Env = append(os.Environ(), "CAIRN_LOG_FORMAT=json")
	cmd.SysProcAttr = childProcAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	adminAddr := make(chan string, 1)
	tcpAddr := make(chan string, 1)
	var logLines []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logLines = append(logLines, sc.Text())
			var rec struct{ Msg, Addr, Transport string }
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				continue
			}
			switch {
			case rec.Msg == "admin endpoint listening":
				adminAddr <- rec.Addr
			case rec.Msg == "listening" && rec.Transport == "tcp":
				tcpAddr <- rec.Addr
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("broker log:\n%v", logLines)
		}
	}()

	var admin string
	select {
	case admin = <-adminAddr:
	case <-time.After(30 * time.Second):
		t.Fatal("no admin endpoint within 30s")
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	notReady, healthy := 0, 0
	deadline := time.Now().Add(60 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("/readyz never answered 200")
		}
		code, _ := get("/readyz")
		if code == http.StatusOK {
			break
		}
		if code == http.StatusServiceUnavailable {
			notReady++
			if c, _ := get("/healthz"); c == http.StatusOK {
				healthy++
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Ready: every session is back, and the listener accepts.
	_, metricsText := get("/metrics")
	m := regexp.MustCompile(`(?m)^cairn_sessions\{state="offline"\} (\d+)$`).FindStringSubmatch(metricsText)
	if m == nil {
		t.Fatal("no cairn_sessions in /metrics")
	}
	if n, _ := strconv.Atoi(m[1]); n != sessions {
		t.Fatalf("at the first 200 from /readyz, %d of %d sessions are recovered", n, sessions)
	}
	var addr string
	select {
	case addr = <-tcpAddr:
	case <-time.After(5 * time.Second):
		t.Fatal("ready, but no MQTT listener was logged")
	}
	c, err := dialRaw(t, addr, wire.V311)
	if err != nil {
		t.Fatalf("ready, but the MQTT listener does not accept: %v", err)
	}
	if ack, err := c.connect(&wire.Connect{ClientID: "ready-probe", CleanStart: true}); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("ready, but CONNECT: %v %v", ack, err)
	}
	c.close()
	if notReady == 0 || healthy == 0 {
		t.Fatalf("/readyz answered 503 %d times (with /healthz 200 %d times) during recovery, want both at least once", notReady, healthy)
	}
	t.Logf("/readyz 503 ×%d during recovery of %d sessions, then 200", notReady, sessions)
}
