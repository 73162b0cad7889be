package store

import (
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Replaying one store's log into a fresh store rebuilds exactly the same
// keys and values (projections, log and meta/seq) and the same in-memory
// queue summaries: apply is deterministic from the logged events.
func TestReplayRebuildsProjections(t *testing.T) {
	src := openTest(t, vfs.NewMem())
	defer src.Close()
	commits := 400
	if raceEnabled {
		commits = 100
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorkload(src, uint64(g+1))
			for i := 0; i < commits; i++ {
				if err := src.Commit(w.commit(4), i%3 == 0, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := src.Verify(); err != nil {
		t.Fatal(err)
	}
	dst := openTest(t, vfs.NewMem())
	defer dst.Close()
	n := 0
	if err := src.Events(0, func(ev *Event) error { n++; return dst.ReplayEvent(ev) }); err != nil {
		t.Fatal(err)
	}
	if err := dst.Sync(); err != nil {
		t.Fatal(err)
	}
	t.Logf("replayed %d events", n)
	if uint64(n) != src.LastSeq() || dst.LastSeq() != src.LastSeq() {
		t.Fatalf("replayed %d events, src LastSeq %d, dst LastSeq %d", n, src.LastSeq(), dst.LastSeq())
	}
	sameState(t, "replay", src, dst)
	if err := dst.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestReplayEventRejectsOldSeq(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	if err := s.ReplayEvent(&Event{Seq: 5, Kind: EvSessionOpened, Client: "c", Session: &Session{}}); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{0, 5} {
		err := s.ReplayEvent(&Event{Seq: seq, Kind: EvSessionOpened, Client: "c", Session: &Session{}})
		if err == nil {
			t.Fatalf("replay of seq %d after 5 accepted", seq)
		}
	}
	// A replayed publish must carry its message id and queue seqs.
	if err := s.ReplayEvent(&Event{Seq: 6, Kind: EvPublished, Msg: &Message{Topic: "t"}, Targets: []Target{{Client: "c", Seq: 1}}}); err == nil {
		t.Fatal("replay of a publish without MsgID accepted")
	}
	ev := &Event{Seq: 7, MsgID: 7, Kind: EvPublished, Msg: &Message{Topic: "t"}, Targets: []Target{{Client: "c", Seq: 4}}}
	if err := s.ReplayEvent(ev); err != nil {
		t.Fatal(err)
	}
	if qi := s.QueueInfo("c"); qi != (QueueInfo{Head: 4, Next: 5, Count: 1}) {
		t.Fatalf("queue after replay %+v", qi)
	}
	ev = &Event{Seq: 8, MsgID: 8, Kind: EvPublished, Msg: &Message{Topic: "t"}, Targets: []Target{{Client: "c", Seq: 4}}}
	if err := s.ReplayEvent(ev); err == nil {
		t.Fatal("replay reusing queue seq 4 accepted")
	}
}
