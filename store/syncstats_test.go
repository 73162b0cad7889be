package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-mqtt/cairn/store/storetest"
)

// A slow disk is visible in CommitStats: the fsync latency (histogram,
// sum, maximum) and the commits waiting for a stuck fsync.
func TestSyncLatencyVisible(t *testing.T) {
	fs := storetest.NewSlowFS(vfs.NewMem(), 0)
	s := openTest(t, fs)
	defer s.Close()
	commitWait(t, s, true, evOpen("c"))
	fs.SetDelay(30 * time.Millisecond)
	before := s.CommitStats()
	for i := 0; i < 3; i++ {
		commitWait(t, s, true, evPub("t", "x", "c"))
	}
	st := s.CommitStats()
	syncs := st.Syncs - before.Syncs
	if syncs < 3 {
		t.Fatalf("%d fsyncs for 3 sequential durable commits", syncs)
	}
	if lat := (st.SyncTime - before.SyncTime) / time.Duration(syncs); lat < 30*time.Millisecond {
		t.Fatalf("mean fsync latency %v on a 30ms disk", lat)
	}
	if st.MaxSyncTime < 30*time.Millisecond {
		t.Fatalf("MaxSyncTime %v", st.MaxSyncTime)
	}
	var slow uint64
	for i, b := range SyncBuckets {
		if b >= 50*time.Millisecond {
			slow += st.SyncLatency[i] - before.SyncLatency[i]
		} else if b < 25*time.Millisecond && st.SyncLatency[i] != before.SyncLatency[i] {
			t.Fatalf("a 30ms fsync counted in the ≤%v bucket: %v", b, st.SyncLatency)
		}
	}
	if slow < 3 {
		t.Fatalf("histogram %v: the 30ms fsyncs are not in the 50ms bucket and above", st.SyncLatency)
	}

	fs.SetDelay(0)
	fs.Hold()
	done := make(chan error, 5)
	for i := 0; i < 5; i++ {
		if err := s.Commit([]*Event{evPub("t", "y", "c")}, true, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.CommitStats().Waiting != 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if w := s.CommitStats().Waiting; w != 5 {
		t.Fatalf("Waiting %d with 5 commits behind a stuck fsync", w)
	}
	fs.Release()
	for i := 0; i < 5; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if w := s.CommitStats().Waiting; w != 0 {
		t.Fatalf("Waiting %d after the fsync went through", w)
	}
}
