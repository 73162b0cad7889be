package store

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/cairn-mqtt/cairn/store/storetest"
)

const (
	testReserve = 64 << 20
	plenty      = 10 << 30
)

func openSpace(t *testing.T, fs vfs.FS, log *slog.Logger) *Store {
	t.Helper()
	o := testOptions(fs)
	o.MinFreeSpace = testReserve
	o.SpaceCheckInterval = 2 * time.Millisecond
	o.SpaceLogInterval = time.Hour
	if log != nil {
		o.Logger = log
	}
	s, err := Open("db", o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// waitLow waits until the guard's state is low.
func waitLow(t *testing.T, s *Store, low bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Space().Low != low {
		if time.Now().After(deadline) {
			t.Fatalf("free-space guard not low=%v after 5s: %+v", low, s.Space())
		}
		time.Sleep(time.Millisecond)
	}
}

func refused(t *testing.T, s *Store, what string, evs ...*Event) {
	t.Helper()
	before, seq := s.Space().Refused, s.LastSeq()
	err := s.Commit(evs, true, func(error) { t.Errorf("%s: the callback of a refused commit ran", what) })
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("%s below the reserve: Commit = %v, want ErrNoSpace", what, err)
	}
	if s.LastSeq() != seq || s.Space().Refused != before+1 {
		t.Fatalf("%s: refused commit changed LastSeq %d → %d, refused %d → %d", what, seq, s.LastSeq(), before, s.Space().Refused)
	}
}

func accepted(t *testing.T, s *Store, what string, evs ...*Event) {
	t.Helper()
	if err := commitWaitErr(s, true, evs...); err != nil {
		t.Fatalf("%s below the reserve: %v, want it accepted", what, err)
	}
}

// Below the reserve, the store refuses exactly the commits that grow it
// with new work, applies nothing of them, accepts everything that frees
// space or only rewrites, and resumes by itself when space returns.
func TestSpaceGuardRefusesGrowth(t *testing.T) {
	fs := storetest.NewSpaceFS(vfs.NewMem(), plenty, 2*plenty)
	s := openSpace(t, fs, nil)
	defer s.Close()
	if sp := s.Space(); !sp.Guarded || sp.Low || sp.Reserve != testReserve || sp.Avail != plenty {
		t.Fatalf("space stats at open: %+v", sp)
	}
	commitWait(t, s, true, evOpen("sub"), evSub("sub", "t/#", 1), evOpen("gone"))
	commitWait(t, s, true, evPub("t/1", "one", "sub"), evPub("t/2", "two", "sub"), evRetain("r", "v", 0))
	queued := s.QueueInfo("sub")

	fs.SetAvail(testReserve - 1)
	waitLow(t, s, true)

	refused(t, s, "a publish queued for a session", evPub("t/3", "three", "sub"))
	refused(t, s, "a retained set", evRetain("r", "new", 0))
	refused(t, s, "an inbound QoS 2 packet id", &Event{Kind: EvPublished, Client: "pub", Msg: &Message{Topic: "x", Payload: []byte("p"), QoS: 2}, InboundPID: 7})
	refused(t, s, "a subscription", evSub("sub", "more/#", 1))
	refused(t, s, "a new session", evOpen("new"))
	refused(t, s, "a batch with one growing event", &Event{Kind: EvAcked, Client: "sub", QSeq: queued.Head}, evPub("t/4", "four", "sub"))
	if qi := s.QueueInfo("sub"); qi != queued {
		t.Fatalf("refused commits changed the queue: %+v → %+v", queued, qi)
	}

	accepted(t, s, "an acknowledgement", &Event{Kind: EvAcked, Client: "sub", QSeq: queued.Head})
	accepted(t, s, "a resumed session", evOpen("sub"))
	accepted(t, s, "a clean start over a stored session", &Event{Kind: EvSessionDropped, Client: "gone"}, evOpen("gone"))
	accepted(t, s, "a retained clear", evRetain("r", "", 0))
	accepted(t, s, "an unsubscribe", &Event{Kind: EvUnsubscribed, Client: "sub", Filter: "t/#"})
	accepted(t, s, "a will", &Event{Kind: EvPublished, Client: "gone", Msg: &Message{Topic: "will", Payload: []byte("w"), QoS: 1},
		Targets: []Target{{Client: "sub", QoS: 1}}, MayUseReserve: true})
	accepted(t, s, "a session end", &Event{Kind: EvSessionDropped, Client: "gone"})
	if s.QueueInfo("sub").Count != queued.Count {
		t.Fatalf("queue after one ack and one will: %+v (was %+v)", s.QueueInfo("sub"), queued)
	}

	// The margin above the reserve: at the reserve itself it stays low.
	fs.SetAvail(testReserve)
	checks := s.Space().Checks
	for s.Space().Checks < checks+3 {
		time.Sleep(time.Millisecond)
	}
	if !s.Space().Low {
		t.Fatal("the guard resumed at exactly the reserve (no margin)")
	}
	fs.SetAvail(plenty)
	waitLow(t, s, false)
	accepted(t, s, "a publish after space returned", evPub("t/5", "five", "sub"))
	accepted(t, s, "a new session after space returned", evOpen("new"))
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

// Between two measurements, the bytes committed count against the last
// one: a burst that would eat more than half the reserve is refused before
// the watcher measures again, and a smaller one only asks it to measure.
func TestSpaceGuardEstimate(t *testing.T) {
	g := &spaceGuard{reserve: 100, wake: make(chan struct{}, 1)}
	g.on.Store(true)
	g.avail.Store(200)
	if g.tight() || len(g.wake) != 0 {
		t.Fatal("tight with twice the reserve free")
	}
	g.wrote(120) // 80 left: below the reserve, above half of it
	if g.tight() {
		t.Fatal("refusing with 80 of a 100 reserve left by the estimate")
	}
	if len(g.wake) != 1 {
		t.Fatal("the watcher was not asked to measure when the estimate crossed the reserve")
	}
	g.wrote(40) // 40 left
	if !g.tight() {
		t.Fatal("not refusing with 40 of a 100 reserve left by the estimate")
	}
	g.on.Store(false)
	if g.tight() {
		t.Fatal("a guard that is off refused")
	}
}

// File systems that cannot tell their free space (the in-memory ones)
// turn the guard off; so does a negative reserve.
func TestSpaceGuardOff(t *testing.T) {
	s := openSpace(t, vfs.NewMem(), nil)
	if s.Space().Guarded {
		t.Fatal("guard on over a MemFS")
	}
	s.Close()
	o := testOptions(storetest.NewSpaceFS(vfs.NewMem(), 0, plenty))
	o.MinFreeSpace = -1
	s, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Space().Guarded {
		t.Fatal("guard on with a negative reserve")
	}
	commitWait(t, s, true, evOpen("c"), evPub("t", "x", "c"))
}

// A store opened on a volume that is already below the reserve refuses
// growth from its first commit.
func TestSpaceGuardLowAtOpen(t *testing.T) {
	fs := storetest.NewSpaceFS(vfs.NewMem(), testReserve/2, plenty)
	s := openSpace(t, fs, nil)
	defer s.Close()
	refused(t, s, "a new session", evOpen("c"))
}

// The condition is logged once when it starts, then once per log interval
// however often the guard measures, and once when it ends.
func TestSpaceGuardLogsOncePerInterval(t *testing.T) {
	var buf storetest.LogBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	fs := storetest.NewSpaceFS(vfs.NewMem(), plenty, 2*plenty)
	o := testOptions(fs)
	o.Logger = log
	o.MinFreeSpace = testReserve
	o.SpaceCheckInterval = time.Millisecond
	o.SpaceLogInterval = 150 * time.Millisecond
	s, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fs.SetAvail(1 << 20)
	waitLow(t, s, true)
	start, checks := time.Now(), s.Space().Checks
	for i := 0; time.Since(start) < 400*time.Millisecond; i++ {
		_ = s.Commit([]*Event{evOpen("x")}, true, nil) // refused, counted
		time.Sleep(time.Millisecond)
	}
	fs.SetAvail(plenty)
	waitLow(t, s, false)
	measured := s.Space().Checks - checks
	first := buf.Count("free space below the reserve")
	again := buf.Count("free space still below the reserve")
	back := buf.Count("free space is back above the reserve")
	t.Logf("%d measurements while low: %d first, %d repeated, %d recovered log lines", measured, first, again, back)
	if measured < 20 {
		t.Skipf("only %d measurements in 400ms: machine too busy to tell", measured)
	}
	if first != 1 || back != 1 || again < 1 || again > 3 {
		t.Fatalf("log lines: %d first, %d repeated, %d recovered over %d measurements (want 1, 1..3, 1)", first, again, back, measured)
	}
	if !strings.Contains(buf.String(), "refused_since_last_log=") {
		t.Fatal("the repeated line does not count the refusals")
	}
}

// A real ENOSPC that reaches Pebble (the guard had no chance: space went
// within one interval, or the reserve was too small) fails the store
// loudly: the commit's callback gets ErrFailed, never success, and every
// later commit is refused.
func TestENOSPCReachingPebbleFailsStore(t *testing.T) {
	var full atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if full.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite && op.Kind != errorfs.OpFileClose && op.Kind != errorfs.OpRemove {
			return syscall.ENOSPC
		}
		return nil
	})
	var buf storetest.LogBuffer
	o := testOptions(errorfs.Wrap(vfs.NewMem(), inj))
	o.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	s, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	commitWait(t, s, true, evOpen("c1"), evSub("c1", "t", 1))
	full.Store(true)
	errs := make(chan error, 1)
	if err := s.Commit([]*Event{evPub("t", strings.Repeat("x", 4096), "c1")}, true, func(err error) { errs <- err }); err != nil {
		errs <- err
	}
	select {
	case err := <-errs:
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("durable commit on a full disk completed with %v, want ErrFailed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("durable commit on a full disk never completed")
	}
	if err := s.Commit([]*Event{evOpen("c2")}, false, nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("Commit after ENOSPC: %v, want ErrFailed", err)
	}
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed() not closed after ENOSPC")
	}
	if !errors.Is(s.Err(), ErrFailed) {
		t.Fatalf("Err() = %v", s.Err())
	}
	if buf.Count("store failed") == 0 {
		t.Fatalf("no \"store failed\" log line:\n%s", buf.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err == nil {
			t.Fatal("Close after ENOSPC reported no error")
		}
	case <-ctx.Done():
		t.Fatal("Close hung after ENOSPC")
	}
}
