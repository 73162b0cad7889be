package bridge_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/wire"
)

const mosquittoBin = "/usr/sbin/mosquitto"

// mosquitto is a Debian mosquitto process on a loopback port, with
// persistence (its sessions survive a SIGTERM restart).
type mosquitto struct {
	t    testing.TB
	dir  string
	addr string
	cmd  *exec.Cmd
	out  *strings.Builder
	done chan struct{}
}

func startMosquitto(t testing.TB) *mosquitto {
	t.Helper()
	if _, err := os.Stat(mosquittoBin); err != nil {
		t.Skipf("mosquitto not installed (%v)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	m := &mosquitto{t: t, dir: t.TempDir(), addr: addr}
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nmax_inflight_messages 64\nmax_queued_messages 0\n", port, m.dir)
	if os.Geteuid() == 0 {
		// Started as root, mosquitto drops to user "mosquitto", which
		// cannot write the test's directory.
		conf += "user root\n"
	}
	if err := os.WriteFile(filepath.Join(m.dir, "mosquitto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", m.out)
		}
	})
	return m
}

func (m *mosquitto) start() {
	m.t.Helper()
	m.out = &strings.Builder{}
	m.cmd = exec.Command(mosquittoBin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("mosquitto: %v", err)
	}
	m.done = make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	if !waitFor(10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", m.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		m.t.Fatalf("mosquitto does not listen on %s:\n%s", m.addr, m.out)
	}
}

// stop ends mosquitto with SIGTERM (it saves its sessions).
func (m *mosquitto) stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}

// TestMosquittoRemote bridges Cairn to mosquitto, 3.1.1 (as a bridge,
// level 0x84) and 5.0: messages queued while mosquitto is down all arrive
// when it is back; `in` rules deliver mosquitto's messages locally; a
// `both` rule does not loop.
func TestMosquittoRemote(t *testing.T) {
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		t.Run(v.String(), func(t *testing.T) {
			mq := startMosquitto(t)
			sink := dial(t, mq.addr, "sink", wire.V311, true)
			sink.subscribe(wire.Subscription{Filter: "edge/#", QoS: 1})
			sink.close()
			mq.stop()

			cfg := fastRetry(bridge.Config{Name: "mq", Address: mq.addr, Protocol: v,
				Rules: rules(t, `data/# out 1 "" edge/`, `cmd/# in 1 "" ""`, `chat/# both 1`)})
			local := newNode(t, "", cfg)
			const n = 1000
			pub := dial(t, local.addr, "pub", wire.V311, false)
			pub.publish(n, 1, seqTopic("data/x"), seqPayload)
			if s := local.status("mq"); s.QueueDepth != n {
				t.Fatalf("queue depth %d while mosquitto is down, want %d", s.QueueDepth, n)
			}

			mq.start()
			if !waitFor(20*time.Second, func() bool { return local.status("mq").QueueDepth == 0 }) {
				t.Fatalf("not drained: %+v", local.status("mq"))
			}
			sink = dial(t, mq.addr, "sink", wire.V311, true)
			got := sink.collect(n, 5*time.Second)
			checkInOrder(t, got, n, true)
			sink.close()

			// in: mosquitto → Cairn.
			app := dial(t, local.addr, "app", wire.V5, false)
			app.subscribe(wire.Subscription{Filter: "cmd/#", QoS: 1}, wire.Subscription{Filter: "chat/#", QoS: 1})
			msub := dial(t, mq.addr, "msub", wire.V5, false)
			msub.subscribe(wire.Subscription{Filter: "chat/#", QoS: 1})
			mpub := dial(t, mq.addr, "mpub", wire.V311, false)
			if !waitFor(5*time.Second, func() bool { return local.status("mq").State == bridge.StateConnected }) {
				t.Fatalf("not connected: %+v", local.status("mq"))
			}
			mpub.publish(1, 1, seqTopic("cmd/go"), seqPayload)
			if got := app.collect(1, 5*time.Second); len(got) != 1 || got[0].Topic != "cmd/go" {
				t.Fatalf("in rule: got %d messages", len(got))
			}
			// both: one message each way, each arrives once on each side.
			pub.publish(1, 1, seqTopic("chat/local"), seqPayload)
			mpub.publish(1, 1, seqTopic("chat/remote"), seqPayload)
			lgot := app.collect(10, time.Second)
			rgot := msub.collect(10, time.Second)
			if len(lgot) != 2 || len(rgot) != 2 {
				t.Fatalf("both rule: local subscriber got %d messages, mosquitto's %d; want 2 and 2 (no loop)", len(lgot), len(rgot))
			}
		})
	}
}
