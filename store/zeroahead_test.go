package store

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble's bytes land where it writes them, followed by zeros up to the
// next zeroChunk boundary; files that are not WALs are left alone.
func TestZeroAheadFileWrites(t *testing.T) {
	fs := zeroAheadFS{vfs.NewMem()}
	f, err := fs.Create("000001.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var want []byte
	for len(want) < 3*zeroChunk+zeroChunk/2 {
		p := make([]byte, 1+rng.IntN(200<<10))
		for i := range p {
			p[i] = byte(1 + rng.IntN(255))
		}
		want = append(want, p...) // before Write: a vfs.File may scribble on p (MemFS does under -race)
		if n, err := f.Write(p); err != nil || n != len(p) {
			t.Fatalf("write: %d %v", n, err)
		}
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if filled := (int64(len(want)) + zeroChunk - 1) / zeroChunk * zeroChunk; st.Size() != filled {
			t.Fatalf("after %d bytes the file is %d bytes, want %d", len(want), st.Size(), filled)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, fs, "000001.log")
	if !bytes.Equal(got[:len(want)], want) {
		t.Fatal("the WAL's contents differ from what was written")
	}
	if !bytes.Equal(got[len(want):], make([]byte, len(got)-len(want))) {
		t.Fatal("the WAL's tail is not zeros")
	}

	g, err := fs.Create("MANIFEST-000001", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Write([]byte("manifest")); err != nil {
		t.Fatal(err)
	}
	if st, _ := g.Stat(); st.Size() != 8 {
		t.Fatalf("a file that is not a WAL was zero-filled: %d bytes", st.Size())
	}
	_ = g.Close()
}

// On the disk the store's WAL is zero-filled ahead, and what was committed
// reads back after a reopen; the scan sees the zeros as the log's end, not
// as damage.
func TestStoreOnDiskZeroFillsWAL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	o := testOptions(vfs.Default)
	o.MinFreeSpace = -1
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	commitWait(t, s, true, evOpen("c1"), evSub("c1", "t", 1))
	for i := 0; i < 50; i++ {
		commitWait(t, s, true, evPub("t", "m", "c1"))
	}
	names, err := ListWALs(vfs.Default, dir)
	if err != nil || len(names) == 0 {
		t.Fatalf("WALs %v: %v", names, err)
	}
	newest := names[len(names)-1]
	fi, err := os.Stat(filepath.Join(dir, newest))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 || fi.Size()%zeroChunk != 0 {
		t.Fatalf("the current WAL %s is %d bytes: not zero-filled ahead in %d-byte steps", newest, fi.Size(), zeroChunk)
	}
	w, err := ScanWAL(vfs.Default, dir, newest)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Damage) > 0 || w.End != WALEndZeroed || w.LastSeq != 52 {
		t.Fatalf("scan of the open store's WAL: end %s, damage %v, last seq %d (want zeroed after seq 52)", w.End, w.Damage, w.LastSeq)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if qi := s.QueueInfo("c1"); qi.Count != 50 || s.LastSeq() != 52 {
		t.Fatalf("after reopen: queue %+v, LastSeq %d", qi, s.LastSeq())
	}
}

// A power cut with a zero-filled WAL loses nothing synced: replay takes the
// zeros (or whatever part of the unsynced writes survived) for the end.
func TestPowerCutWithZeroAheadWAL(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s, err := Open("db", testOptions(zeroAheadFS{mem}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commitWait(t, s, true, evOpen("c1"), evSub("c1", "t", 1))
	for i := 0; i < 300; i++ {
		commitWait(t, s, true, evPub("t", "m", "c1"))
	}
	for i := 0; i < 20; i++ { // unsynced: a cut may keep any part of them
		if err := s.Commit([]*Event{evPub("t", "u", "c1")}, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, pct := range []int{0, 50, 100} {
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: pct}
		if pct > 0 {
			cfg.RNG = rand.New(rand.NewPCG(uint64(pct), 3))
		}
		c, err := Open("db", testOptions(mem.CrashClone(cfg)))
		if err != nil {
			t.Fatalf("open after a power cut (%d%% of unsynced writes kept): %v", pct, err)
		}
		if qi := c.QueueInfo("c1"); qi.Count < 300 || c.LastSeq() < 302 {
			t.Fatalf("after a power cut (%d%% kept): queue %+v, LastSeq %d; want the 300 synced", pct, qi, c.LastSeq())
		}
		if err := c.Verify(); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
}
