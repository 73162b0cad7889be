package store

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// prefillStore is a store whose client "c" has entries 1..10 queued, of
// which the entry cache holds none: the window was capped at 4 entries
// while enqueuing, and acking those 4 emptied it.
func prefillStore(t *testing.T) *Store {
	t.Helper()
	defer func(w int) { entryWindowMax = w }(entryWindowMax)
	entryWindowMax = 4
	s := openTest(t, vfs.NewMem())
	t.Cleanup(func() { s.Close() })
	for i := range 10 {
		ev := &Event{Kind: EvPublished, Client: "pub", Msg: &Message{Topic: "t", Payload: []byte(fmt.Sprint(i)), QoS: 1},
			Targets: []Target{{Client: "c", QoS: 1}}}
		if err := commitWaitErr(s, true, ev); err != nil {
			t.Fatal(err)
		}
	}
	for seq := uint64(1); seq <= 4; seq++ {
		if err := commitWaitErr(s, true, &Event{Kind: EvAcked, Client: "c", QSeq: seq}); err != nil {
			t.Fatal(err)
		}
	}
	if qi := s.QueueInfo("c"); qi.Head != 5 || qi.Next != 11 || qi.Count != 6 {
		t.Fatalf("queue %+v", qi)
	}
	return s
}

func ackNeedsRead(s *Store, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.anyReads([]*Event{{Kind: EvAcked, Client: "c", QSeq: seq}})
}

// drainAll acks every entry of "c" in order and checks the queue ends
// empty and the store consistent.
func drainAll(t *testing.T, s *Store) {
	t.Helper()
	for seq := uint64(5); seq <= 10; seq++ {
		if err := commitWaitErr(s, true, &Event{Kind: EvAcked, Client: "c", QSeq: seq}); err != nil {
			t.Fatal(err)
		}
	}
	if qi := s.QueueInfo("c"); qi.Count != 0 || qi.Head != 11 {
		t.Fatalf("after acking everything: %+v", qi)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

// A backlog read back from disk (ReadQueue) fills the entry cache, so that
// its acks read nothing: once the page reaches the queue's end the window
// covers the whole queue again and an ack is a plain batch.
func TestReadQueuePrefillsEntryCache(t *testing.T) {
	s := prefillStore(t)
	if !ackNeedsRead(s, 5) {
		t.Fatal("before the read the entry cache knows entry 5")
	}
	page, err := s.ReadQueue("c", 5, 11, 0)
	if err != nil || len(page) != 6 {
		t.Fatalf("page: %d entries, %v", len(page), err)
	}
	if ackNeedsRead(s, 5) {
		t.Fatal("after the page was read, acking entry 5 still needs a read")
	}
	if !s.entries.complete("c") {
		t.Fatal("a page up to the queue's end leaves a window that covers the queue")
	}
	drainAll(t, s)
}

// A page whose snapshot went stale — an entry of it was removed (here an
// ack the cache could not serve) between the read and the prefill — is not
// added: it would bring the removed entry back to life in the cache, and
// its second removal would corrupt the queue's count.
func TestReadQueueStalePageNotCached(t *testing.T) {
	s := prefillStore(t)
	s.queueReadHook = func() {
		s.queueReadHook = nil
		if err := commitWaitErr(s, true, &Event{Kind: EvAcked, Client: "c", QSeq: 7}); err != nil {
			t.Error(err)
		}
	}
	page, err := s.ReadQueue("c", 5, 11, 0)
	if err != nil || len(page) != 6 {
		t.Fatalf("page (from the snapshot, with entry 7): %d entries, %v", len(page), err)
	}
	if !ackNeedsRead(s, 5) {
		t.Fatal("a stale page was added to the entry cache")
	}
	if err := commitWaitErr(s, true, &Event{Kind: EvAcked, Client: "c", QSeq: 7}); err != nil {
		t.Fatal(err) // the repeated ack of 7: a no-op
	}
	if qi := s.QueueInfo("c"); qi.Count != 5 {
		t.Fatalf("the repeated ack changed the queue: %+v", qi)
	}
	drainAll(t, s)
}

// A page limited to fewer entries covers only up to its last entry: the
// entries after it stay unknown to the cache, and a next page extends the
// window where the first ended.
func TestReadQueuePrefillPages(t *testing.T) {
	s := prefillStore(t)
	if _, err := s.ReadQueue("c", 5, 11, 2); err != nil {
		t.Fatal(err)
	}
	if w := s.entries.window("c"); w == nil || w.base != 5 || w.end() != 7 || w.complete {
		t.Fatalf("window after a page of 2: %+v", w)
	}
	if _, err := s.ReadQueue("c", 7, 11, 3); err != nil {
		t.Fatal(err)
	}
	if w := s.entries.window("c"); w.end() != 10 || w.complete {
		t.Fatalf("window after the next page of 3: base %d end %d", w.base, w.end())
	}
	if _, err := s.ReadQueue("c", 10, 11, 3); err != nil {
		t.Fatal(err)
	}
	if !s.entries.complete("c") {
		t.Fatal("the last page did not complete the window")
	}
	drainAll(t, s)
}
