package main

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

const (
	graceQueued   = 200 // per QoS, published while the subscriber is away
	graceSub      = "grace-sub"
	graceExitWait = 5 * time.Second // SIGTERM → exit, at most
	// livePatience is how long the publishers connected during the shutdown
	// wait for a packet before they give up and close their end: longer than
	// graceExitWait, so that a broker waiting for its clients to hang up
	// shows.
	livePatience = 12 * time.Second
	liveAcks     = 200 // acknowledgements to the live publishers before SIGTERM
	graceCycles  = 2   // SIGTERM under load, restart
	floodBefore  = 20000
	floodLimit   = 25 * time.Second // longer than the broker's 15 s shutdown timeout
)

// TestGracefulShutdownKeepsQueuedMessages: SIGTERM while clients are
// connected — an idle 5.0 client and pipelining publishers — makes the broker
// tell the 5.0 client it is shutting down (DISCONNECT 0x8B) and exit 0 within
// a few seconds (three times, restarting in between); after the last restart,
// a persistent paho subscriber (QoS 2)
// resumes its session and receives every message queued while it was away
// (exactly once, in order) and every message acknowledged to the publishers
// that were cut off by the shutdown.
func TestGracefulShutdownKeepsQueuedMessages(t *testing.T) {
	b := startBroker(t)

	got := &pahoInbox{seen: map[string]int{}}
	sub, _ := pahoConnect(t, b.addr, graceSub, false, got.add)
	for _, filter := range []string{"grace/#", "k/1/#", "k/2/#"} {
		if tok := sub.Subscribe(filter, 2, nil); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", filter, tok.Error())
		}
	}
	sub.Disconnect(250)

	// Queued while the subscriber is away: paho publishing QoS 1 and 2 with
	// everything in flight at once.
	pub, _ := pahoConnect(t, b.addr, "grace-pub", true, nil)
	var want1, want2 []string
	var toks []paho.Token
	for i := range graceQueued {
		want1 = append(want1, fmt.Sprintf("queued-q1-%03d", i))
		want2 = append(want2, fmt.Sprintf("queued-q2-%03d", i))
		toks = append(toks, pub.Publish("grace/q1", 1, false, want1[i]), pub.Publish("grace/q2", 2, false, want2[i]))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("paho publish %d of %d: not acknowledged: %v", i, len(toks), tok.Error())
		}
	}
	pub.Disconnect(250)

	// Connected during each shutdown: an idle 5.0 client and publishers with
	// messages in flight.
	l := newKillLedger()
	for cycle := range graceCycles {
		if cycle > 0 {
			b.restart()
		}
		idle := wiretest.Dial(t, b.addr, wire.V5)
		idle.Connect(t, &wire.Connect{ClientID: "grace-idle", CleanStart: true})
		busy := make(chan struct{})
		var acks atomic.Int64
		var wg sync.WaitGroup
		ends := make([]pubEnd, 4)
		for g := range ends {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ends[g] = l.publisher(t, b.addr, cycle, g, wire.V311, livePatience, func() {
					if acks.Add(1) == liveAcks {
						close(busy)
					}
				})
			}()
		}
		select {
		case <-busy:
		case <-time.After(15 * time.Second):
			t.Fatalf("cycle %d: the live publishers got %d acknowledgements within 15s, want %d", cycle, acks.Load(), liveAcks)
		}
		// And a client streaming QoS 0 publishes: the broker always has a
		// packet of it to read when the signal comes.
		var flooded atomic.Int64
		floodErr := make(chan error, 1)
		go func() { floodErr <- flood(t, b.addr, "grace-flood", "flood/grace", &flooded, nil, floodLimit) }()
		if !waitFor(10*time.Second, func() bool { return flooded.Load() >= floodBefore }) {
			t.Fatalf("cycle %d: the flooding client wrote %d messages in 10s, want %d", cycle, flooded.Load(), floodBefore)
		}

		code, took := b.terminate()
		if code != 0 {
			t.Errorf("cycle %d: SIGTERM: exit code %d, want 0", cycle, code)
		}
		if b.logs.lastJSON(b.starts, "shutdown did not finish") != nil {
			t.Errorf("cycle %d: the broker logged \"shutdown did not finish\": it closed the store with connections still running", cycle)
		}
		if took > graceExitWait {
			t.Errorf("cycle %d: SIGTERM: the broker took %v to exit, want at most %v (did it wait for its busy clients to hang up?)",
				cycle, took, graceExitWait)
		}
		t.Logf("cycle %d: SIGTERM with %d publishers busy → exit %d in %v", cycle, len(ends), code, took.Round(time.Millisecond))
		closing := idle.ExpectClosed(t, ioTimeout)
		if !slices.ContainsFunc(closing, func(p wire.Packet) bool {
			d, ok := p.(*wire.Disconnect)
			return ok && d.ReasonCode == wire.ServerShuttingDown
		}) {
			t.Errorf("cycle %d: the 5.0 client got %v before the close, want a DISCONNECT 0x8B (server shutting down)", cycle, packetTypes(closing))
		}
		select {
		case err := <-floodErr:
			t.Logf("cycle %d: the flooding client wrote %d QoS 0 messages, then: %v", cycle, flooded.Load(), err)
		case <-time.After(floodLimit + ioTimeout):
			t.Fatalf("cycle %d: the flooding client did not stop", cycle)
		}
		waitGroupFor(t, &wg, 2*livePatience, "the live publishers")
		for g, e := range ends {
			if e.done {
				t.Errorf("cycle %d: live publisher %d finished its quota before the shutdown: the test did not shut down under load", cycle, g)
			}
		}
	}
	acked1, acked2, sent1, sent2 := l.snapshot()
	t.Logf("live publishers: %d QoS 1 and %d QoS 2 acknowledged before the shutdowns cut them off", len(acked1), len(acked2))

	b.restart()
	t.Logf("restart: process start → listening in %v", b.startup.Round(time.Millisecond))
	checkRetained(t, b.addr, l, t.Errorf)

	sub, present := pahoConnect(t, b.addr, graceSub, false, got.add)
	if !present {
		t.Errorf("%s: CONNACK without session present after the restart", graceSub)
	}
	complete := func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		for _, m := range [][]string{want1, want2} {
			for _, p := range m {
				if got.seen[p] == 0 {
					return false
				}
			}
		}
		for _, m := range []map[string]bool{acked1, acked2} {
			for p := range m {
				if got.seen[p] == 0 {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for !complete() && time.Now().Before(deadline) {
		select {
		case <-got.notify():
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Give duplicates a moment to show up, then stop.
	quiet := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(quiet) {
		select {
		case <-got.notify():
			quiet = time.Now().Add(300 * time.Millisecond)
		case <-time.After(time.Until(quiet)):
		}
	}
	sub.Disconnect(250)

	got.mu.Lock()
	defer got.mu.Unlock()
	t.Logf("%s received %d messages after the restart", graceSub, len(got.order))
	for _, c := range []struct {
		topic string
		want  []string
	}{{"grace/q1", want1}, {"grace/q2", want2}} {
		var order []string
		for _, m := range got.order {
			if m.topic == c.topic {
				order = append(order, m.payload)
			}
		}
		if !slices.Equal(order, c.want) {
			t.Errorf("%s: received %d messages on %s, want the %d queued ones exactly once and in order; first received %q",
				graceSub, len(order), c.topic, len(c.want), firstN(order, 5))
		}
	}
	var lost1, lost2, twice []string
	for p := range acked1 {
		if got.seen[p] == 0 {
			lost1 = append(lost1, p)
		}
	}
	for p := range acked2 {
		if got.seen[p] == 0 {
			lost2 = append(lost2, p)
		}
	}
	for p, n := range got.seen {
		if n > 1 && (sent2[p] || !sent1[p]) { // QoS 2 and the queued messages: exactly once
			twice = append(twice, fmt.Sprintf("%s ×%d", p, n))
		}
	}
	if len(lost1)+len(lost2) > 0 {
		t.Errorf("acknowledged before the shutdown but never delivered: %d QoS 1 (e.g. %q), %d QoS 2 (e.g. %q)",
			len(lost1), firstN(lost1, 5), len(lost2), firstN(lost2, 5))
	}
	if len(twice) > 0 {
		t.Errorf("delivered more than once: %q", firstN(twice, 10))
	}
	for _, p := range l.problemList() {
		t.Errorf("live publisher: %s", p)
	}
}

// pahoInbox collects what a paho client's default handler receives.
type pahoInbox struct {
	mu    sync.Mutex
	seen  map[string]int
	order []pahoMsg
	wake  chan struct{}
}

type pahoMsg struct {
	topic, payload string
	qos            byte
	dup            bool
}

func (in *pahoInbox) add(m paho.Message) {
	in.mu.Lock()
	in.seen[string(m.Payload())]++
	in.order = append(in.order, pahoMsg{topic: m.Topic(), payload: string(m.Payload()), qos: m.Qos(), dup: m.Duplicate()})
	if in.wake != nil {
		close(in.wake)
		in.wake = nil
	}
	in.mu.Unlock()
}

// notify returns a channel closed at the next message.
func (in *pahoInbox) notify() <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.wake == nil {
		in.wake = make(chan struct{})
	}
	return in.wake
}

// pahoConnect connects a paho (MQTT 3.1.1) client without automatic
// reconnection; onMsg, if set, receives every message (also those of a
// resumed session that arrive before any Subscribe call). It reports the
// CONNACK's session present flag.
func pahoConnect(t testing.TB, addr, id string, clean bool, onMsg func(paho.Message)) (paho.Client, bool) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(true).
		SetKeepAlive(30 * time.Second).SetConnectTimeout(ioTimeout).SetWriteTimeout(ioTimeout)
	if onMsg != nil {
		opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { onMsg(m) })
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(2 * ioTimeout) {
		t.Fatalf("paho %s: no CONNACK within %v", id, 2*ioTimeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho %s: connect: %v", id, err)
	}
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(0)
		}
	})
	return c, tok.(*paho.ConnectToken).SessionPresent()
}

func packetTypes(ps []wire.Packet) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Type().String()
		if d, ok := p.(*wire.Disconnect); ok {
			out[i] += fmt.Sprintf("(0x%02x)", byte(d.ReasonCode))
		}
	}
	return out
}

// TestTerminateRightAfterListening: a SIGTERM sent the moment the broker
// logs "listening" — what a supervisor watching the log or /readyz may do —
// shuts it down cleanly (exit 0, the admin address record removed), never
// kills it with the signal's default action; so does a SIGHUP (reload)
// sent as early, followed by SIGTERM. CI caught the handler being installed
// after the listeners once; the window is small, so the test goes round
// several times.
func TestTerminateRightAfterListening(t *testing.T) {
	b := startBroker(t)
	for round := range 8 {
		if round > 0 {
			b.restart()
		}
		dir := b.dir
		if round%2 == 1 {
			if err := b.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatalf("round %d: SIGHUP: %v", round, err)
			}
		}
		if code, _ := b.terminate(); code != 0 {
			t.Fatalf("round %d: exit code %d after SIGTERM at once", round, code)
		}
		if _, ok := readAdminAddr(dir); ok {
			t.Fatalf("round %d: the admin address is still recorded", round)
		}
	}
}
