package store

import (
	"errors"
	"io"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestReopenPersists(t *testing.T) {
	fs := vfs.NewMem()
	s := openTest(t, fs)
	commitWait(t, s, true, evOpen("c1"), evSub("c1", "t", 1), evPub("t", "abc", "c1", "c2"), evRetain("r", "v", 0))
	commitWait(t, s, false, evPub("t", "de", "c1"), evAck("c1", 1))
	before := dump(t, s)
	beforeQ := sortedQueues(s.copyQueues())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Commit([]*Event{evOpen("x")}, true, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Close: %v", err)
	}
	if _, err := s.ReadQueue("c1", 0, 10, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadQueue after Close: %v", err)
	}

	s = openTest(t, fs)
	defer s.Close()
	sameDump(t, before, dump(t, s))
	if got := sortedQueues(s.copyQueues()); !slices.Equal(got, beforeQ) {
		t.Fatalf("queues after reopen %v, want %v", got, beforeQ)
	}
	if s.LastSeq() != 6 {
		t.Fatalf("LastSeq %d", s.LastSeq())
	}
	ev := evPub("t", "f", "c1")
	commitWait(t, s, true, ev)
	if ev.Seq != 7 || ev.Targets[0].Seq != 3 {
		t.Fatalf("after reopen: seq %d queue seq %d", ev.Seq, ev.Targets[0].Seq)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

// The log sequence never goes back, even when the whole log is truncated.
func TestSeqSurvivesTruncation(t *testing.T) {
	fs := vfs.NewMem()
	s := openTest(t, fs)
	for i := 0; i < 5; i++ {
		commitWait(t, s, true, evOpen("c1"))
	}
	if err := s.TruncateLog(100); err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = s.Events(0, func(*Event) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d events after truncating everything", n)
	}
	commitWait(t, s, true, evOpen("c1"))
	if err := s.TruncateLog(6); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	_ = s.Events(0, func(ev *Event) error { seqs = append(seqs, ev.Seq); return nil })
	if !slices.Equal(seqs, []uint64{6}) {
		t.Fatalf("events after truncate(6): %v", seqs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, fs)
	defer s.Close()
	ev := evOpen("c1")
	commitWait(t, s, true, ev)
	if ev.Seq != 7 {
		t.Fatalf("seq after truncation and reopen = %d, want 7", ev.Seq)
	}
}

func TestSchemaVersion(t *testing.T) {
	fs := vfs.NewMem()
	s := openTest(t, fs)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	setVersion(t, fs, SchemaVersion+1)
	_, err := Open("db", testOptions(fs))
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("open of newer schema: %v", err)
	}
	setVersion(t, fs, 0)
	if _, err := Open("db", testOptions(fs)); err == nil || !strings.Contains(err.Error(), "older") {
		t.Fatalf("open of older schema: %v", err)
	}
}

func TestNotACairnStore(t *testing.T) {
	fs := vfs.NewMem()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: pebbleLogger{quietLogger}})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Set([]byte("foreign"), []byte("x"), pebble.Sync)
	_ = db.Close()
	if _, err := Open("db", testOptions(fs)); err == nil || !strings.Contains(err.Error(), "not a Cairn store") {
		t.Fatalf("open of foreign pebble: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	fs := vfs.NewMem()
	opts := testOptions(fs)
	opts.ReadOnly = true
	if _, err := Open("db", opts); err == nil {
		t.Fatal("read-only open of a missing store succeeded")
	}
	s := openTest(t, fs)
	commitWait(t, s, false, evPub("t", "abc", "c1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Commit([]*Event{evOpen("c")}, true, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only Commit: %v", err)
	}
	if qm, err := ro.ReadQueue("c1", 0, 10, 0); err != nil || len(qm) != 1 {
		t.Fatalf("read-only ReadQueue: %v %v", qm, err)
	}
	if err := ro.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpoint(t *testing.T) {
	fs := vfs.NewMem()
	s := openTest(t, fs)
	defer s.Close()
	commitWait(t, s, false, evOpen("c1"), evPub("t", "abc", "c1"))
	if err := s.Checkpoint("cp"); err != nil {
		t.Fatal(err)
	}
	cp, err := Open("cp", testOptions(fs))
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	sameState(t, "checkpoint", s, cp)
}

// walFiles lists the WAL files of the store in dir, oldest first.
func walFiles(t *testing.T, fs vfs.FS, dir string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			logs = append(logs, fs.PathJoin(dir, n))
		}
	}
	slices.Sort(logs)
	return logs
}

func readFile(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, fs vfs.FS, name string, data []byte) {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

// corruptibleStore writes 200 synced commits and closes the store, leaving
// them in the WAL (the memtable is large enough not to flush).
func corruptibleStore(t *testing.T) (vfs.FS, string) {
	fs := vfs.NewMem()
	opts := testOptions(fs)
	opts.MemTableSize = 64 << 20
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		commitWait(t, s, true, evPub("t", strings.Repeat("x", 100), "c1"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs := walFiles(t, fs, "db")
	var wal string
	for _, l := range logs {
		if len(readFile(t, fs, l)) > 20000 {
			wal = l
		}
	}
	if wal == "" {
		t.Fatalf("no WAL holding the commits among %v", logs)
	}
	return fs, wal
}

func TestCorruptWALDetected(t *testing.T) {
	fs, wal := corruptibleStore(t)
	data := readFile(t, fs, wal)
	data[len(data)/2] ^= 0x40
	writeFile(t, fs, wal, data)
	_, err := Open("db", testOptions(fs))
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("open of a store with a flipped WAL byte: %v (want *CorruptionError)", err)
	}
	if !strings.Contains(err.Error(), "cairn recover") {
		t.Fatalf("corruption message does not point at recover: %v", err)
	}
	// The file and the offset where replay stopped (a detail of Pebble's
	// error that its message leaves out).
	if want := path.Base(wal); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("corruption message does not name the file and offset (%q): %v", want, err)
	}
}

func TestTornWALTailTolerated(t *testing.T) {
	fs, wal := corruptibleStore(t)
	data := readFile(t, fs, wal)
	writeFile(t, fs, wal, data[:len(data)-57])
	s, err := Open("db", testOptions(fs))
	if err != nil {
		t.Fatalf("open with a torn WAL tail: %v", err)
	}
	defer s.Close()
	if s.LastSeq() < 190 || s.LastSeq() > 200 {
		t.Fatalf("LastSeq %d after losing a few bytes of tail", s.LastSeq())
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

// Verify notices broken invariants.
func TestVerifyDetects(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	commitWait(t, s, true, evPub("t", "abc", "c1", "c2"), evRetain("r", "v", 100))
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	_ = s.db.Set(refKey(nil, 1), []byte{5}, pebble.Sync)     // wrong refcount
	_ = s.db.Set(msgKey(nil, 99), []byte{0x80}, pebble.Sync) // orphan body
	_ = s.db.Delete(expiryKey(nil, 100, "r"), pebble.Sync)   // index entry lost
	_ = s.db.Delete(queueKey(nil, "c2", 1), pebble.Sync)     // queue info now stale
	err := s.Verify()
	var ve *VerifyError
	if !errors.As(err, &ve) || len(ve.Problems) < 4 {
		t.Fatalf("Verify = %v", err)
	}
	t.Log(err)
}
