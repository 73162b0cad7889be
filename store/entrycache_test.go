package store

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestEntryWindow(t *testing.T) {
	var c entryCache
	ref := func(id uint64) entryRef { return entryRef{msgID: id, size: 1, inline: true} }
	empty := QueueInfo{Head: 5, Next: 5}
	c.added("a", 5, ref(5), empty)
	c.added("a", 6, ref(6), QueueInfo{Head: 5, Next: 6, Count: 1})
	c.added("a", 7, ref(7), QueueInfo{Head: 5, Next: 7, Count: 2})
	if !c.complete("a") || c.total != 3 {
		t.Fatalf("window on an empty queue: complete %v, %d slots", c.complete("a"), c.total)
	}
	qi := QueueInfo{Head: 5, Next: 8, Count: 3}
	if !c.readFree("a", 6, qi, &refCache{}) || !c.readFree("a", 4, qi, &refCache{}) || !c.readFree("a", 9, qi, &refCache{}) {
		t.Fatal("inline entries and seqs outside the queue need no read")
	}
	if r, st := c.take("a", 6); st != entryLive || r.msgID != 6 {
		t.Fatalf("take 6: %+v %v", r, st)
	}
	if _, st := c.take("a", 6); st != entryDead {
		t.Fatalf("take 6 twice: %v", st)
	}
	if _, st := c.take("a", 5); st != entryLive || c.window("a").base != 7 || c.total != 1 {
		t.Fatalf("removing the head pops the dead slots: base %d, %d slots", c.window("a").base, c.total)
	}
	if _, st := c.take("a", 3); st != entryUnknown {
		t.Fatalf("seq below the window: %v", st)
	}
	c.take("a", 7)
	c.settled("a", QueueInfo{Head: 8, Next: 8})
	if w := c.window("a"); w.base != 8 || len(w.slots) != 0 || !w.complete || c.total != 0 {
		t.Fatalf("emptied queue: %+v, total %d", w, c.total)
	}

	// A window started on a queue with older (uncached) entries is not
	// complete until the head reaches it.
	c.added("b", 10, ref(10), QueueInfo{Head: 8, Next: 10, Count: 2})
	if c.complete("b") || c.readFree("b", 10, QueueInfo{Head: 8, Next: 11, Count: 3}, &refCache{}) {
		t.Fatal("window over part of the queue claims to be complete")
	}
	c.settled("b", QueueInfo{Head: 10, Next: 11, Count: 1})
	if !c.complete("b") {
		t.Fatal("head reached the window's base: complete")
	}
	// A shared body's refcount must be read.
	c.added("b", 11, entryRef{msgID: 11}, QueueInfo{Head: 10, Next: 11, Count: 1})
	if c.readFree("b", 11, QueueInfo{Head: 10, Next: 12, Count: 2}, &refCache{}) {
		t.Fatal("a shared entry's removal needs the refcount")
	}
	var refs refCache
	refs.added(11, 3)
	if !c.readFree("b", 11, QueueInfo{Head: 10, Next: 12, Count: 2}, &refs) {
		t.Fatal("a shared entry whose refcount is cached needs no read")
	}
	// Caps: the window stops and is no longer complete.
	defer func(w int) { entryWindowMax = w }(entryWindowMax)
	entryWindowMax = 2
	c.added("b", 12, ref(12), QueueInfo{Head: 10, Next: 12, Count: 2})
	if c.complete("b") || !c.window("b").capped {
		t.Fatal("capped window still complete")
	}
	if _, st := c.take("b", 12); st != entryUnknown {
		t.Fatal("an entry past the cap is known")
	}
	c.dropped("b")
	if c.window("b") != nil || c.total != 0 {
		t.Fatalf("dropped: %d slots left", c.total)
	}
	c.added("a", 8, ref(8), QueueInfo{Head: 8, Next: 8})
	c.reset()
	if c.window("a") != nil || c.total != 0 {
		t.Fatal("reset")
	}
	var off entryCache
	off.off = true
	off.added("a", 1, ref(1), QueueInfo{Head: 1, Next: 1})
	if off.window("a") != nil {
		t.Fatal("a cache that is off cached")
	}
}

// subscriberWorkload is commits as a broker makes them for subscribers that
// keep up: publishes to a few queues (small bodies, inline; sometimes large,
// shared), acks mostly at the head, sometimes out of order or repeated, with
// drops, deliveries, PUBRECs, queue limits and session drops mixed in.
type subscriberWorkload struct {
	rng *rand.Rand
	s   *Store
	gen *workload
}

func (w *subscriberWorkload) commit() []*Event {
	r := w.rng
	if r.IntN(10) < 3 {
		return w.gen.commit(4) // the general workload too
	}
	clients := []string{"s0", "s1", "s2", "s3/x"}
	var evs []*Event
	for range 1 + r.IntN(6) {
		c := clients[r.IntN(len(clients))]
		qi := w.s.QueueInfo(c)
		switch x := r.IntN(100); {
		case x < 35:
			payload := strings.Repeat("p", r.IntN(64))
			if r.IntN(4) == 0 {
				payload = strings.Repeat("L", 200+r.IntN(100)) // a larger body
			}
			ev := &Event{Kind: EvPublished, Client: "pub", Msg: &Message{Topic: "t", Payload: []byte(payload), QoS: 1}}
			for range 1 + r.IntN(3) {
				ev.Targets = append(ev.Targets, Target{Client: clients[r.IntN(len(clients))], QoS: 1})
			}
			if r.IntN(6) == 0 {
				ev.Msg.ExpiresAt = 2_000_000 + int64(r.IntN(1000))
			}
			if r.IntN(12) == 0 {
				ev.Limit = &QueueLimit{Count: uint32(1 + r.IntN(4)), Policy: LimitPolicy(r.IntN(3))}
			}
			evs = append(evs, ev)
		case x < 75:
			evs = append(evs, &Event{Kind: EvAcked, Client: c, QSeq: qi.Head})
		case x < 80: // several acks in one event
			ev := &Event{Kind: EvAcked, Client: c, QSeq: qi.Head}
			for i := range uint64(r.IntN(4)) {
				ev.QSeqs = append(ev.QSeqs, qi.Head+1+i+uint64(r.IntN(2)))
			}
			evs = append(evs, ev)
		case x < 85:
			seq := qi.Head + uint64(r.IntN(int(qi.Next-qi.Head)+3))
			if seq >= 2 && r.IntN(2) == 0 {
				seq -= 2
			}
			evs = append(evs, &Event{Kind: EvAcked, Client: c, QSeq: seq})
		case x < 90:
			evs = append(evs, &Event{Kind: EvDropped, Client: c, QSeq: qi.Head, Reason: "test"})
		case x < 94:
			evs = append(evs, &Event{Kind: EvDelivered, Client: c, QSeq: qi.Head, PacketID: 1})
		case x < 97:
			evs = append(evs, &Event{Kind: EvPubrecReceived, Client: c, QSeq: qi.Head})
		default:
			evs = append(evs, &Event{Kind: EvSessionDropped, Client: c})
		}
	}
	return evs
}

// The entry and refcount caches change no result: the same commits on a
// store with the caches and on one without give identical keys, values and queue summaries,
// with the default limits and with limits so small that windows are capped
// all the time; and the cache is really used (plain batches for acks).
func TestEntryCacheMatchesReads(t *testing.T) {
	commits := 1500
	if raceEnabled {
		commits = 300
	}
	for _, lim := range []struct{ window, total, refs int }{{entryWindowMax, entryCacheMax, refCacheMax}, {3, 8, 4}} {
		t.Run(fmt.Sprintf("window%d-total%d-refs%d", lim.window, lim.total, lim.refs), func(t *testing.T) {
			defer func(w, c, r int) { entryWindowMax, entryCacheMax, refCacheMax = w, c, r }(entryWindowMax, entryCacheMax, refCacheMax)
			entryWindowMax, entryCacheMax, refCacheMax = lim.window, lim.total, lim.refs
			a, b := openTest(t, vfs.NewMem()), openTest(t, vfs.NewMem())
			defer a.Close()
			defer b.Close()
			b.entries.off, b.refs.off = true, true
			const seed = 7
			wa := &subscriberWorkload{rng: rand.New(rand.NewPCG(seed, 1)), s: a, gen: newWorkload(a, seed)}
			wb := &subscriberWorkload{rng: rand.New(rand.NewPCG(seed, 1)), s: b, gen: newWorkload(b, seed)}
			plain := 0
			reads := rand.New(rand.NewPCG(seed, 2))
			for i := range commits {
				if reads.IntN(4) == 0 {
					// A page read, as a drain makes them (which may extend the
					// entry cache), sometimes with a commit between its
					// snapshot and its end (a stale page must not).
					c := []string{"s0", "s1", "s2", "s3/x"}[reads.IntN(4)]
					from := a.QueueInfo(c).Head + uint64(reads.IntN(3))
					limit := reads.IntN(8)
					var hookErr error
					during := reads.IntN(3) == 0
					if during {
						a.queueReadHook = func() {
							a.queueReadHook = nil
							hookErr = commitWaitErr(a, true, wa.commit()...)
						}
					}
					pa, errA := a.ReadQueue(c, from, math.MaxUint64, limit)
					pb, errB := b.ReadQueue(c, from, math.MaxUint64, limit)
					if errA != nil || errB != nil || len(pa) != len(pb) {
						t.Fatalf("read %d of %q from %d: %d entries (%v), without cache %d (%v)", i, c, from, len(pa), errA, len(pb), errB)
					}
					for k := range pa {
						if pa[k].Seq != pb[k].Seq {
							t.Fatalf("read %d: entry %d has seq %d, without cache %d", i, k, pa[k].Seq, pb[k].Seq)
						}
					}
					if during && a.queueReadHook != nil {
						a.queueReadHook() // the read returned early: commit after it
					}
					if during {
						if errB := commitWaitErr(b, true, wb.commit()...); (hookErr == nil) != (errB == nil) {
							t.Fatalf("commit during read %d: with cache %v, without %v", i, hookErr, errB)
						}
					}
				}
				ea, eb := wa.commit(), wb.commit()
				if !a.anyReads(ea) && !a.mayDrop(ea) {
					plain++
				}
				errA, errB := commitWaitErr(a, i%2 == 0, ea...), commitWaitErr(b, i%2 == 0, eb...)
				if (errA == nil) != (errB == nil) {
					t.Fatalf("commit %d: with cache %v, without %v", i, errA, errB)
				}
				if i%300 == 299 {
					sameState(t, fmt.Sprintf("after commit %d", i), a, b)
				}
			}
			sameState(t, "end", a, b)
			if err := a.Verify(); err != nil {
				t.Fatal(err)
			}
			if lim.window == entryWindowMax && plain < commits/10 {
				t.Fatalf("only %d of %d commits without reads: the cache is not used", plain, commits)
			}
			t.Logf("%d of %d commits needed no index", plain, commits)
		})
	}
}
