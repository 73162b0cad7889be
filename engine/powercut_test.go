package engine_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/store/storetest"
)

var (
	powerCutSeed = flag.Uint64("powercut.seed", 0, "seed of TestPowerCutLosesNothingAcknowledged (0: time-based)")
	powerCutCuts = flag.Int("powercut.cuts", 0, "power cuts in TestPowerCutLosesNothingAcknowledged (0: 200; 50 with -short, 30 with -race)")
)

const pcDir = "/cairn"

// TestPowerCutLosesNothingAcknowledged runs the broker over a file system
// that can lose power, drives the power-cut workload (persistent publishers,
// churning persistent subscribers, retained sets and clears) over real TCP
// connections, and cuts the power at random instants while it runs. Each
// cut's disk is recovered (as `cairn serve` would: store.Open, then
// recovery.Restore) and must reflect every acknowledgement a client had
// received before the cut:
//   - the session of every CONNACK and the subscription of every SUBACK;
//   - every PUBACKed / PUBRECed message, for every subscriber that had its
//     SUBACK before the message was sent: still queued, or already received;
//   - never a queued QoS 2 message whose PUBREL the subscriber had received
//     (it would be delivered twice), never a duplicate or phantom entry;
//   - the "awaiting PUBREL" packet id of every PUBRECed inbound QoS 2
//     message whose PUBREL had not been sent;
//   - a retained value at least as new as the last acknowledged one.
//
// Every tenth cut is recovered while the power is cut again, and the second
// copy recovered and checked instead (a crash during recovery converges).
// Finally the broker is restarted on a last cut taken after the workload and
// every subscriber drains its queue: every acknowledged message arrives, and
// no QoS 2 message arrives twice.
func TestPowerCutLosesNothingAcknowledged(t *testing.T) {
	seed := *powerCutSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	cuts := *powerCutCuts
	if cuts == 0 {
		switch {
		case raceEnabled:
			cuts = 30
		case testing.Short():
			cuts = 50
		default:
			cuts = 200
		}
	}
	t.Logf("seed %d, %d cuts (rerun with -powercut.seed=%d -powercut.cuts=%d)", seed, cuts, seed, cuts)
	rng := rand.New(rand.NewPCG(seed, 1))
	opts := engine.Options{Logger: slog.New(slog.DiscardHandler), MaxInflight: 16}

	fs := storetest.NewCrashFS()
	live := startPowerCutBroker(t, fs, opts)
	tr := newTracker()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var subs []*pcSubscriber
	for i := 0; i < 3; i++ {
		s := &pcSubscriber{id: fmt.Sprintf("pc-sub-%d", i), awaitRel: map[uint16]string{}}
		subs = append(subs, s)
		r := rand.New(rand.NewPCG(seed, uint64(10+i)))
		wg.Add(1)
		go func() { defer wg.Done(); s.run(live.addr, r, tr, stop) }()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		tr.mu.Lock()
		n, failed := len(tr.subacked), len(tr.errs) > 0
		tr.mu.Unlock()
		if n == len(subs) || failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subscribers did not subscribe")
		}
	}
	for i := 0; i < 3; i++ {
		r := rand.New(rand.NewPCG(seed, uint64(20+i)))
		wg.Add(1)
		go func() { defer wg.Done(); runPublisher(live.addr, i, r, tr, stop) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); runRetainer(live.addr, rand.New(rand.NewPCG(seed, 30)), tr, stop) }()

	var snaps []*pcSnapshot
	var recoverTime time.Duration
	for i := 0; i < cuts; i++ {
		time.Sleep(time.Duration(rng.IntN(8000)) * time.Microsecond)
		t0 := tr.tick()
		clone := fs.Clone()
		t1 := tr.tick()
		start := time.Now()
		snaps = append(snaps, summarize(clone, opts, i%10 == 9, i%5 == 0, rng, t0, t1))
		recoverTime += time.Since(start)
	}
	t.Logf("%d cuts: recovering and reading a cut took %v on average", cuts, recoverTime/time.Duration(cuts))
	close(stop)
	wg.Wait()

	// The last cut, after the workload: a broker restarted on it must hand
	// every subscriber everything it was promised.
	t0 := tr.tick()
	final := fs.Clone()
	live.stop(t)
	restarted := startPowerCutBroker(t, final, opts)
	for _, s := range subs {
		s.drain(restarted.addr, tr, 3*time.Second, func() bool {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			return len(endToEnd(tr, t0, s.id)) == 0
		})
	}
	restarted.stop(t)

	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, err := range tr.errs {
		t.Error(err)
	}
	acked, twice := 0, 0
	for _, m := range tr.msgs {
		if m.ackedAt != 0 {
			acked++
		}
	}
	for _, snap := range snaps {
		if snap.recoveredTwice {
			twice++
		}
		for _, p := range snap.check(tr) {
			t.Errorf("cut at tick %d (%s): %s", snap.t0, snap.kind(), p)
		}
	}
	for _, p := range endToEnd(tr, t0, "") {
		t.Errorf("after the last cut and a restart: %s", p)
	}
	t.Logf("%d messages acknowledged, %d deliveries, %d retained publishes; %d cuts checked (%d with a second cut during recovery)",
		acked, len(tr.received), retainedCount(tr), len(snaps), twice)
}

// pcBroker is a broker serving on loopback over one file system.
type pcBroker struct {
	st   *store.Store
	b    *engine.Broker
	addr string
	done chan struct{}
}

func startPowerCutBroker(t *testing.T, fs *storetest.CrashFS, opts engine.Options) *pcBroker {
	t.Helper()
	st, err := store.Open(pcDir, pcStoreOptions(fs, opts))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	b := engine.New(st, opts)
	if _, err := recovery.Restore(st, b); err != nil {
		t.Fatalf("restore: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pb := &pcBroker{st: st, b: b, addr: l.Addr().String(), done: make(chan struct{})}
	go func() { defer close(pb.done); _ = b.Serve(l) }()
	return pb
}

func (pb *pcBroker) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pb.b.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	<-pb.done
	if err := pb.st.Close(); err != nil {
		t.Errorf("close store: %v", err)
	}
}

// pcSnapshot is what one cut's recovered store holds.
type pcSnapshot struct {
	t0, t1         uint64 // the clone was taken between these ticks
	recoveredTwice bool
	err            error
	sessions       map[string]bool
	subs           map[string]map[string]bool
	queues         map[string]map[string]byte // client -> message -> entry state
	problems       []string                   // found while reading (duplicates)
	inbound        map[string]map[uint16]bool
	retained       map[string]string
}

func (s *pcSnapshot) kind() string {
	if s.recoveredTwice {
		return "recovered after a cut during recovery"
	}
	return "recovered"
}

// summarize recovers fs as `cairn serve` would and reads what it holds.
// With twice, the power is cut again while the first recovery runs, and the
// second copy is the one recovered and read. With verify the store's own
// invariants are checked too (a full scan: every fifth cut, not every one).
func summarize(fs *storetest.CrashFS, opts engine.Options, twice, verify bool, rng *rand.Rand, t0, t1 uint64) *pcSnapshot {
	snap := &pcSnapshot{t0: t0, t1: t1, recoveredTwice: twice}
	if twice {
		st, err := store.Open(pcDir, pcStoreOptions(fs, opts))
		if err != nil {
			snap.err = fmt.Errorf("open for the first recovery: %w", err)
			return snap
		}
		done := make(chan error, 1)
		go func() { done <- restoreOnly(st, opts) }()
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Microsecond)
		second := fs.Clone()
		err = <-done
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			snap.err = fmt.Errorf("first recovery: %w", err)
			return snap
		}
		fs = second
	}
	st, err := store.Open(pcDir, pcStoreOptions(fs, opts))
	if err != nil {
		snap.err = fmt.Errorf("open: %w", err)
		return snap
	}
	defer st.Close()
	if err := restoreOnly(st, opts); err != nil {
		snap.err = err
		return snap
	}
	snap.err = snap.read(st)
	if !verify {
		return snap
	}
	if err := st.Verify(); err != nil && snap.err == nil {
		snap.err = fmt.Errorf("verify: %w", err)
	}
	return snap
}

func restoreOnly(st *store.Store, opts engine.Options) error {
	b := engine.New(st, opts)
	if _, err := recovery.Restore(st, b); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return b.Shutdown(ctx)
}

func (s *pcSnapshot) read(st *store.Store) error {
	s.sessions = map[string]bool{}
	s.subs = map[string]map[string]bool{}
	s.queues = map[string]map[string]byte{}
	s.inbound = map[string]map[uint16]bool{}
	s.retained = map[string]string{}
	sessions, err := st.LoadSessions()
	if err != nil {
		return err
	}
	for _, ss := range sessions {
		id := ss.Session.ClientID
		s.sessions[id] = true
		s.subs[id] = map[string]bool{}
		for f := range ss.Subs {
			s.subs[id][f] = true
		}
		s.inbound[id] = map[uint16]bool{}
		for _, pid := range ss.InboundPIDs {
			s.inbound[id][pid] = true
		}
		q, err := st.ReadQueue(id, 0, math.MaxUint64, 0)
		if err != nil {
			return err
		}
		s.queues[id] = map[string]byte{}
		for _, e := range q {
			name := string(e.Msg.Payload)
			if _, dup := s.queues[id][name]; dup {
				s.problems = append(s.problems, fmt.Sprintf("%s is queued twice for %s", name, id))
			}
			s.queues[id][name] = e.Entry.State
		}
	}
	return st.ForEachRetained(func(m *store.Message) error {
		s.retained[m.Topic] = string(m.Payload)
		return nil
	})
}

// check lists the promises this snapshot breaks. tr must be locked.
func (s *pcSnapshot) check(tr *tracker) []string {
	if s.err != nil {
		return []string{s.err.Error()}
	}
	out := append([]string(nil), s.problems...)
	add := func(format string, args ...any) {
		if len(out) < 20 {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	for id, at := range tr.connacked {
		if at <= s.t0 && !s.sessions[id] {
			add("session %s (CONNACK at %d) is gone", id, at)
		}
	}
	for id, at := range tr.subacked {
		if at <= s.t0 && !s.subs[id]["pc/m/+"] {
			add("subscription of %s (SUBACK at %d) is gone", id, at)
		}
	}
	for name, m := range tr.msgs {
		if m.ackedAt == 0 || m.ackedAt > s.t0 {
			continue
		}
		for sub, subAt := range tr.subacked {
			if subAt >= m.sentAt {
				continue
			}
			_, queued := s.queues[sub][name]
			recv, got := tr.received[recvKey{sub, name}]
			if !queued && !(got && recv <= s.t1) {
				add("acknowledged QoS %d message %s (ack at %d) is lost for %s", m.qos, name, m.ackedAt, sub)
			}
		}
		if m.qos == 2 && (m.pubrelAt == 0 || m.pubrelAt > s.t1) && !s.inbound[m.from][m.pid] {
			add("inbound QoS 2 %s (PUBREC at %d, no PUBREL sent) lost its packet id %d: a resend would deliver it twice", name, m.ackedAt, m.pid)
		}
	}
	for sub, q := range s.queues {
		for name, state := range q {
			m, ok := tr.msgs[name]
			if !ok || m.sentAt > s.t1 {
				add("%s holds %q, which nobody had sent", sub, name)
				continue
			}
			if rel, ok := tr.pubrelRecv[recvKey{sub, name}]; ok && rel <= s.t0 && state != store.StatePubrec {
				add("%s received the PUBREL of %s at %d, but the entry is back in state %d: it would be delivered again", sub, name, rel, state)
			}
		}
	}
	for topic, pubs := range tr.retained {
		var acked *pcRetained
		for _, rp := range pubs {
			if rp.ackedAt != 0 && rp.ackedAt <= s.t0 {
				acked = rp
			}
		}
		val, present := s.retained[topic]
		if present {
			seq, err := strconv.Atoi(strings.TrimPrefix(val, topic+"#"))
			if err != nil || seq < 1 || seq > len(pubs) || pubs[seq-1].empty || pubs[seq-1].sentAt > s.t1 {
				add("retained %s = %q was never published", topic, val)
				continue
			}
			if acked != nil && seq < acked.seq {
				add("retained %s = #%d, older than the acknowledged #%d", topic, seq, acked.seq)
			}
			continue
		}
		if acked == nil || acked.empty {
			continue
		}
		cleared := false
		for _, rp := range pubs[acked.seq:] {
			cleared = cleared || (rp.empty && rp.sentAt <= s.t1)
		}
		if !cleared {
			add("retained %s is gone, but #%d was acknowledged and never cleared", topic, acked.seq)
		}
	}
	return out
}

// endToEnd checks, after the final restart and drain, that every
// subscriber (or only the one named) received every message acknowledged
// before the last cut that was sent after its SUBACK. (Duplicates of QoS 2
// are caught as they arrive.) tr must be locked.
func endToEnd(tr *tracker, t0 uint64, only string) []string {
	var out []string
	for name, m := range tr.msgs {
		if m.ackedAt == 0 || m.ackedAt > t0 {
			continue
		}
		for sub, subAt := range tr.subacked {
			if (only == "" || sub == only) && subAt < m.sentAt {
				if _, ok := tr.received[recvKey{sub, name}]; !ok && len(out) < 20 {
					out = append(out, fmt.Sprintf("%s never received acknowledged QoS %d message %s", sub, m.qos, name))
				}
			}
		}
	}
	return out
}

func retainedCount(tr *tracker) int {
	n := 0
	for _, pubs := range tr.retained {
		n += len(pubs)
	}
	return n
}

// pcStoreOptions keeps memtables small, so that each cut's recovery replays
// a short WAL (a 64 MiB memtable's WAL took most of a second to replay) and
// the cuts also land in flushes and compactions.
func pcStoreOptions(fs *storetest.CrashFS, opts engine.Options) store.Options {
	return store.Options{FS: fs, Logger: opts.Logger, MemTableSize: 1 << 20}
}
