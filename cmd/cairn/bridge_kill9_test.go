package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// freeLoopbackPort returns a port nothing listens on right now (for a
// broker that must come back on the same address).
func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// publishAcked publishes payloads "p<i>" for i in [from, from+n) to topic
// at QoS 1, 32 in flight, and returns when every PUBACK arrived.
func publishAcked(t testing.TB, addr, id, topic string, from, n int) {
	t.Helper()
	c := wiretest.Dial(t, addr, wire.V311)
	defer c.Close()
	if ack := c.Connect(t, &wire.Connect{ClientID: id, CleanStart: true}); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", byte(ack.ReasonCode))
	}
	inflight, next := 0, from
	for next < from+n || inflight > 0 {
		for next < from+n && inflight < 32 {
			c.Send(&wire.Publish{QoS: 1, PacketID: uint16(next%60000 + 1), Topic: topic, Payload: []byte("p" + strconv.Itoa(next))})
			next++
			inflight++
		}
		if a, ok := c.Expect(t, 10*time.Second).(*wire.Ack); ok && a.Kind == wire.PUBACK {
			inflight--
		}
	}
	c.Send(&wire.Disconnect{})
}

// drainDistinct connects the persistent session id and collects the
// distinct payloads delivered until want of them arrived or limit passed.
func drainDistinct(t testing.TB, addr, id string, seen map[string]bool, want int, limit time.Duration) {
	t.Helper()
	c := wiretest.Dial(t, addr, wire.V311)
	defer c.Close()
	if ack := c.Connect(t, persistentConnect(id, wire.V311)); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", byte(ack.ReasonCode))
	}
	deadline := time.Now().Add(limit)
	for len(seen) < want && time.Now().Before(deadline) {
		p, err := c.Recv(time.Until(deadline))
		if err != nil {
			break
		}
		if pub, ok := p.(*wire.Publish); ok {
			seen[string(pub.Payload)] = true
			if pub.QoS == 1 {
				c.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: pub.PacketID})
			}
		}
	}
	c.Send(&wire.Disconnect{})
}

// TestBridgeKillNineLosesNothing runs two cairn processes: an edge broker
// bridging k/# to a remote one. Round 1: the remote is down, the edge
// acknowledges n messages (they are queued on disk in the bridge's
// session), `cairn inspect bridges` shows them queued, the edge is killed
// with SIGKILL, the remote comes back, the edge restarts: all n reach the
// remote. Round 2: a larger backlog queued during a second outage, and the
// edge killed while it drains it; after the restart all arrive.
func TestBridgeKillNineLosesNothing(t *testing.T) {
	const n = 3000
	port := freeLoopbackPort(t)
	remoteAddr := "127.0.0.1:" + strconv.Itoa(port)
	remote := startBroker(t, "--listen", remoteAddr)
	if remote.addr != remoteAddr {
		t.Fatalf("remote listens on %s, want %s", remote.addr, remoteAddr)
	}
	subscribePersistent(t, remote.addr, "sink", wire.V311, wire.Subscription{Filter: "edge/#", QoS: 1})
	remote.kill9()

	cfg := filepath.Join(t.TempDir(), "cairn.yaml")
	yaml := fmt.Sprintf(`bridges:
  - name: up
    address: %s
    client-id: edge-1
    reconnect-min: 50ms
    reconnect-max: 500ms
    topics:
      - k/# out 1 "" edge/
`, remoteAddr)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	edge := startBroker(t, "--config", cfg)
	publishAcked(t, edge.addr, "pub", "k/a", 0, n)

	adminAddr, err := os.ReadFile(filepath.Join(edge.dir, adminAddrFile))
	if err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "inspect", "bridges", "--admin", strings.TrimSpace(string(adminAddr)), "--json")
	if !strings.Contains(out, fmt.Sprintf(`"queue_depth":%d`, n)) || strings.Contains(out, `"state":"connected"`) {
		t.Fatalf("inspect bridges while the remote is down: %s", out)
	}
	t.Logf("inspect bridges: %s", strings.TrimSpace(mustCLI(t, "inspect", "bridges", "--admin", strings.TrimSpace(string(adminAddr)))))
	// The same backlog on /metrics (the bridge families of engine/metrics).
	resp, err := http.Get("http://" + strings.TrimSpace(string(adminAddr)) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{fmt.Sprintf(`cairn_bridge_queue_messages{bridge="up"} %d`, n), `cairn_bridge_up{bridge="up"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %q while the remote is down", want)
		}
	}

	edge.kill9()
	remote.restart()
	edge.restart()
	seen := map[string]bool{}
	drainDistinct(t, remote.addr, "sink", seen, n, 30*time.Second)
	if len(seen) != n {
		t.Fatalf("round 1: %d of %d acknowledged messages reached the remote", len(seen), n)
	}

	// Round 2: a larger backlog, and the kill while it drains.
	const n2 = 20000
	remote.kill9()
	publishAcked(t, edge.addr, "pub", "k/b", n, n2)
	adminAddr, err = os.ReadFile(filepath.Join(edge.dir, adminAddrFile))
	if err != nil {
		t.Fatal(err)
	}
	depth := func() int {
		var s struct {
			QueueDepth int `json:"queue_depth"`
		}
		out := mustCLI(t, "inspect", "bridges", "--admin", strings.TrimSpace(string(adminAddr)), "--json")
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		return s.QueueDepth
	}
	remote.restart()
	var at int
	if !waitFor(30*time.Second, func() bool { at = depth(); return at < n2 }) {
		t.Fatalf("the bridge does not drain: queue depth %d", at)
	}
	time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond) // the moment of the kill
	edge.kill9()
	if at == 0 {
		t.Logf("round 2: the backlog drained before the kill (nothing in flight to lose)")
	} else {
		t.Logf("round 2: SIGKILL while draining, %d of %d still queued shortly before", at, n2)
	}
	edge.restart()
	drainDistinct(t, remote.addr, "sink", seen, n+n2, 60*time.Second)
	if len(seen) != n+n2 {
		t.Fatalf("round 2: %d of %d acknowledged messages reached the remote", len(seen), n+n2)
	}
	edge.terminate()
	out = mustCLI(t, "inspect", "bridges", "--data", edge.dir)
	if !strings.Contains(out, "up") || !strings.Contains(out, "stopped") {
		t.Fatalf("inspect bridges --data: %s", out)
	}
	t.Logf("inspect bridges --data (stopped):\n%s", out)
}
