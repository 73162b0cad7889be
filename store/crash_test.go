package store

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-mqtt/cairn/store/storetest"
)

var crashSeed = flag.Uint64("store.seed", 0, "seed for the power-cut tests (0: time-based)")

// powerCut configures a power-cut run: rounds × cuts crash points.
type powerCut struct {
	rounds, cuts     int
	workers, commits int // per round: goroutines × commits each
	maxEvents        int // events per commit
	durablePct       int // share of durable commits
	unsyncedPcts     []int
}

// TestPowerCut commits durable (and some non-durable) events from several
// goroutines, some waiting for each completion and some pipelining, and
// takes CrashClones of the filesystem at random moments. Every clone must
// reopen to a state that (1) reflects every durable commit whose done
// callback had fired before the cut, (2) ends on a commit boundary, and
// (3) equals, key for key, a fresh store into which the original log was
// replayed up to the clone's LastSeq — so no commit is applied in part, and
// none without every commit before it.
func TestPowerCut(t *testing.T) {
	pc := powerCut{rounds: 10, cuts: 10, workers: 4, commits: 120, maxEvents: 4, durablePct: 80, unsyncedPcts: []int{0, 0, 10, 50, 100}}
	if raceEnabled {
		pc.commits = 50
	}
	if *longTests {
		pc.rounds, pc.commits = 100, 300
	}
	runPowerCut(t, pc)
}

// TestPowerCutNoSync: commits that were never synced may be lost, but never
// partially applied: each clone is still an exact prefix of whole commits.
// Only Pebble's own WAL rotations sync anything here.
func TestPowerCutNoSync(t *testing.T) {
	pc := powerCut{rounds: 5, cuts: 10, workers: 2, commits: 150, maxEvents: 6, durablePct: 0, unsyncedPcts: []int{0, 20, 50, 80, 100}}
	if raceEnabled {
		pc.commits = 60
	}
	if *longTests {
		pc.rounds = 50
	}
	runPowerCut(t, pc)
}

func runPowerCut(t *testing.T, pc powerCut) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -store.seed=%d)", seed, seed)
	total := 0
	for round := 0; round < pc.rounds; round++ {
		total += powerCutRound(t, pc, seed, round)
		if t.Failed() {
			t.Fatalf("failed with seed %d, round %d", seed, round)
		}
	}
	t.Logf("%d cut points checked", total)
}

// cut is one simulated power loss.
type cut struct {
	fs         *vfs.MemFS
	unsynced   int
	mustReach  uint64 // last seq of the newest durable commit completed before the cut
	takenAfter uint64 // LastSeq when the cut was taken, for messages
}

// recorder tracks commit boundaries and durable completions.
type recorder struct {
	mu         sync.Mutex
	boundaries map[uint64]bool // last seq of every commit, and 0
	durableTo  uint64          // highest durable commit whose done fired with nil
}

func powerCutRound(t *testing.T, pc powerCut, seed uint64, round int) int {
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("seed %d round %d: %s", seed, round, fmt.Sprintf(format, args...))
	}
	rng := rand.New(rand.NewPCG(seed, uint64(round)))
	fs := storetest.NewCrashFS()
	s := openTest(t, fs)
	rec := &recorder{boundaries: map[uint64]bool{0: true}}

	// Cut targets: LastSeq values at which to cut, spread over the round.
	expected := pc.workers * pc.commits * (pc.maxEvents + 1) / 2
	targets := make([]uint64, pc.cuts)
	for i := range targets {
		targets[i] = uint64(rng.IntN(expected))
	}
	slices.Sort(targets)

	var wg sync.WaitGroup
	workersDone := make(chan struct{})
	for g := 0; g < pc.workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wseed := seed ^ uint64(round)<<20 ^ uint64(g)<<8
			w := newWorkload(s, wseed)
			wr := rand.New(rand.NewPCG(wseed, 7))
			pipelined := g%2 == 1 // odd workers never wait
			for i := 0; i < pc.commits; i++ {
				evs := w.commit(pc.maxEvents)
				durable := wr.IntN(100) < pc.durablePct
				ch := make(chan struct{})
				err := s.Commit(evs, durable, func(err error) {
					defer close(ch)
					if err != nil {
						fail("done: %v", err)
						return
					}
					if durable {
						rec.mu.Lock()
						rec.durableTo = max(rec.durableTo, evs[len(evs)-1].Seq)
						rec.mu.Unlock()
					}
				})
				if err != nil {
					fail("commit: %v", err)
					return
				}
				rec.mu.Lock()
				rec.boundaries[evs[len(evs)-1].Seq] = true
				rec.mu.Unlock()
				if !pipelined {
					<-ch
				}
			}
		}()
	}
	go func() { wg.Wait(); close(workersDone) }()

	var cuts []cut
	takeCut := func() {
		rec.mu.Lock()
		must := rec.durableTo
		rec.mu.Unlock()
		pct := pc.unsyncedPcts[rng.IntN(len(pc.unsyncedPcts))]
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: pct}
		if pct > 0 {
			cfg.RNG = rand.New(rand.NewPCG(rng.Uint64(), 1))
		}
		last := s.LastSeq()
		cuts = append(cuts, cut{fs: fs.CrashClone(cfg), unsynced: pct, mustReach: must, takenAfter: last})
	}
	for _, target := range targets {
	wait:
		for s.LastSeq() < target {
			select {
			case <-workersDone:
				break wait
			default:
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
			}
		}
		takeCut()
	}
	<-workersDone

	var log []*Event
	if err := s.Events(0, func(ev *Event) error { log = append(log, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Open every clone, then check them in LastSeq order against one
	// reference store that replays the log incrementally.
	type opened struct {
		cut
		last   uint64
		dump   []kv
		queues []string
	}
	var got []opened
	for i, c := range cuts {
		cs, err := Open("db", testOptions(c.fs))
		if err != nil {
			fail("cut %d (unsynced %d%%, taken at seq %d): reopen: %v", i, c.unsynced, c.takenAfter, err)
			continue
		}
		if err := cs.Verify(); err != nil {
			fail("cut %d: %v", i, err)
		}
		got = append(got, opened{cut: c, last: cs.LastSeq(), dump: dump(t, cs), queues: sortedQueues(cs.copyQueues())})
		if err := cs.Close(); err != nil {
			fail("cut %d: close: %v", i, err)
		}
	}
	sort.SliceStable(got, func(i, j int) bool { return got[i].last < got[j].last })

	ref := openTest(t, vfs.NewMem())
	defer ref.Close()
	next := 0
	for i, g := range got {
		if g.last < g.mustReach {
			fail("cut (unsynced %d%%): LastSeq %d, but durable commits through %d had completed", g.unsynced, g.last, g.mustReach)
		}
		if !rec.boundaries[g.last] {
			fail("cut (unsynced %d%%): LastSeq %d is inside a commit", g.unsynced, g.last)
		}
		for next < len(log) && log[next].Seq <= g.last {
			if err := ref.ReplayEvent(log[next]); err != nil {
				t.Fatal(err)
			}
			next++
		}
		if diff := diffDumps(dump(t, ref), g.dump); diff != "" {
			fail("cut %d (unsynced %d%%, LastSeq %d) differs from the replayed prefix:\n%s", i, g.unsynced, g.last, diff)
		}
		if want := sortedQueues(ref.copyQueues()); !slices.Equal(want, g.queues) {
			fail("cut %d: queue infos %v, want %v", i, g.queues, want)
		}
	}

	// The cleanly closed original holds everything.
	orig := openTest(t, fs)
	defer orig.Close()
	for ; next < len(log); next++ {
		if err := ref.ReplayEvent(log[next]); err != nil {
			t.Fatal(err)
		}
	}
	sameState(t, "closed original vs full replay", orig, ref)
	return len(got)
}

// diffDumps describes the first few differences between two dumps.
func diffDumps(a, b []kv) string {
	var out bytes.Buffer
	n := 0
	i, j := 0, 0
	for (i < len(a) || j < len(b)) && n < 8 {
		switch {
		case j >= len(b) || (i < len(a) && bytes.Compare(a[i].k, b[j].k) < 0):
			fmt.Fprintf(&out, "  missing %s\n", renderKey(a[i].k, a[i].v))
			i++
			n++
		case i >= len(a) || bytes.Compare(a[i].k, b[j].k) > 0:
			fmt.Fprintf(&out, "  extra %s\n", renderKey(b[j].k, b[j].v))
			j++
			n++
		default:
			if !bytes.Equal(a[i].v, b[j].v) {
				fmt.Fprintf(&out, "  value of %s\n", renderKey(a[i].k, a[i].v))
				n++
			}
			i++
			j++
		}
	}
	return out.String()
}
