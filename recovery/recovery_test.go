package recovery_test

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
)

func opts(fs vfs.FS) store.Options {
	return store.Options{FS: fs, Logger: slog.New(slog.DiscardHandler), MemTableSize: 64 << 20}
}

func commit(t *testing.T, s *store.Store, evs ...*store.Event) {
	t.Helper()
	ch := make(chan error, 1)
	if err := s.Commit(evs, true, func(err error) { ch <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
}

// fixture: a session "c" with n queued messages, one synced commit each,
// left in the WAL.
func fixture(t *testing.T, n int) vfs.FS {
	t.Helper()
	fs := vfs.NewMem()
	s, err := store.Open("db", opts(fs))
	if err != nil {
		t.Fatal(err)
	}
	commit(t, s, &store.Event{Kind: store.EvSessionOpened, Client: "c", Session: &store.Session{ClientID: "c", Version: 4, ExpiryInterval: store.NeverExpires}})
	for i := 0; i < n; i++ {
		commit(t, s, &store.Event{Kind: store.EvPublished, Client: "p", Msg: &store.Message{Topic: "t", Payload: []byte(strings.Repeat("p", 120)), QoS: 1},
			Targets: []store.Target{{Client: "c", QoS: 1}}})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

func newestWAL(t *testing.T, fs vfs.FS) string {
	t.Helper()
	names, err := store.ListWALs(fs, "db")
	if err != nil || len(names) == 0 {
		t.Fatalf("WALs: %v %v", names, err)
	}
	return fs.PathJoin("db", names[len(names)-1])
}

func flip(t *testing.T, fs vfs.FS, name string, at func(size int) int) {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(f)
	f.Close()
	data[at(len(data))] ^= 0x40
	out, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = out.Write(data)
	_ = out.Sync()
	_ = out.Close()
}

func queued(t *testing.T, fs vfs.FS) int {
	t.Helper()
	s, err := store.Open("db", opts(fs))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	return s.QueueInfo("c").Count
}

func TestCheckHealthyStoreNeedsNoRepair(t *testing.T) {
	fs := fixture(t, 10)
	res, err := recovery.Check("db", opts(fs))
	if err != nil || !res.Healthy() || res.Report == nil || res.Report.Keys["q/"] != 10 {
		t.Fatalf("check: %+v %v", res, err)
	}
	rep, err := recovery.Repair("db", opts(fs), "backup")
	if err != nil || !rep.Nothing || rep.Backup != nil {
		t.Fatalf("repair of a healthy store: %+v %v", rep, err)
	}
	if _, err := fs.Stat("backup"); err == nil {
		t.Fatal("a healthy store was backed up by repair")
	}
	if _, err := recovery.Check("nowhere", opts(fs)); !errors.Is(err, recovery.ErrNoStore) {
		t.Fatalf("check of no store: %v", err)
	}
}

// A flipped WAL byte Pebble refuses (damage confirmed by a later block),
// and one it would let pass (in the last block): both are errors for
// Check, both are salvaged by Repair, and only the damaged commit is lost.
func TestRepairSalvagesDamagedWAL(t *testing.T) {
	for _, c := range []struct {
		name    string
		commits int
		refused bool
	}{{"refused by pebble", 400, true}, {"passed by pebble", 20, false}} {
		t.Run(c.name, func(t *testing.T) {
			fs := fixture(t, c.commits)
			flip(t, fs, newestWAL(t, fs), func(n int) int { return n / 2 })
			res, err := recovery.Check("db", opts(fs))
			if err != nil {
				t.Fatal(err)
			}
			if res.Healthy() || (res.OpenError != "") != c.refused {
				t.Fatalf("check: healthy %v, open error %q", res.Healthy(), res.OpenError)
			}
			rep, err := recovery.Repair("db", opts(fs), "backup")
			if err != nil {
				t.Fatal(err)
			}
			if rep.Salvage == nil || rep.Replayed == 0 || !rep.After.Healthy() || rep.Backup == nil {
				t.Fatalf("repair: %+v", rep)
			}
			if n := queued(t, fs); n != c.commits-1 {
				t.Fatalf("%d of %d messages after repair, want all but the damaged one", n, c.commits)
			}
			// The backup is the store as found: still damaged.
			if res, err := recovery.Check("backup", opts(fs)); err != nil || res.Healthy() {
				t.Fatalf("check of the backup: %v %v", res, err)
			}
		})
	}
}

func TestReplayAndVerify(t *testing.T) {
	fs := fixture(t, 30)
	src, err := store.Open("db", opts(fs))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var calls int
	v, err := recovery.VerifyReplay(src, func(done, total uint64) { calls++ })
	if err != nil || len(v.Differences) != 0 || v.Replay.Events != 31 || calls == 0 {
		t.Fatalf("verify: %+v %v (progress calls %d)", v, err, calls)
	}
	dst, err := store.Open("to10", opts(fs))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	r, err := recovery.Replay(src, dst, recovery.ReplayOptions{To: 10})
	if err != nil || r.Events != 10 || dst.LastSeq() != 10 || dst.QueueInfo("c").Count != 9 {
		t.Fatalf("replay to 10: %+v %v, queue %+v", r, err, dst.QueueInfo("c"))
	}
	if _, err := recovery.Replay(src, dst, recovery.ReplayOptions{}); err == nil {
		t.Fatal("replay into a store that is not empty")
	}
}

func TestVerifyRefusesTruncatedLog(t *testing.T) {
	fs := fixture(t, 5)
	s, err := store.Open("db", opts(fs))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.TruncateLog(3); err != nil {
		t.Fatal(err)
	}
	if _, err := recovery.VerifyReplay(s, nil); !errors.Is(err, recovery.ErrTruncatedLog) {
		t.Fatalf("verify of a truncated log: %v", err)
	}
}
