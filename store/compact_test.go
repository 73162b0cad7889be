package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// clock is an injectable clock for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openClock(t testing.TB, fs vfs.FS, c *clock) *Store {
	t.Helper()
	o := testOptions(fs)
	o.Now = c.Now
	s, err := Open("db", o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func compactNow(t testing.TB, s *Store, o CompactOptions) CompactReport {
	t.Helper()
	o.Gap = -1
	rep, err := s.Compact(context.Background(), o)
	if err != nil {
		t.Fatalf("compact: %v", err)
	}
	if err := s.Verify(); err != nil {
		t.Fatalf("verify after compact: %v", err)
	}
	return rep
}

func retainedTopics(t testing.TB, s *Store) []string {
	t.Helper()
	var out []string
	if err := s.ForEachRetained(func(m *Message) error { out = append(out, m.Topic); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func countKind(t testing.TB, s *Store, k EventKind) int {
	t.Helper()
	n := 0
	if err := s.Events(0, func(ev *Event) error {
		if ev.Kind == k {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// Retained messages expire on time, by 5.0 expiry or by server TTL
// (whichever comes first); readers skip them before the pass deletes them;
// each deletion is a logged event.
func TestCompactExpiresRetained(t *testing.T) {
	c := newClock()
	s := openClock(t, vfs.NewMem(), c)
	defer s.Close()
	at := func(d time.Duration) int64 { return c.Now().Add(d).UnixNano() }
	ttl := func(topic string, d time.Duration) *Event {
		ev := evRetain(topic, "v", 0)
		ev.Msg.RetainUntil = at(d)
		return ev
	}
	both := evRetain("both", "v", at(3*time.Second))
	both.Msg.RetainUntil = at(time.Second) // the TTL comes first
	commitWait(t, s, true, evRetain("expiry/1s", "v", at(time.Second)), ttl("ttl/1s", time.Second),
		ttl("ttl/1h", time.Hour), evRetain("forever", "v", 0), both)

	c.Add(999 * time.Millisecond)
	if rep := compactNow(t, s, CompactOptions{}); rep.RetainedExpired != 0 {
		t.Fatalf("expired %d before their deadline", rep.RetainedExpired)
	}
	c.Add(time.Millisecond)
	// Due but not swept yet: readers already skip them.
	if got, want := retainedTopics(t, s), []string{"forever", "ttl/1h"}; !slices.Equal(got, want) {
		t.Fatalf("ForEachRetained between sweeps = %q, want %q", got, want)
	}
	var told []string
	rep := compactNow(t, s, CompactOptions{OnRetainedExpired: func(topics []string, _ int64) { told = append(told, topics...) }})
	if rep.RetainedExpired != 3 || len(told) != 3 {
		t.Fatalf("expired %d (told %q), want 3", rep.RetainedExpired, told)
	}
	if got, want := projection(t, s), []string{"r/forever", "r/ttl/1h", fmt.Sprintf("x/%d/ttl/1h", at(time.Hour-time.Second))}; !slices.Equal(got, want) {
		t.Fatalf("projection %q, want %q", got, want)
	}
	if n := countKind(t, s, EvRetainedExpired); n != 3 {
		t.Fatalf("%d retained-expired events logged, want 3", n)
	}
	if rep := compactNow(t, s, CompactOptions{}); rep.RetainedExpired != 0 || len(rep.Pauses) != 0 {
		t.Fatalf("second pass did something: %+v", rep)
	}
}

// Deadlines are absolute: a store reopened after the clock moved on (the
// broker was down) hides and then expires what came due meanwhile.
func TestRetainedExpiryAcrossRestart(t *testing.T) {
	c := newClock()
	fs := vfs.NewMem()
	s := openClock(t, fs, c)
	ev := evRetain("r", "v", 0)
	ev.Msg.RetainUntil = c.Now().Add(time.Minute).UnixNano()
	commitWait(t, s, true, ev, evRetain("keep", "v", c.Now().Add(time.Hour).UnixNano()))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Minute)
	s = openClock(t, fs, c)
	defer s.Close()
	if got := retainedTopics(t, s); !slices.Equal(got, []string{"keep"}) {
		t.Fatalf("after restart ForEachRetained = %q", got)
	}
	if rep := compactNow(t, s, CompactOptions{}); rep.RetainedExpired != 1 {
		t.Fatalf("expired %d after restart, want 1", rep.RetainedExpired)
	}
}

// Queued messages whose 5.0 expiry passed leave the disk queues through the
// y/ index: only where the caller allows, never in PUBREC state, and a pass
// makes progress past entries it must skip.
func TestCompactExpiresQueued(t *testing.T) {
	c := newClock()
	s := openClock(t, vfs.NewMem(), c)
	defer s.Close()
	exp := func(topic string, d time.Duration, targets ...string) *Event {
		ev := evPub(topic, "payload", targets...)
		ev.Msg.ExpiresAt = c.Now().Add(d).UnixNano()
		return ev
	}
	commitWait(t, s, true,
		exp("a", time.Second, "busy", "off"), // busy/1, off/1
		exp("b", time.Hour, "off"),           // off/2
		exp("c", time.Second, "off"),         // off/3
		evPub("d", "no expiry", "off"),       // off/4
		exp("e", time.Second, "q2"),          // q2/1
		exp("f", time.Second, "q2", "busy"),  // q2/2, busy/2
	)
	commitWait(t, s, true, evPubrec("q2", 1))
	c.Add(2 * time.Second)
	lock := func(client string) (func(), uint64, bool) { return func() {}, 0, client != "busy" }
	var told []QueueRef
	rep := compactNow(t, s, CompactOptions{LockQueue: lock, OnQueueExpired: func(r []QueueRef) { told = append(told, r...) }})
	if rep.QueuedExpired != 3 || rep.QueuedSkipped != 3 {
		t.Fatalf("expired %d skipped %d, want 3 and 3 (busy/1, busy/2, q2/1 in PUBREC)", rep.QueuedExpired, rep.QueuedSkipped)
	}
	slices.SortFunc(told, func(a, b QueueRef) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	if want := []QueueRef{{"off", 1}, {"off", 3}, {"q2", 2}}; !slices.Equal(told, want) {
		t.Fatalf("told %+v, want %+v", told, want)
	}
	for client, want := range map[string]QueueInfo{"off": {Head: 2, Next: 5, Count: 2, Bytes: 16}, "q2": {Head: 1, Next: 3, Count: 1, Bytes: 7}, "busy": {Head: 1, Next: 3, Count: 2, Bytes: 14}} {
		if qi := s.QueueInfo(client); qi != want {
			t.Errorf("queue %s = %+v, want %+v", client, qi, want)
		}
	}
	if n := countKind(t, s, EvDropped); n != 3 {
		t.Fatalf("%d dropped events logged, want 3", n)
	}
	// Once the busy client lets go, its entries expire too.
	rep = compactNow(t, s, CompactOptions{})
	if rep.QueuedExpired != 2 || rep.QueuedSkipped != 1 {
		t.Fatalf("second pass expired %d skipped %d", rep.QueuedExpired, rep.QueuedSkipped)
	}
}

// What may have been sent is never expired: its onward delivery has started,
// so it must be resent when the client reconnects (MQTT-4.4.0-1). The
// watermark comes from LockQueue, or on a stopped broker's store from the
// session record, where a session a crash left connected (no known
// watermark) keeps everything.
func TestCompactSparesWhatMayHaveBeenSent(t *testing.T) {
	c := newClock()
	s := openClock(t, vfs.NewMem(), c)
	defer s.Close()
	closed := func(client string, sentBelow uint64) *Event {
		return &Event{Kind: EvSessionClosed, Client: client, Session: &Session{ClientID: client, Version: 5, ExpiryInterval: 0xFFFFFFFF, SentBelow: sentBelow, SentKnown: true}}
	}
	crashed := &Event{Kind: EvSessionOpened, Client: "crashed", Session: &Session{ClientID: "crashed", Version: 5, ExpiryInterval: 0xFFFFFFFF, Connected: true}}
	commitWait(t, s, true, closed("sent2", 3), closed("live", 1), crashed)
	for range 3 {
		ev := evPub("t", "payload", "sent2", "live", "crashed")
		ev.Msg.ExpiresAt = c.Now().Add(time.Second).UnixNano()
		commitWait(t, s, true, ev)
	}
	c.Add(time.Minute)
	// The engine's watermark for "live" (2 sent since its record) wins
	// over the record's.
	lock := func(client string) (func(), uint64, bool) {
		if client == "live" {
			return nil, 3, true
		}
		return nil, 0, false
	}
	if rep := compactNow(t, s, CompactOptions{LockQueue: lock}); rep.QueuedExpired != 1 || s.QueueInfo("live").Count != 2 {
		t.Fatalf("with LockQueue: expired %d, live queue %+v; want only live/3 expired", rep.QueuedExpired, s.QueueInfo("live"))
	}
	// Without the engine, the records say: sent2 sent 1 and 2; live sent
	// nothing; crashed may have been sent anything.
	rep := compactNow(t, s, CompactOptions{})
	if rep.QueuedExpired != 3 {
		t.Fatalf("from the records: expired %d, want 3 (sent2/3, live/1, live/2)", rep.QueuedExpired)
	}
	for client, want := range map[string]int{"sent2": 2, "live": 0, "crashed": 3} {
		if qi := s.QueueInfo(client); qi.Count != want {
			t.Errorf("queue %s = %+v, want %d entries", client, qi, want)
		}
	}
}

// A pass that examines only a few index keys continues where the last one
// stopped, so entries it must skip cannot starve the ones behind them.
func TestCompactQueueCursor(t *testing.T) {
	c := newClock()
	s := openClock(t, vfs.NewMem(), c)
	defer s.Close()
	for i := range 10 {
		ev := evPub("t", "x", "busy")
		ev.Msg.ExpiresAt = c.Now().Add(time.Duration(i) * time.Millisecond).UnixNano()
		commitWait(t, s, true, ev)
	}
	late := evPub("t", "x", "free")
	late.Msg.ExpiresAt = c.Now().Add(time.Second).UnixNano()
	commitWait(t, s, true, late)
	c.Add(time.Hour)
	lock := func(client string) (func(), uint64, bool) { return nil, 0, client != "busy" }
	expired := 0
	for pass := 0; pass < 5 && expired == 0; pass++ {
		expired += compactNow(t, s, CompactOptions{LockQueue: lock, Batch: 2, MaxQueueScan: 4}).QueuedExpired
	}
	if expired != 1 || s.QueueInfo("free").Count != 0 {
		t.Fatalf("expired %d, free queue %+v", expired, s.QueueInfo("free"))
	}
}

// Full mode removes bodies and refcounts nothing references; a healthy
// store has none.
func TestCompactCollectsOrphans(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	commitWait(t, s, true, evPub("t", "abc", "c1", "c2"), evPub("t", "d", "c1"))
	if rep := compactNow(t, s, CompactOptions{Full: true}); rep.BodiesCollected != 0 {
		t.Fatalf("healthy store: collected %d", rep.BodiesCollected)
	}
	// Orphans as a buggy version might have left them.
	_ = s.db.Set(msgKey(nil, 77), []byte{0x80}, pebble.Sync)
	_ = s.db.Set(refKey(nil, 77), []byte{3}, pebble.Sync)
	_ = s.db.Set(refKey(nil, 78), []byte{2}, pebble.Sync)
	if err := s.Verify(); err == nil {
		t.Fatal("Verify missed the orphans")
	}
	if rep, err := s.Compact(context.Background(), CompactOptions{}); err != nil || rep.BodiesCollected != 0 {
		t.Fatalf("orphans collected without Full: %+v, %v", rep, err)
	}
	o := CompactOptions{Full: true, Gap: -1}
	rep, err := s.Compact(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BodiesCollected != 1 {
		t.Fatalf("collected %d bodies, want 1", rep.BodiesCollected)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	if got := projection(t, s); !slices.Contains(got, "m/1") || !slices.Contains(got, "q/c1/2+body") || slices.Contains(got, "m/77") || slices.Contains(got, "c/78=2") {
		t.Fatalf("projection %q", got)
	}
	if n := countKind(t, s, EvBodyCollected); n != 2 {
		t.Fatalf("%d body-collected events, want 2 (ids 77 and 78)", n)
	}
}

// The log is truncated past its retention window, by time and by size.
func TestCompactTruncatesLog(t *testing.T) {
	c := newClock()
	s := openClock(t, vfs.NewMem(), c)
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		big := make([]byte, 1000) // incompressible, so the log's size is its payloads
		for j := range big {
			big[j] = byte(rng.Uint32())
		}
		ev := evPub("t", string(big))
		ev.Time = c.Now().UnixNano()
		commitWait(t, s, false, ev)
		if i%100 == 99 {
			c.Add(time.Minute) // 100 events a minute
		}
	}
	rep := compactNow(t, s, CompactOptions{EventRetention: 5 * time.Minute})
	// Events stamped in the last five minutes (now-5m included) are kept:
	// minutes 15..19 of the 20.
	if rep.EventsTruncated != 1500 || rep.LogFirstSeq != 1501 {
		t.Fatalf("time retention truncated %d, first seq %d", rep.EventsTruncated, rep.LogFirstSeq)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	before, _ := s.logBytesFrom(rep.LogFirstSeq)
	rep = compactNow(t, s, CompactOptions{EventRetentionBytes: 100 << 10, CompactThreshold: 1})
	after, _ := s.logBytesFrom(rep.LogFirstSeq)
	// After Pebble compacted the freed span, the truncated events no longer
	// take disk space: the whole e/ range is about what is left.
	if whole, _ := s.logBytesFrom(0); whole > after+after/4 {
		t.Fatalf("the e/ range still takes %d bytes on disk, the live log %d", whole, after)
	}
	t.Logf("size retention: %d events truncated, log %d -> %d bytes", rep.EventsTruncated, before, after)
	if rep.EventsTruncated == 0 || after > 100<<10 || rep.LogFirstSeq > s.LastSeq() {
		t.Fatalf("size retention: truncated %d, log now %d bytes from seq %d", rep.EventsTruncated, after, rep.LogFirstSeq)
	}
	if rep.Compactions == 0 {
		t.Fatal("freed log span not compacted")
	}
	n := 0
	if err := s.Events(0, func(*Event) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if uint64(n) != s.LastSeq()-rep.LogFirstSeq+1 {
		t.Fatalf("%d events left, first %d last %d", n, rep.LogFirstSeq, s.LastSeq())
	}
}

// Every commit of a pass is bounded by Batch and its mutex hold time is
// recorded.
func TestCompactRecordsPauses(t *testing.T) {
	c := newClock()
	s := openClock(t, vfs.NewMem(), c)
	defer s.Close()
	for i := range 1000 {
		commitWait(t, s, false, evRetain(fmt.Sprintf("t/%d", i), "v", c.Now().Add(time.Second).UnixNano()))
	}
	c.Add(time.Minute)
	rep := compactNow(t, s, CompactOptions{Batch: 100})
	if rep.RetainedExpired != 1000 || len(rep.Pauses) != 10 {
		t.Fatalf("expired %d in %d commits, want 1000 in 10", rep.RetainedExpired, len(rep.Pauses))
	}
	var sum time.Duration
	for _, p := range rep.Pauses {
		if p <= 0 {
			t.Fatalf("pause %v not measured", p)
		}
		sum += p
	}
	if sum != rep.TotalPause || rep.MaxPause < sum/10 {
		t.Fatalf("pauses %v: total %v max %v", rep.Pauses, rep.TotalPause, rep.MaxPause)
	}
	t.Logf("100-event expiry commits held the mutex: max %v, total %v", rep.MaxPause, rep.TotalPause)
}
