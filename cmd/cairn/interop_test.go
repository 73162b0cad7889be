package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// mosquittoVersions are the -V values of the mosquitto clients, with the
// short names used in topics and client ids.
var mosquittoVersions = []struct{ flag, short string }{
	{"mqttv31", "v31"},
	{"mqttv311", "v311"},
	{"mqttv5", "v5"},
}

const mosqWait = 20 // seconds: mosquitto_sub -W, a bound on every subscriber run

// TestMosquittoClientsInterop checks the broker binary against the
// mosquitto_pub / mosquitto_sub command-line clients (Debian
// mosquitto-clients) in MQTT 3.1, 3.1.1 and 5.0:
//   - mosquitto_sub (-q 1 and -q 2) receives what mosquitto_pub publishes at
//     QoS 0, 1 and 2, at QoS min(published, subscribed), in order, also
//     across protocol versions;
//   - a retained message (-r) reaches a later mosquitto_sub, flagged retained;
//   - a persistent mosquitto_sub (-c -i id) receives the messages queued
//     while it was away;
//   - and the same after the broker was killed with SIGKILL in between.
func TestMosquittoClientsInterop(t *testing.T) {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			missingTool(t, "%s not found in PATH (install the Debian package mosquitto-clients; .ci/run does): %v", tool, err)
		}
	}
	if _, err := exec.LookPath("stdbuf"); err != nil {
		missingTool(t, "stdbuf (GNU coreutils) not found in PATH; it is needed to see mosquitto_sub's SUBACK line: %v", err)
	}
	b := startBroker(t)

	for vi, sv := range mosquittoVersions {
		for _, subQoS := range []int{1, 2} {
			for pubQoS := 0; pubQoS <= 2; pubQoS++ {
				pv := mosquittoVersions[(vi+pubQoS)%len(mosquittoVersions)] // publishers of every version
				name := fmt.Sprintf("sub-%s-q%d/pub-%s-q%d", sv.short, subQoS, pv.short, pubQoS)
				t.Run(name, func(t *testing.T) {
					topic := fmt.Sprintf("interop/%s/q%d/from-%s-q%d", sv.short, subQoS, pv.short, pubQoS)
					payloads := []string{"first message", "second", fmt.Sprintf("third of %s", name)}
					sub := startMosquittoSub(t, b.addr, "-V", sv.flag, "-q", strconv.Itoa(subQoS), "-t", topic, "-C", strconv.Itoa(len(payloads)))
					for _, p := range payloads {
						mosquittoPub(t, b.addr, "-V", pv.flag, "-q", strconv.Itoa(pubQoS), "-t", topic, "-m", p)
					}
					got := sub.wait(t)
					checkMosq(t, got, topic, payloads, min(pubQoS, subQoS), false)
				})
			}
		}

		t.Run("retained-"+sv.short, func(t *testing.T) {
			topic := "interop/retained/" + sv.short
			mosquittoPub(t, b.addr, "-V", sv.flag, "-q", "1", "-r", "-t", topic, "-m", "old value")
			mosquittoPub(t, b.addr, "-V", sv.flag, "-q", "1", "-r", "-t", topic, "-m", "kept "+sv.short)
			sub := startMosquittoSub(t, b.addr, "-V", sv.flag, "-q", "1", "-t", topic, "-C", "1")
			checkMosq(t, sub.wait(t), topic, []string{"kept " + sv.short}, 1, true)
		})

		t.Run("persistent-"+sv.short, func(t *testing.T) {
			topic := "interop/persistent/" + sv.short
			id := "cairn-persist-" + sv.short // ≤ 23 characters for 3.1
			session := []string{"-V", sv.flag, "-c", "-i", id, "-q", "1", "-t", topic}
			if sv.flag == "mqttv5" {
				session = append(session, "-x", "3600")
			}
			startMosquittoSub(t, b.addr, append(session, "-E")...).wait(t) // subscribe, then go away
			payloads := []string{"queued 1", "queued 2", "queued 3 (QoS 2)"}
			mosquittoPub(t, b.addr, "-V", sv.flag, "-q", "1", "-t", topic, "-m", payloads[0])
			mosquittoPub(t, b.addr, "-V", sv.flag, "-q", "1", "-t", topic, "-m", payloads[1])
			mosquittoPub(t, b.addr, "-V", sv.flag, "-q", "2", "-t", topic, "-m", payloads[2])
			sub := startMosquittoSub(t, b.addr, append(session, "-C", strconv.Itoa(len(payloads)))...)
			checkMosq(t, sub.wait(t), topic, payloads, 1, false)
		})
	}

	// $SYS: the broker's values are retained; mosquitto_sub gets them at
	// once, and "#" does not match them.
	t.Run("sys", func(t *testing.T) {
		sub := startMosquittoSub(t, b.addr, "-V", "mqttv311", "-t", "$SYS/broker/version", "-t", "$SYS/broker/clients/connected", "-C", "2")
		got := sub.wait(t)
		seen := map[string]mosqMsg{}
		for _, m := range got {
			seen[m.topic] = m
		}
		if v := seen["$SYS/broker/version"]; !v.retain || !strings.HasPrefix(v.payload, "cairn ") {
			t.Errorf("$SYS/broker/version: %+v, want a retained \"cairn VERSION\"", v)
		}
		if c := seen["$SYS/broker/clients/connected"]; !c.retain {
			t.Errorf("$SYS/broker/clients/connected: %+v, want it retained", c)
		}
		// "#" gets a retained message but no $SYS topic.
		mosquittoPub(t, b.addr, "-V", "mqttv311", "-q", "1", "-r", "-t", "interop/sys-control", "-m", "visible to #")
		all := startMosquittoSub(t, b.addr, "-V", "mqttv5", "-t", "#", "-W", "2") // -W ends it after 2 s
		select {
		case <-all.exited:
		case <-time.After(10 * time.Second):
			t.Fatal("mosquitto_sub -W 2 did not exit")
		}
		all.mu.Lock()
		defer all.mu.Unlock()
		if len(all.msgs) == 0 {
			t.Fatalf("\"#\" received nothing (want the retained interop/sys-control)")
		}
		for _, m := range all.msgs {
			if strings.HasPrefix(m.topic, "$") {
				t.Errorf("\"#\" matched %s", m.topic)
			}
		}
	})

	// Last: it restarts the broker.
	t.Run("persistent-across-kill-9", func(t *testing.T) {
		topic := "interop/kill9"
		session := []string{"-V", "mqttv311", "-c", "-i", "cairn-kill9", "-q", "2", "-t", topic}
		startMosquittoSub(t, b.addr, append(session, "-E")...).wait(t)
		payloads := []string{"before the crash 1", "before the crash 2"}
		for _, p := range payloads {
			mosquittoPub(t, b.addr, "-V", "mqttv311", "-q", "2", "-t", topic, "-m", p) // exits 0 once acknowledged
		}
		mosquittoPub(t, b.addr, "-V", "mqttv311", "-q", "1", "-r", "-t", topic+"/retained", "-m", "retained before the crash")
		b.kill9()
		b.restart()
		sub := startMosquittoSub(t, b.addr, append(session, "-C", strconv.Itoa(len(payloads)))...)
		checkMosq(t, sub.wait(t), topic, payloads, 2, false)
		sub = startMosquittoSub(t, b.addr, "-V", "mqttv5", "-q", "1", "-t", topic+"/retained", "-C", "1")
		checkMosq(t, sub.wait(t), topic+"/retained", []string{"retained before the crash"}, 1, true)
	})
}

// mosqMsg is one message printed by mosquitto_sub -F 'MSG %t|%r|%q|%p'.
type mosqMsg struct {
	topic   string
	retain  bool
	qos     int
	payload string
}

// checkMosq compares what mosquitto_sub printed with the payloads expected,
// in order.
func checkMosq(t *testing.T, got []mosqMsg, topic string, payloads []string, qos int, retain bool) {
	t.Helper()
	var gotPayloads []string
	for _, m := range got {
		gotPayloads = append(gotPayloads, m.payload)
		if m.topic != topic || m.qos != qos || m.retain != retain {
			t.Errorf("received %+v, want topic %q, QoS %d, retain %v", m, topic, qos, retain)
		}
	}
	if !slices.Equal(gotPayloads, payloads) {
		t.Errorf("mosquitto_sub received %q, want %q", gotPayloads, payloads)
	}
}

// mosquittoPub runs mosquitto_pub against addr; it must exit 0 (for QoS 1/2
// that is after the broker acknowledged).
func mosquittoPub(t *testing.T, addr string, args ...string) {
	t.Helper()
	host, port := splitAddr(t, addr)
	cmd := exec.Command("mosquitto_pub", append([]string{"-h", host, "-p", port}, args...)...)
	out, err := runWithTimeout(cmd, 20*time.Second)
	if err != nil {
		t.Fatalf("mosquitto_pub %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// mosqSub is a running mosquitto_sub.
type mosqSub struct {
	args       []string
	cmd        *exec.Cmd
	subscribed chan struct{}
	exited     chan struct{}
	err        error

	mu   sync.Mutex
	out  bytes.Buffer
	msgs []mosqMsg
}

// startMosquittoSub starts mosquitto_sub against addr with -d (to see the
// SUBACK) and waits until its subscription is acknowledged (or it is done).
func startMosquittoSub(t *testing.T, addr string, args ...string) *mosqSub {
	t.Helper()
	host, port := splitAddr(t, addr)
	full := append([]string{"-h", host, "-p", port, "-d", "-W", strconv.Itoa(mosqWait), "-F", "MSG %t|%r|%q|%p"}, args...)
	s := &mosqSub{args: args, subscribed: make(chan struct{}), exited: make(chan struct{})}
	// mosquitto_sub flushes stdout after each message but not after its debug
	// lines: stdbuf makes the SUBACK line visible when it happens.
	s.cmd = exec.Command("stdbuf", append([]string{"-oL", "mosquitto_sub"}, full...)...)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.out}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto_sub: %v", err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
	go func() {
		var once sync.Once
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.out.WriteString(line + "\n")
			if rest, ok := strings.CutPrefix(line, "MSG "); ok {
				s.msgs = append(s.msgs, parseMosq(rest))
			}
			s.mu.Unlock()
			if strings.Contains(line, "received SUBACK") {
				once.Do(func() { close(s.subscribed) })
			}
		}
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	select {
	case <-s.subscribed:
	case <-s.exited: // done already (a resumed session's queue, say): wait checks how
	case <-time.After(10 * time.Second):
		t.Fatalf("mosquitto_sub %s: no SUBACK within 10s\n%s", strings.Join(args, " "), s.output())
	}
	return s
}

// wait waits for mosquitto_sub to exit (after -C messages, or -E) with
// status 0 and returns the messages it printed.
func (s *mosqSub) wait(t *testing.T) []mosqMsg {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(mosqWait*time.Second + 5*time.Second):
		t.Fatalf("mosquitto_sub %s still running\n%s", strings.Join(s.args, " "), s.output())
	}
	if s.err != nil {
		t.Fatalf("mosquitto_sub %s: %v (exit status 27 is its -W timeout: messages missing)\n%s", strings.Join(s.args, " "), s.err, s.output())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

func (s *mosqSub) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func parseMosq(s string) mosqMsg {
	parts := strings.SplitN(s, "|", 4)
	for len(parts) < 4 {
		parts = append(parts, "")
	}
	qos, _ := strconv.Atoi(parts[2])
	return mosqMsg{topic: parts[0], retain: parts[1] == "1", qos: qos, payload: parts[3]}
}

func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("broker address %q: %v", addr, err)
	}
	return host, port
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
