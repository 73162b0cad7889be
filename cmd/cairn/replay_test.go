package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

var replayOps = flag.Int("cairn.replay-ops", 4000, "operations of TestReplayVerifyRandomWorkload's workload")

// randomWorkload drives a live broker with a seeded mix of everything that
// writes events: persistent and clean sessions (3.1.1 through paho, 5.0
// raw), subscriptions and unsubscriptions at every QoS, QoS 0/1/2 publishes
// (some retained, some clearing a retained message, some with a message
// expiry), subscribers that go away for a while so that queues build up and
// drain, clean disconnects and dropped connections whose wills fire.
type randomWorkload struct {
	t      *testing.T
	rng    *rand.Rand
	addr   string
	paho   map[string]paho.Client
	raw    map[string]*wiretest.Conn
	pid    uint16
	counts map[string]int
}

var (
	wlClients = []string{"w-a", "w-b", "w-c", "w-d", "w-e", "w-f"}
	wlTopics  = []string{"t/1", "t/2", "t/x/1", "t/x/2", "r/1", "r/2"}
	wlFilters = []string{"t/#", "t/+", "t/x/+", "r/#", "#", "t/1"}
)

func (w *randomWorkload) nextPID() uint16 {
	w.pid = w.pid%60000 + 1
	return w.pid
}

func (w *randomWorkload) step() {
	r := w.rng
	id := wlClients[r.IntN(len(wlClients))]
	switch x := r.IntN(100); {
	case x < 12: // (re)connect a paho client, persistent or clean
		if w.paho[id] != nil || w.raw[id] != nil {
			return
		}
		c, _ := pahoConnect(w.t, w.addr, id, r.IntN(3) == 0, func(paho.Message) {})
		w.paho[id] = c
		w.counts["connect"]++
	case x < 16: // a raw 5.0 client with a will, to be dropped later
		if w.paho[id] != nil || w.raw[id] != nil {
			return
		}
		c := wiretest.Dial(w.t, w.addr, wire.V5)
		p := &wire.Connect{ClientID: id, Version: wire.V5, Props: &wire.Properties{SessionExpiry: u32p(uint32(r.IntN(2)) * 3600)},
			Will: &wire.Will{Topic: "r/will/" + id, Payload: []byte("bye " + id), QoS: byte(r.IntN(3)), Retain: r.IntN(2) == 0}}
		if ack := c.Connect(w.t, p); ack.ReasonCode != 0 {
			w.t.Fatalf("%s: CONNACK 0x%02x", id, byte(ack.ReasonCode))
		}
		w.raw[id] = c
		w.counts["connect-v5"]++
	case x < 30:
		if c := w.paho[id]; c != nil {
			f := wlFilters[r.IntN(len(wlFilters))]
			wait(w.t, c.Subscribe(f, byte(r.IntN(3)), nil), "subscribe")
			w.counts["subscribe"]++
		}
	case x < 35:
		if c := w.paho[id]; c != nil {
			wait(w.t, c.Unsubscribe(wlFilters[r.IntN(len(wlFilters))]), "unsubscribe")
			w.counts["unsubscribe"]++
		}
	case x < 80:
		c := w.paho[id]
		if c == nil {
			return
		}
		topic := wlTopics[r.IntN(len(wlTopics))]
		retain := strings.HasPrefix(topic, "r/") && r.IntN(2) == 0
		payload := fmt.Sprintf("%s-%d", id, r.IntN(1e6))
		if retain && r.IntN(4) == 0 {
			payload = "" // clears the retained message
		}
		wait(w.t, c.Publish(topic, byte(r.IntN(3)), retain, payload), "publish")
		w.counts["publish"]++
	case x < 86: // a 5.0 publish with a message expiry, retained or not
		c := w.raw[id]
		if c == nil {
			return
		}
		pid := w.nextPID()
		c.Send(&wire.Publish{Topic: wlTopics[r.IntN(len(wlTopics))], QoS: 1, PacketID: pid, Retain: r.IntN(2) == 0,
			Payload: []byte("exp"), Props: &wire.Properties{MessageExpiry: u32p(uint32(60 + r.IntN(600)))}})
		for {
			p := c.Expect(w.t, ioTimeout)
			if a, ok := p.(*wire.Ack); ok && a.PacketID == pid {
				break
			}
		}
		w.counts["publish-v5"]++
	case x < 94:
		if c := w.paho[id]; c != nil {
			c.Disconnect(50)
			delete(w.paho, id)
			w.counts["disconnect"]++
		}
	default: // drop the connection without DISCONNECT: the will fires
		if c := w.raw[id]; c != nil {
			c.Close()
			delete(w.raw, id)
			w.counts["dropped"]++
		}
	}
}

func wait(t *testing.T, tok paho.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(2 * ioTimeout) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// replay --verify on a store produced by a long randomized workload through
// the real broker reports no differences: live (on a checkpoint taken
// while clients are connected and messages in flight) and offline after a
// graceful stop; and replay --into rebuilds a store that inspects the same.
func TestReplayVerifyRandomWorkload(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	dir := filepath.Join(t.TempDir(), "data")
	lb := startLive(t, dir, nil)
	w := &randomWorkload{t: t, rng: rand.New(rand.NewPCG(seed, 7)), addr: lb.addr,
		paho: map[string]paho.Client{}, raw: map[string]*wiretest.Conn{}, counts: map[string]int{}}
	for range *replayOps {
		w.step()
	}
	t.Logf("workload: %v, last seq %d", w.counts, lb.st.LastSeq())
	if lb.st.LastSeq() < uint64(*replayOps)/3 {
		t.Fatalf("the workload wrote only %d events", lb.st.LastSeq())
	}

	out, err := runCLI(t, "replay", "--verify", "--admin", lb.admin)
	if err != nil || !strings.Contains(out, "no differences") {
		t.Fatalf("replay --verify (live): %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))

	for _, c := range w.paho {
		c.Disconnect(50)
	}
	lb.stop()
	out, err = runCLI(t, "replay", "--verify", "--data", dir)
	if err != nil || !strings.Contains(out, "no differences") {
		t.Fatalf("replay --verify (offline): %v\n%s", err, out)
	}
	if out, err := runCLI(t, "recover", "--check", "--data", dir); err != nil {
		t.Fatalf("recover --check: %v\n%s", err, out)
	}
	into := filepath.Join(t.TempDir(), "rebuilt")
	mustCLI(t, "replay", "--into", into, "--data", dir)
	for _, args := range [][]string{{"inspect", "sessions", "--json"}, {"inspect", "retained", "--json"}, {"inspect", "queue", "w-a", "--limit", "0", "--json"}} {
		// The same output, or the same error (w-a's session may have ended).
		rebuilt, rerr := runCLI(t, append(args, "--data", into)...)
		orig, oerr := runCLI(t, append(args, "--data", dir)...)
		if fmt.Sprint(rerr) != strings.ReplaceAll(fmt.Sprint(oerr), dir, into) {
			t.Fatalf("%s: rebuilt %v, original %v", strings.Join(args, " "), rerr, oerr)
		}
		sameText(t, strings.Join(args, " ")+" (rebuilt vs original)", rebuilt, orig)
	}

	// A projection that no longer matches the log is reported, with both
	// values.
	rawDB(t, dir, func(db *pebble.DB) {
		_ = db.Set([]byte("r/r/forged"), []byte{0x81, 0xa1, 't', 0xa8, 'r', '/', 'f', 'o', 'r', 'g', 'e', 'd'}, pebble.Sync)
	})
	out, err = runCLI(t, "replay", "--verify", "--data", dir)
	if err == nil || !strings.Contains(squeeze(out), `r/r/forged extra {"Topic":"r/forged"`) || !strings.Contains(err.Error(), "differ from the event log in 1 keys") {
		t.Fatalf("replay --verify of a store with a forged retained message: %v\n%s", err, out)
	}
}

// replay --into --to stops at a seq: the rebuilt store is the state as of
// that event.
func TestReplayIntoUpTo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	lb := startLive(t, dir, nil)
	s := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "s", Version: wire.V311})
	s.subscribe(wire.Subscription{Filter: "x", QoS: 1})
	s.disconnect()
	p := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "p", Version: wire.V311, CleanStart: true})
	for i := range 5 {
		p.publish(&wire.Publish{Topic: "x", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{byte('a' + i)}})
	}
	lb.stop()
	// 1 opened, 2 subscribed, 3 closed, 4..8 the publishes.
	into := filepath.Join(t.TempDir(), "at6")
	out := mustCLI(t, "replay", "--into", into, "--to", "6", "--data", dir)
	if !strings.Contains(out, "replayed 6 events") {
		t.Fatalf("replay --to 6: %s", out)
	}
	q := mustCLI(t, "inspect", "queue", "s", "--data", into)
	if !strings.Contains(q, "3 messages") || strings.Contains(q, " d\n") {
		t.Fatalf("queue as of seq 6:\n%s", q)
	}
	if _, err := runCLI(t, "replay", "--into", into, "--data", dir); err == nil {
		t.Fatal("replay --into an existing directory succeeded")
	}
	if _, err := runCLI(t, "replay", "--verify", "--to", "3", "--data", dir); err == nil {
		t.Fatal("replay --verify --to accepted")
	}
}
