package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/cairn-mqtt/cairn/store/storetest"
)

// Completions run in commit order, whatever mix of durable and non-durable
// commits many goroutines make, and a non-durable completion never overtakes
// an earlier durable one.
func TestCompletionOrder(t *testing.T) {
	s := openTest(t, vfs.NewCrashableMem())
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				ev := evPub("t", "x", fmt.Sprintf("c%d", g))
				durable := (i+g)%3 != 0
				err := s.Commit([]*Event{ev}, durable, func(err error) {
					if err != nil {
						t.Errorf("done: %v", err)
					}
					mu.Lock()
					order = append(order, ev.Seq)
					mu.Unlock()
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(order) != 1600 {
		t.Fatalf("%d completions, want 1600", len(order))
	}
	for i, seq := range order {
		if seq != uint64(i+1) {
			t.Fatalf("completion %d has seq %d: out of order", i, seq)
		}
	}
	st := s.CommitStats()
	t.Logf("commits %d syncs %d", st.Commits, st.Syncs)
	if st.Commits != 1600 || st.Syncs == 0 || st.Syncs > st.Commits {
		t.Fatalf("stats %+v", st)
	}
}

// A done callback may commit again (the completion goroutine holds no lock
// while calling it), chaining commits without deadlock.
func TestCallbackMayCommit(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	finished := make(chan error, 1)
	var step func(n int) func(error)
	step = func(n int) func(error) {
		return func(err error) {
			if err != nil || n == 50 {
				finished <- err
				return
			}
			if err := s.Commit([]*Event{evPub("t", "x", "c1")}, n%2 == 0, step(n+1)); err != nil {
				finished <- err
			}
		}
	}
	if err := s.Commit([]*Event{evOpen("c1")}, true, step(0)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-finished:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("chained commits deadlocked")
	}
	if qi := s.QueueInfo("c1"); qi.Count != 50 {
		t.Fatalf("queue %+v", qi)
	}
}

// An empty commit is an ordering barrier; Sync waits for the disk.
func TestBarrierAndSync(t *testing.T) {
	fs := storetest.NewCrashFS()
	s := openTest(t, fs)
	defer s.Close()
	// A barrier on a fresh store completes at once.
	if err := commitWaitErr(s, true); err != nil {
		t.Fatal(err)
	}
	var got []string
	var mu sync.Mutex
	rec := func(name string) func(error) {
		return func(error) { mu.Lock(); got = append(got, name); mu.Unlock() }
	}
	_ = s.Commit([]*Event{evOpen("a")}, true, rec("a"))
	_ = s.Commit(nil, false, rec("barrier"))
	_ = s.Commit([]*Event{evOpen("b")}, false, nil)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if strings.Join(got, ",") != "a,barrier" {
		t.Fatalf("completions %v", got)
	}
	mu.Unlock()
	// Sync made the non-durable "b" durable: it survives a power cut.
	clone := fs.CrashClone(vfs.CrashCloneCfg{})
	c := openTest(t, clone)
	defer c.Close()
	if c.LastSeq() != 2 {
		t.Fatalf("after Sync and crash: LastSeq %d", c.LastSeq())
	}
}

// Close makes even non-durable commits durable, and runs every completion.
func TestCloseSyncsAndDrains(t *testing.T) {
	fs := storetest.NewCrashFS()
	s := openTest(t, fs)
	var done atomic.Int32
	for i := 0; i < 300; i++ {
		if err := s.Commit([]*Event{evPub("t", "x", "c1")}, i%10 == 0, func(error) { done.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if done.Load() != 300 {
		t.Fatalf("%d of 300 completions ran before Close returned", done.Load())
	}
	c := openTest(t, fs.CrashClone(vfs.CrashCloneCfg{}))
	defer c.Close()
	if c.LastSeq() != 300 || c.QueueInfo("c1").Count != 300 {
		t.Fatalf("after Close and crash: LastSeq %d queue %+v", c.LastSeq(), c.QueueInfo("c1"))
	}
}

// A failed WAL fsync fails the store: the affected commits' callbacks get an
// error wrapping ErrFailed, and every later Commit is refused. The error is
// never swallowed as success.
func TestSyncFailureFailsStore(t *testing.T) {
	var armed atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if armed.Load() && strings.HasSuffix(op.Path, ".log") &&
			(op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
			return errors.New("injected fsync error")
		}
		return nil
	})
	s := openTest(t, errorfs.Wrap(vfs.NewMem(), inj))
	commitWait(t, s, true, evOpen("c1"))
	armed.Store(true)
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		if err := s.Commit([]*Event{evPub("t", "x", "c1")}, i != 1, func(err error) { errs <- err }); err != nil {
			// The failure may already have been recorded by an earlier sync.
			if !errors.Is(err, ErrFailed) {
				t.Fatal(err)
			}
			errs <- err
		}
	}
	for i := 0; i < 3; i++ {
		if err := <-errs; !errors.Is(err, ErrFailed) {
			t.Fatalf("completion %d after fsync failure: %v", i, err)
		}
	}
	if err := s.Commit([]*Event{evOpen("c2")}, false, nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("Commit on a failed store: %v", err)
	}
	if err := s.Sync(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Sync on a failed store: %v", err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close of a failed store reported no error")
	}
}
