package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

const (
	killPublishers = 4
	killWindow     = 32    // publishes in flight per publisher
	killQuota      = 20000 // publishes per publisher per round, at most
	killRetained   = 10    // retained topics k/r/0..9
	killSub1       = "kill-sub-q1"
	killSub2       = "kill-sub-q2"
)

// TestKillNineLosesNothingAcknowledged runs publishers (QoS 1, QoS 2 and
// retained QoS 1) against the broker binary and SIGKILLs it at a random
// moment, several rounds over the same store. A persistent QoS 1 subscriber
// (k/1/#) and a persistent QoS 2 subscriber (k/2/#, an exactly-once receiver)
// are online in alternate rounds. At the end both drain their sessions and:
//
//	(a) every QoS 1/2 message the broker acknowledged (PUBACK / PUBREC) was
//	    delivered at least once;
//	(b) no QoS 2 message was delivered twice, counting every connection of
//	    the QoS 2 subscriber across the crashes;
//	(c) every retained topic holds a value at least as new as the last
//	    acknowledged one (a later, unacknowledged one may have survived);
//	(d) the subscriptions survived: a publish after the last restart reaches
//	    both subscribers.
func TestKillNineLosesNothingAcknowledged(t *testing.T) {
	seed := *killSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rounds := max(*killRounds, 1)
	t.Logf("seed %d, %d rounds (rerun with -cairn.seed=%d -cairn.kill-rounds=%d)", seed, rounds, seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6c39))
	failf := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format+" [seed %d]", append(args, seed)...)
	}

	b := startBroker(t)
	subscribePersistent(t, b.addr, killSub1, wire.V311, wire.Subscription{Filter: "k/1/#", QoS: 1})
	subscribePersistent(t, b.addr, killSub2, wire.V5, wire.Subscription{Filter: "k/2/#", QoS: 2})
	sub1 := newReceiver(killSub1, wire.V311, 1)
	sub2 := newReceiver(killSub2, wire.V5, 2)
	l := newKillLedger()
	versions := [killPublishers]wire.Version{wire.V311, wire.V5, wire.V31, wire.V311}

	for round := range rounds {
		if round > 0 {
			b.restart()
		}
		online := []*receiver{sub2}
		if round%2 == 1 {
			online = []*receiver{sub1}
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		subEnds := make([]pubEnd, len(online))
		for i, r := range online {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := r.session(t, b.addr, stop, nil, 0, 2*time.Minute) // ends with the kill
				subEnds[i] = pubEnd{err: err, at: time.Now()}
			}()
		}
		l.beginRound()
		firstAck := make(chan struct{})
		var once sync.Once
		ends := make([]pubEnd, killPublishers)
		for g := range killPublishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ends[g] = l.publisher(t, b.addr, round, g, versions[g], ioTimeout, func() { once.Do(func() { close(firstAck) }) })
			}()
		}
		select {
		case <-firstAck:
		case <-time.After(15 * time.Second):
			close(stop)
			b.kill9()
			waitGroupFor(t, &wg, 15*time.Second, "publishers and subscribers")
			t.Fatalf("round %d: no acknowledgement within 15s (publishers: %+v) [seed %d]", round, ends, seed)
		}
		delay := time.Duration(20+rng.IntN(1000)) * time.Millisecond
		time.Sleep(delay) // the random moment of the crash, not a wait for a condition
		killedAt := time.Now()
		b.kill9()
		close(stop)
		waitGroupFor(t, &wg, 30*time.Second, "publishers and subscribers after the kill")
		for g, e := range ends {
			if e.err != nil && !e.done && e.at.Before(killedAt) {
				failf("round %d: publisher %d failed before the kill: %v", round, g, e.err)
			}
		}
		for i, e := range subEnds {
			if e.err != nil && e.at.Before(killedAt) {
				failf("round %d: subscriber %s failed before the kill: %v", round, online[i].name, e.err)
			}
		}
		s, a := l.roundCounts()
		t.Logf("round %d: SIGKILL %v after the first ack; sent/acked: QoS 1 %d/%d, QoS 2 %d/%d, retained %d/%d; online: %s; deliveries so far: %s %d, %s %d",
			round, delay, s[0], a[0], s[1], a[1], s[2], a[2], online[0].name,
			sub1.name, sub1.count(), sub2.name, sub2.count())
	}

	b.restart()
	t.Logf("restarted after %d kills: process start → listening in %v", rounds, b.startup.Round(time.Millisecond))

	// (d) a fresh publish after the last restart, to both subscriptions.
	finalPublish(t, b.addr, l)

	// (c) the retained values.
	checkRetained(t, b.addr, l, failf)

	// Drain both sessions (a, b, d).
	var wg sync.WaitGroup
	drainErr := make([]error, 2)
	for i, r := range []*receiver{sub1, sub2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			drained := func() bool { return len(l.missing(r)) == 0 }
			drainErr[i] = r.session(t, b.addr, nil, drained, 500*time.Millisecond, 40*time.Second)
		}()
	}
	drainStart := time.Now()
	waitGroupFor(t, &wg, 60*time.Second, "draining the subscribers")
	t.Logf("drained both sessions in %v", time.Since(drainStart).Round(time.Millisecond))
	for i, r := range []*receiver{sub1, sub2} {
		if drainErr[i] != nil {
			failf("draining %s: %v", r.name, drainErr[i])
		}
	}

	acked1, acked2, sent1, sent2 := l.snapshot()
	check := func(r *receiver, acked, sent map[string]bool, exactlyOnce bool) {
		t.Helper()
		r.mu.Lock()
		defer r.mu.Unlock()
		var missing, twice, phantom []string
		for p := range acked {
			if r.delivered[p] == 0 {
				missing = append(missing, p)
			}
		}
		extra, dups := 0, 0
		for p, n := range r.delivered {
			if !sent[p] {
				phantom = append(phantom, p)
			}
			if !acked[p] {
				extra++
			}
			if n > 1 {
				dups += n - 1
				if exactlyOnce {
					twice = append(twice, fmt.Sprintf("%s ×%d", p, n))
				}
			}
		}
		slices.Sort(missing)
		slices.Sort(twice)
		slices.Sort(phantom)
		t.Logf("%s: %d acknowledged, %d distinct delivered (%d never acknowledged but survived), %d duplicate deliveries, %d PUBLISH packets (%d with DUP, %d re-deliveries without DUP)",
			r.name, len(acked), len(r.delivered), extra, dups, r.publishes, r.dupFlag, r.redeliveredNoDup)
		if len(missing) > 0 {
			failf("%s: %d acknowledged messages never delivered (lost by the crashes), e.g. %v", r.name, len(missing), firstN(missing, 10))
		}
		if len(twice) > 0 {
			failf("%s: %d QoS 2 messages delivered more than once, e.g. %v", r.name, len(twice), firstN(twice, 10))
		}
		if len(phantom) > 0 {
			failf("%s: %d delivered payloads were never published, e.g. %q", r.name, len(phantom), firstN(phantom, 10))
		}
		if len(r.awaitingRel) > 0 {
			failf("%s: %d QoS 2 deliveries still wait for PUBREL after the drain", r.name, len(r.awaitingRel))
		}
		for _, p := range r.problems {
			failf("%s: %s", r.name, p)
		}
	}
	check(sub1, acked1, sent1, false)
	check(sub2, acked2, sent2, true)
	if sub1.get(finalQ1) == 0 {
		failf("(d) %s did not receive %q published after the last restart: its subscription was lost", sub1.name, finalQ1)
	}
	if sub2.get(finalQ2) == 0 {
		failf("(d) %s did not receive %q published after the last restart: its subscription was lost", sub2.name, finalQ2)
	}
	for _, p := range l.problemList() {
		failf("publisher: %s", p)
	}
}

const (
	finalQ1 = "final-q1"
	finalQ2 = "final-q2"
)

// finalPublish publishes one QoS 1 and one QoS 2 message after the last
// restart and records them as acknowledged.
func finalPublish(t *testing.T, addr string, l *killLedger) {
	t.Helper()
	c := wiretest.Dial(t, addr, wire.V311)
	defer c.Close()
	if ack := c.Connect(t, &wire.Connect{ClientID: "kill-final", CleanStart: true}); ack.ReasonCode != 0 {
		t.Fatalf("final publisher: CONNACK 0x%02x", byte(ack.ReasonCode))
	}
	l.markSent(1, finalQ1)
	l.markSent(2, finalQ2)
	c.Send(&wire.Publish{QoS: 1, Topic: "k/1/final", PacketID: 1, Payload: []byte(finalQ1)})
	expectAck(t, c, wire.PUBACK, 1)
	l.markAcked(1, finalQ1)
	c.Send(&wire.Publish{QoS: 2, Topic: "k/2/final", PacketID: 2, Payload: []byte(finalQ2)})
	expectAck(t, c, wire.PUBREC, 2)
	l.markAcked(2, finalQ2)
	c.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: 2})
	expectAck(t, c, wire.PUBCOMP, 2)
	c.Send(&wire.Disconnect{})
}

func expectAck(t *testing.T, c *wiretest.Conn, kind wire.PacketType, pid uint16) {
	t.Helper()
	p := c.Expect(t, ioTimeout)
	a, ok := p.(*wire.Ack)
	if !ok || a.Kind != kind || a.PacketID != pid {
		t.Fatalf("expected %s for packet id %d, got %s %+v", kind, pid, p.Type(), p)
	}
}

// checkRetained subscribes a clean session to k/r/# and compares each
// retained value with the last acknowledged one.
func checkRetained(t *testing.T, addr string, l *killLedger, failf func(string, ...any)) {
	t.Helper()
	c := wiretest.Dial(t, addr, wire.V311)
	defer c.Close()
	c.Connect(t, &wire.Connect{ClientID: "kill-retained", CleanStart: true})
	c.Send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "k/r/#", QoS: 0}}})
	if p := c.Expect(t, ioTimeout); p.Type() != wire.SUBACK {
		t.Fatalf("retained check: expected SUBACK, got %s", p.Type())
	}
	l.mu.Lock()
	ret := l.ret
	l.mu.Unlock()
	got := map[int]int{}
	complete := func() bool {
		for i, r := range ret {
			if _, ok := got[i]; !ok && r.lastAcked > 0 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for !complete() && time.Now().Before(deadline) {
		p, err := c.Recv(time.Until(deadline))
		if err != nil {
			break
		}
		pub, ok := p.(*wire.Publish)
		if !ok {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(pub.Topic, "k/r/%d", &i); err != nil || i < 0 || i >= killRetained {
			failf("retained check: unexpected topic %q", pub.Topic)
			continue
		}
		v, err := strconv.Atoi(string(pub.Payload))
		if err != nil {
			failf("retained check: %s holds %q, not a published value", pub.Topic, pub.Payload)
			continue
		}
		if !pub.Retain {
			failf("retained check: %s delivered without RETAIN", pub.Topic)
		}
		got[i] = v
	}
	var summary []string
	for i, r := range ret {
		v, ok := got[i]
		summary = append(summary, fmt.Sprintf("k/r/%d=%d (acked %d, sent %d)", i, v, r.lastAcked, r.maxSent))
		switch {
		case r.lastAcked == 0:
		case !ok:
			failf("(c) k/r/%d has no retained message; %d was acknowledged", i, r.lastAcked)
		case v < r.lastAcked:
			failf("(c) k/r/%d holds %d, older than the acknowledged %d (newest sent %d)", i, v, r.lastAcked, r.maxSent)
		case v > r.maxSent:
			failf("(c) k/r/%d holds %d, never published (newest sent %d)", i, v, r.maxSent)
		}
	}
	t.Logf("retained: %v", summary)
}

// killLedger records what was published and what the broker acknowledged.
type killLedger struct {
	mu             sync.Mutex
	sent1, sent2   map[string]bool
	acked1, acked2 map[string]bool
	ret            [killRetained]retainedState
	roundSent      [3]int // QoS 1, QoS 2, retained
	roundAcked     [3]int
	problems       []string
}

type retainedState struct{ next, lastAcked, maxSent int }

func newKillLedger() *killLedger {
	l := &killLedger{sent1: map[string]bool{}, sent2: map[string]bool{}, acked1: map[string]bool{}, acked2: map[string]bool{}}
	for i := range l.ret {
		l.ret[i].next = 1
	}
	return l
}

func (l *killLedger) beginRound() {
	l.mu.Lock()
	l.roundSent, l.roundAcked = [3]int{}, [3]int{}
	l.mu.Unlock()
}

func (l *killLedger) roundCounts() (sent, acked [3]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.roundSent, l.roundAcked
}

func (l *killLedger) markSent(qos int, payload string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if qos == 1 {
		l.sent1[payload] = true
	} else {
		l.sent2[payload] = true
	}
	l.roundSent[qos-1]++
}

func (l *killLedger) markAcked(qos int, payload string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if qos == 1 {
		l.acked1[payload] = true
	} else {
		l.acked2[payload] = true
	}
	l.roundAcked[qos-1]++
}

// nextRetained takes the next value of retained topic i.
func (l *killLedger) nextRetained(i int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.ret[i].next
	l.ret[i].next++
	l.ret[i].maxSent = v
	l.roundSent[2]++
	return v
}

func (l *killLedger) ackRetained(i, v int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ret[i].lastAcked = max(l.ret[i].lastAcked, v)
	l.roundAcked[2]++
}

func (l *killLedger) problem(format string, args ...any) {
	l.mu.Lock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *killLedger) problemList() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.problems)
}

func (l *killLedger) snapshot() (acked1, acked2, sent1, sent2 map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked1, l.acked2, l.sent1, l.sent2 // no writers are left
}

// missing lists the acknowledged messages r should get but has not.
func (l *killLedger) missing(r *receiver) []string {
	l.mu.Lock()
	acked := l.acked1
	if r.qos == 2 {
		acked = l.acked2
	}
	var out []string
	r.mu.Lock()
	for p := range acked {
		if r.delivered[p] == 0 {
			out = append(out, p)
		}
	}
	r.mu.Unlock()
	l.mu.Unlock()
	return out
}

// outPub is a publish awaiting its acknowledgement.
type outPub struct {
	qos      byte
	retained int // topic index, or -1
	value    int // retained value
	payload  string
	pubrec   bool // QoS 2: PUBREC received, PUBREL sent
}

// pubEnd says how a publisher's round ended.
type pubEnd struct {
	done bool // quota reached, everything acknowledged
	err  error
	at   time.Time
}

// publisher publishes until its connection fails (the kill) or its quota is
// done, with up to killWindow publishes in flight, recording acks in l. It
// gives up on a connection that sends nothing for patience.
func (l *killLedger) publisher(t testing.TB, addr string, round, g int, v wire.Version, patience time.Duration, acked func()) (end pubEnd) {
	defer func() { end.at = time.Now() }()
	c, err := dialRaw(t, addr, v)
	if err != nil {
		return pubEnd{err: err}
	}
	defer c.close()
	if _, err := c.connect(&wire.Connect{ClientID: fmt.Sprintf("kill-pub-%d-%d", round, g), CleanStart: true}); err != nil {
		return pubEnd{err: err}
	}
	var owned []int // retained topics of this publisher: one writer per topic keeps values ordered
	for i := g; i < killRetained; i += killPublishers {
		owned = append(owned, i)
	}
	inflight := make(map[uint16]*outPub, killWindow)
	var pid uint16
	var batch []wire.Packet
	n := 0
	for {
		batch = batch[:0]
		for len(inflight) < killWindow && n < killQuota {
			for {
				pid++
				if pid == 0 {
					pid = 1
				}
				if inflight[pid] == nil {
					break
				}
			}
			op := &outPub{retained: -1}
			pub := &wire.Publish{PacketID: pid}
			switch {
			case n%8 == 7:
				i := owned[(n/8)%len(owned)]
				op.qos, op.retained, op.value = 1, i, l.nextRetained(i)
				op.payload = strconv.Itoa(op.value)
				pub.Topic, pub.Retain = fmt.Sprintf("k/r/%d", i), true
			case n%2 == 0:
				op.qos = 1
				op.payload = fmt.Sprintf("q1/r%d/p%d/%d", round, g, n)
				pub.Topic = fmt.Sprintf("k/1/%d", g)
				l.markSent(1, op.payload)
			default:
				op.qos = 2
				op.payload = fmt.Sprintf("q2/r%d/p%d/%d", round, g, n)
				pub.Topic = fmt.Sprintf("k/2/%d", g)
				l.markSent(2, op.payload)
			}
			pub.QoS, pub.Payload = op.qos, []byte(op.payload)
			inflight[pid] = op
			batch = append(batch, pub)
			n++
		}
		if len(batch) > 0 {
			if err := c.send(batch...); err != nil {
				return pubEnd{err: err}
			}
		}
		if len(inflight) == 0 {
			return pubEnd{done: true}
		}
		p, err := c.recv(patience)
		if err != nil {
			return pubEnd{err: err}
		}
		a, ok := p.(*wire.Ack)
		if !ok {
			if d, ok := p.(*wire.Disconnect); ok {
				return pubEnd{err: fmt.Errorf("server DISCONNECT 0x%02x", byte(d.ReasonCode))}
			}
			l.problem("publisher %d round %d: unexpected %s", g, round, p.Type())
			return pubEnd{err: fmt.Errorf("unexpected %s", p.Type())}
		}
		op := inflight[a.PacketID]
		if op == nil {
			l.problem("publisher %d round %d: %s for packet id %d not in flight", g, round, a.Kind, a.PacketID)
			continue
		}
		if a.ReasonCode >= 0x80 {
			l.problem("publisher %d round %d: %s refused %q: 0x%02x", g, round, a.Kind, op.payload, byte(a.ReasonCode))
			delete(inflight, a.PacketID)
			continue
		}
		switch {
		case a.Kind == wire.PUBACK && op.qos == 1:
			if op.retained >= 0 {
				l.ackRetained(op.retained, op.value)
			} else {
				l.markAcked(1, op.payload)
			}
			delete(inflight, a.PacketID)
			acked()
		case a.Kind == wire.PUBREC && op.qos == 2:
			if !op.pubrec {
				op.pubrec = true
				l.markAcked(2, op.payload)
				acked()
			}
			if err := c.send(&wire.Ack{Kind: wire.PUBREL, PacketID: a.PacketID}); err != nil {
				return pubEnd{err: err}
			}
		case a.Kind == wire.PUBCOMP && op.qos == 2 && op.pubrec:
			delete(inflight, a.PacketID)
		default:
			l.problem("publisher %d round %d: %s for a QoS %d publish (pubrec %v)", g, round, a.Kind, op.qos, op.pubrec)
		}
	}
}

// receiver is a persistent subscriber whose client-side state outlives its
// connections: for QoS 2 it is an exactly-once receiver (deliver on PUBLISH
// unless the packet id already awaits PUBREL, answer PUBREC; on PUBREL
// forget the id and answer PUBCOMP).
type receiver struct {
	name string
	v    wire.Version
	qos  byte // the QoS every delivery must have; 0: 1 or 2

	mu          sync.Mutex
	awaitingRel map[uint16]string // packet id → payload
	delivered   map[string]int
	publishes   int
	dupFlag     int
	// redeliveredNoDup counts PUBLISHes of a message this client already
	// had (QoS 1) or still holds awaiting PUBREL (QoS 2) that came without
	// DUP (MQTT-3.3.1-1 wants it set on a re-delivery).
	redeliveredNoDup int
	problems         []string
}

func newReceiver(name string, v wire.Version, qos byte) *receiver {
	return &receiver{name: name, v: v, qos: qos, awaitingRel: map[uint16]string{}, delivered: map[string]int{}}
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.delivered)
}

func (r *receiver) get(payload string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered[payload]
}

// session connects r's persistent session and receives, acknowledging,
// until stop is closed, the connection fails, or — when drained is not nil —
// drained() holds and nothing arrived for quiet. limit bounds it all.
func (r *receiver) session(t testing.TB, addr string, stop <-chan struct{}, drained func() bool, quiet, limit time.Duration) error {
	c, err := dialRaw(t, addr, r.v)
	if err != nil {
		return err
	}
	defer c.close()
	ack, err := c.connect(persistentConnect(r.name, r.v))
	if err != nil {
		return err
	}
	if !ack.SessionPresent {
		r.problem("CONNACK says no session present: the persistent session was lost")
	}
	deadline := time.Now().Add(limit)
	last := time.Now()
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still receiving after %v", limit)
		}
		p, err := c.recv(50 * time.Millisecond)
		if isTimeout(err) {
			if drained != nil && time.Since(last) >= quiet && drained() {
				return c.send(&wire.Disconnect{})
			}
			continue
		}
		if err != nil {
			return err
		}
		last = time.Now()
		if d, ok := p.(*wire.Disconnect); ok {
			return fmt.Errorf("server DISCONNECT 0x%02x", byte(d.ReasonCode))
		}
		if reply := r.handle(p); reply != nil {
			if err := c.send(reply); err != nil {
				return err
			}
		}
	}
}

func (r *receiver) handle(p wire.Packet) wire.Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch p := p.(type) {
	case *wire.Publish:
		r.publishes++
		if p.Dup {
			r.dupFlag++
		}
		if p.QoS != r.qos && (r.qos != 0 || p.QoS == 0) {
			r.problemLocked("%q delivered at QoS %d, want %d", p.Payload, p.QoS, max(r.qos, 1))
		}
		held, awaiting := r.awaitingRel[p.PacketID]
		if !p.Dup && (r.delivered[string(p.Payload)] > 0 && p.QoS == 1 || awaiting && p.QoS == 2) {
			r.redeliveredNoDup++
		}
		switch p.QoS {
		case 0:
			r.delivered[string(p.Payload)]++
		case 1:
			r.delivered[string(p.Payload)]++
			return &wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID}
		case 2:
			if awaiting && held != string(p.Payload) {
				// Method B would drop this message as a duplicate.
				r.problemLocked("packet id %d awaits PUBREL for %q but the server sent %q with it (dup %v)", p.PacketID, held, p.Payload, p.Dup)
			}
			if !awaiting {
				r.awaitingRel[p.PacketID] = string(p.Payload)
				r.delivered[string(p.Payload)]++
			}
			return &wire.Ack{Kind: wire.PUBREC, PacketID: p.PacketID}
		}
	case *wire.Ack:
		if p.Kind == wire.PUBREL {
			delete(r.awaitingRel, p.PacketID) // unknown: a repeat after a crash
			return &wire.Ack{Kind: wire.PUBCOMP, PacketID: p.PacketID}
		}
		r.problemLocked("unexpected %s", p.Kind)
	default:
		r.problemLocked("unexpected %s", p.Type())
	}
	return nil
}

func (r *receiver) problem(format string, args ...any) {
	r.mu.Lock()
	r.problemLocked(format, args...)
	r.mu.Unlock()
}

func (r *receiver) problemLocked(format string, args ...any) {
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// waitGroupFor waits for wg, failing the test after d.
func waitGroupFor(t testing.TB, wg *sync.WaitGroup, d time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
}

func firstN[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}
