package engine_test

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/store/storetest"
)

var (
	compactCutSeed = flag.Uint64("compactcut.seed", 0, "seed of TestPowerCutDuringCompaction (0: time-based)")
	compactCutCuts = flag.Int("compactcut.cuts", 0, "power cuts in TestPowerCutDuringCompaction (0: 16; 6 with -race)")
)

// The store a compaction pass works on, built once per test: offline
// persistent sessions whose queues mix messages that expired (5.0 message
// expiry) with messages that did not, some expired ones held in PUBREC
// state (never expired: their PUBREL is owed), retained messages with and
// without a passed expiry, and an event log older than the retention.
const (
	ccSessions = 12
	ccQueued   = 40 // per session; every other one expired
	ccRetained = 200
)

var ccT0 = time.Unix(1_800_000_000, 0)

// ccNow is the compaction time: an hour later, past every expiry.
var ccNow = ccT0.Add(time.Hour)

func ccMaint() engine.MaintOptions {
	return engine.MaintOptions{
		EventRetention:   30 * time.Minute, // the whole log is older
		CompactBatch:     8,                // many small commits: many places to cut
		CompactThreshold: 16,               // and Pebble compactions of the spans freed
	}
}

func ccStoreOptions(fs *storetest.CrashFS) store.Options {
	return store.Options{FS: fs, Logger: quietLogger(), MemTableSize: 256 << 10, Now: func() time.Time { return ccNow }}
}

// buildCompactionStore writes the store and returns its file system, closed
// (everything on it synced).
func buildCompactionStore(t *testing.T) *storetest.CrashFS {
	t.Helper()
	fs := storetest.NewCrashFS()
	st, err := store.Open(pcDir, ccStoreOptions(fs))
	if err != nil {
		t.Fatal(err)
	}
	at, expired := ccT0.UnixNano(), ccT0.Add(time.Minute).UnixNano()
	commit := func(evs ...*store.Event) {
		t.Helper()
		ch := make(chan error, 1)
		if err := st.Commit(evs, true, func(err error) { ch <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	for i := range ccSessions {
		id := fmt.Sprintf("cc-%02d", i)
		// Offline, its record's "may have been sent" watermark at the
		// start of the queue: a stopped store's pass may expire every
		// entry but those in PUBREC state.
		rec := &store.Session{ClientID: id, Version: 5, ExpiryInterval: math.MaxUint32, ConnectedAt: at, DisconnectedAt: at, SentKnown: true}
		commit(&store.Event{Kind: store.EvSessionOpened, Time: at, Client: id, Session: rec},
			&store.Event{Kind: store.EvSubscribed, Time: at, Client: id, Filter: "cc/#", Sub: &store.Subscription{QoS: 1}})
		for j := range ccQueued {
			msg := &store.Message{Topic: "cc/q", Payload: []byte(fmt.Sprintf("%s/%d", id, j)), QoS: 1, PublishedAt: at}
			if j%2 == 0 {
				msg.ExpiresAt = expired
			}
			ev := &store.Event{Kind: store.EvPublished, Time: at, Client: "pub", Msg: msg, Targets: []store.Target{{Client: id, QoS: 1}}}
			commit(ev)
			if j%10 == 0 { // sent and PUBREC'd: stays however expired
				seq := ev.Targets[0].Seq
				commit(&store.Event{Kind: store.EvDelivered, Time: at, Client: id, QSeq: seq, PacketID: uint16(j + 1)},
					&store.Event{Kind: store.EvPubrecReceived, Time: at, Client: id, QSeq: seq})
			}
		}
	}
	for i := range ccRetained {
		msg := &store.Message{Topic: fmt.Sprintf("cc/r/%03d", i), Payload: []byte(fmt.Sprintf("r%d", i)), QoS: 1, Retain: true, PublishedAt: at}
		if i%3 != 0 {
			msg.ExpiresAt = expired
		}
		commit(&store.Event{Kind: store.EvPublished, Time: at, Client: "pub", Msg: msg})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// ccState is what a store holds, as the broker would serve it.
type ccState struct {
	sessions []string
	queued   map[string]byte // "client/payload" -> entry state
	retained map[string]string
	events   int
}

func readCCState(st *store.Store) (*ccState, error) {
	s := &ccState{queued: map[string]byte{}, retained: map[string]string{}}
	sessions, err := st.LoadSessions()
	if err != nil {
		return nil, err
	}
	for _, ss := range sessions {
		id := ss.Session.ClientID
		if ss.Subs["cc/#"].QoS != 1 {
			return nil, fmt.Errorf("session %s lost its subscription: %v", id, ss.Subs)
		}
		s.sessions = append(s.sessions, id)
		q, err := st.ReadQueue(id, 0, math.MaxUint64, 0)
		if err != nil {
			return nil, err
		}
		for _, e := range q {
			s.queued[string(e.Msg.Payload)] = e.Entry.State
		}
	}
	sort.Strings(s.sessions)
	err = st.ForEachRetained(func(m *store.Message) error {
		s.retained[m.Topic] = string(m.Payload)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = st.Events(0, func(*store.Event) error { s.events++; return nil })
	return s, err
}

// kept checks what no compaction may remove: every session, every queued
// message that did not expire or is in PUBREC state, every retained value
// that did not expire — and that nothing is there that never was.
func (s *ccState) kept() []string {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < 10 {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	if len(s.sessions) != ccSessions {
		add("%d sessions, want %d", len(s.sessions), ccSessions)
	}
	for i := range ccSessions {
		for j := range ccQueued {
			name := fmt.Sprintf("cc-%02d/%d", i, j)
			state, ok := s.queued[name]
			if (j%2 == 1 || j%10 == 0) && !ok {
				add("queued %s (unexpired or in PUBREC state) is gone", name)
			}
			if ok && j%10 == 0 && state != store.StatePubrec {
				add("queued %s lost its PUBREC state (%d)", name, state)
			}
		}
	}
	if len(s.queued) > ccSessions*ccQueued {
		add("%d queued entries: more than were ever queued", len(s.queued))
	}
	for i := range ccRetained {
		topic := fmt.Sprintf("cc/r/%03d", i)
		v, ok := s.retained[topic]
		if i%3 == 0 && v != fmt.Sprintf("r%d", i) {
			add("retained %s = %q (present %v), want the unexpired r%d", topic, v, ok, i)
		}
		if i%3 != 0 && ok {
			add("retained %s expired but is served", topic)
		}
	}
	return out
}

func (s *ccState) equal(o *ccState) bool {
	return fmt.Sprint(s.sessions) == fmt.Sprint(o.sessions) && maps.Equal(s.queued, o.queued) &&
		maps.Equal(s.retained, o.retained) && s.events == o.events
}

func (s *ccState) String() string {
	return fmt.Sprintf("%d sessions, %d queued, %d retained, %d logged events", len(s.sessions), len(s.queued), len(s.retained), s.events)
}

// ccBroker opens the store on fs and restores a broker on it, as serve
// would (no listener: the compaction task needs none).
func ccBroker(fs *storetest.CrashFS) (*store.Store, *engine.Broker, error) {
	st, err := store.Open(pcDir, ccStoreOptions(fs))
	if err != nil {
		return nil, nil, fmt.Errorf("open: %w", err)
	}
	if err := st.Verify(); err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("verify after recovery: %w", err)
	}
	b := engine.New(st, engine.Options{Logger: quietLogger(), Now: func() time.Time { return ccNow }, Maint: ccMaint()})
	if _, err := recovery.Restore(st, b); err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("restore: %w", err)
	}
	return st, b, nil
}

func ccClose(st *store.Store, b *engine.Broker) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := b.Shutdown(ctx)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}

// compactCut runs a compaction pass on fs and cuts the power after delay
// (or not, if delay < 0): it returns the disk as the cut left it, and how
// long the pass took.
func compactCut(fs *storetest.CrashFS, delay time.Duration) (*storetest.CrashFS, time.Duration, error) {
	st, b, err := ccBroker(fs)
	if err != nil {
		return nil, 0, err
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := b.Compact(context.Background(), true); done <- err }()
	// The broker's other clients keep committing durably meanwhile, and
	// each fsync makes the pass's (unsynced) commits before it durable too:
	// cuts then find the pass part done.
	synced := make(chan struct{})
	stopSync := make(chan struct{})
	go func() {
		defer close(synced)
		for {
			select {
			case <-stopSync:
				return
			case <-time.After(300 * time.Microsecond):
				_ = st.Sync()
			}
		}
	}()
	var cut *storetest.CrashFS
	if delay >= 0 {
		time.Sleep(delay)
		cut = fs.Clone()
	}
	err = <-done
	took := time.Since(start)
	close(stopSync)
	<-synced
	if cerr := ccClose(st, b); err == nil {
		err = cerr
	}
	if cut == nil {
		cut = fs.Clone()
	}
	return cut, took, err
}

// TestPowerCutDuringCompaction cuts the power at random moments of a
// compaction pass — between its commits, inside Pebble's compactions of the
// spans it freed, while it truncates the log — and recovers each cut as
// `cairn serve` would. Every recovered store passes Verify, still holds
// everything no compaction may remove (unexpired queued and retained
// messages, PUBREC'd entries, sessions and subscriptions), and, after the
// restarted broker's own pass (itself cut again every third time), ends in
// exactly the state an uninterrupted pass leaves: compaction converges.
func TestPowerCutDuringCompaction(t *testing.T) {
	seed := *compactCutSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	cuts := *compactCutCuts
	if cuts == 0 {
		cuts = 16
		if raceEnabled {
			cuts = 6
		}
	}
	t.Logf("seed %d, %d cuts (rerun with -compactcut.seed=%d -compactcut.cuts=%d)", seed, cuts, seed, cuts)
	rng := rand.New(rand.NewPCG(seed, 7))
	base := buildCompactionStore(t)

	ref, took, err := compactCut(base.Clone(), -1)
	if err != nil {
		t.Fatalf("reference pass: %v", err)
	}
	want := recoverState(t, ref, "the reference pass")
	if p := want.kept(); len(p) > 0 {
		t.Fatalf("the reference pass removed too much: %v", p)
	}
	// Left in the log: the pass's own events (one per expiry, younger than
	// the retention); everything before was truncated.
	expiries := ccSessions*(ccQueued/2-ccQueued/10) + ccRetained - (ccRetained+2)/3
	if want.events != expiries || len(want.queued) != ccSessions*(ccQueued/2+ccQueued/10) || len(want.retained) != (ccRetained+2)/3 {
		t.Fatalf("the reference pass left %v: it did not expire or truncate everything due", want)
	}
	t.Logf("an uninterrupted pass takes %v and leaves %v", took, want)

	partial := map[string]int{} // what the cuts found, for the log
	defer func() { t.Logf("states recovered from the cuts: %v", partial) }()
	for i := range cuts {
		delay := time.Duration(rng.Int64N(int64(took + took/4)))
		cut, _, err := compactCut(base.Clone(), delay)
		if err != nil {
			t.Fatalf("cut %d: the pass itself failed: %v [seed %d]", i, err, seed)
		}
		mid := recoverState(t, cut, fmt.Sprintf("cut %d at %v", i, delay))
		partial[mid.String()]++
		for _, p := range mid.kept() {
			t.Errorf("cut %d at %v of a %v pass: %s [seed %d]", i, delay, took, p, seed)
		}
		again := -time.Duration(1)
		if i%3 == 2 {
			again = time.Duration(rng.Int64N(int64(took)))
		}
		final, _, err := compactCut(cut, again)
		if err != nil {
			t.Fatalf("cut %d: the pass after recovery failed: %v [seed %d]", i, err, seed)
		}
		if again >= 0 { // cut again: recover and finish once more
			if final, _, err = compactCut(final, -1); err != nil {
				t.Fatalf("cut %d: the third pass failed: %v [seed %d]", i, err, seed)
			}
		}
		got := recoverState(t, final, fmt.Sprintf("cut %d, after the next pass", i))
		if !got.equal(want) {
			t.Errorf("cut %d at %v (recovered: %v; cut again at %v): after the next pass the store holds %v, an uninterrupted pass leaves %v [seed %d]",
				i, delay, mid, again, got, want, seed)
		}
	}
}

// recoverState recovers fs (Verify included) and reads what it serves.
func recoverState(t *testing.T, fs *storetest.CrashFS, what string) *ccState {
	t.Helper()
	st, b, err := ccBroker(fs)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	s, err := readCCState(st)
	if cerr := ccClose(st, b); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return s
}
