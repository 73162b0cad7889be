package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A cleanly closed WAL reads completely: every event, a clean end.
func TestScanWALClean(t *testing.T) {
	fs, wal := corruptibleStore(t)
	w, err := ScanWAL(fs, "db", fs.PathBase(wal))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records, %d events, end %s at %d", w.Records, w.Events, w.End, w.EndOffset)
	if w.Events != 200 || w.FirstSeq != 1 || w.LastSeq != 200 || len(w.Damage) != 0 || w.End != WALEndClean {
		t.Fatalf("scan of a clean WAL: %d events %d..%d, damage %v, end %s", w.Events, w.FirstSeq, w.LastSeq, w.Damage, w.End)
	}
}

// A flipped byte in the middle is one damaged range; the records after it
// are still read.
func TestScanWALFlippedByte(t *testing.T) {
	fs, wal := corruptibleStore(t)
	data := readFile(t, fs, wal)
	data[len(data)/2] ^= 0x40
	writeFile(t, fs, wal, data)
	w, err := ScanWAL(fs, "db", fs.PathBase(wal))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events %d..%d damage %+v end %s", w.Events, w.FirstSeq, w.LastSeq, w.Damage, w.End)
	if len(w.Damage) != 1 || w.Events != 199 || w.LastSeq != 200 || w.End != WALEndClean {
		t.Fatalf("scan after a flipped byte: %d events %d..%d, damage %+v, end %s", w.Events, w.FirstSeq, w.LastSeq, w.Damage, w.End)
	}
	if d := w.Damage[0]; d.RecordOffset > int64(len(data)/2) || d.Offset+d.Length <= int64(len(data)/2) {
		t.Fatalf("damage %+v does not cover offset %d", d, len(data)/2)
	}
}

// A file cut in the middle of a record ends torn, at that record.
func TestScanWALTruncated(t *testing.T) {
	fs, wal := corruptibleStore(t)
	data := readFile(t, fs, wal)
	writeFile(t, fs, wal, data[:len(data)-57])
	w, err := ScanWAL(fs, "db", fs.PathBase(wal))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events %d..%d damage %+v end %s at %d (record %d)", w.Events, w.FirstSeq, w.LastSeq, w.Damage, w.End, w.EndOffset, w.TornRecordOffset)
	if w.End != WALEndTorn || len(w.Damage) != 0 || w.LastSeq < 195 {
		t.Fatalf("scan of a truncated WAL: end %s, damage %v, last seq %d", w.End, w.Damage, w.LastSeq)
	}
}

// A store Pebble refuses because of a flipped WAL byte opens again after
// SalvageWAL, and replaying the salvaged events loses only the damaged
// record's events.
func TestSalvageWAL(t *testing.T) {
	fs, wal := corruptibleStore(t)
	data := readFile(t, fs, wal)
	data[len(data)/2] ^= 0x40
	writeFile(t, fs, wal, data)
	if _, err := Open("db", testOptions(fs)); err == nil {
		t.Fatal("store with a flipped WAL byte opened")
	}
	sv, err := SalvageWAL("db", testOptions(fs))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("salvage: cut %s at %d, kept %d records, removed %v, %d events behind the damage, %d other writes", sv.WAL, sv.CutAt, sv.KeptRecords, sv.Removed, len(sv.Events), sv.OtherWrites)
	s := openTest(t, fs)
	defer s.Close()
	kept := s.LastSeq()
	for _, ev := range sv.Events {
		if err := s.ReplayEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	qi := s.QueueInfo("c1")
	t.Logf("kept through seq %d, replayed %d, queue %+v", kept, len(sv.Events), qi)
	if qi.Count != 199 || s.LastSeq() != 200 || kept+uint64(len(sv.Events)) != 199 {
		t.Fatalf("after salvage: queue %+v, LastSeq %d, kept %d + replayed %d", qi, s.LastSeq(), kept, len(sv.Events))
	}
}

// Damage in the last 32 KiB block of the newest WAL: Pebble alone takes it
// for a torn tail and opens the store without the synced commits behind it;
// Open refuses it, and SalvageWAL keeps those commits.
func TestOpenRefusesSyncedDamagePebbleWouldDrop(t *testing.T) {
	fs := vfs.NewMem()
	s := openTest(t, fs)
	for i := 0; i < 20; i++ {
		commitWait(t, s, true, evPub("t", strings.Repeat("x", 100), "c1"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs := walFiles(t, fs, "db")
	wal := logs[len(logs)-1]
	data := readFile(t, fs, wal)
	if len(data) > 32<<10 {
		t.Fatalf("WAL of %d bytes spans blocks", len(data))
	}
	data[len(data)/2] ^= 0x40
	writeFile(t, fs, wal, data)

	// Pebble by itself opens it, silently short of commits.
	db, err := openRaw("db", testOptions(fs), true)
	if err != nil {
		t.Fatalf("pebble refused the store itself (the test needs damage it lets pass): %v", err)
	}
	logged := 0
	_ = iterFamily(db, famEvent, func([]byte, []byte) error { logged++; return nil })
	_ = db.Close()
	if logged >= 19 {
		t.Fatalf("pebble read %d of 20 commits: the damage did not cut the log", logged)
	}
	_, err = Open("db", testOptions(fs))
	var ce *CorruptionError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "Pebble would silently open the store without") {
		t.Fatalf("Open of a store whose newest WAL has synced damage: %v", err)
	}
	sv, err := SalvageWAL("db", testOptions(fs))
	if err != nil {
		t.Fatal(err)
	}
	s = openTest(t, fs)
	defer s.Close()
	for _, ev := range sv.Events {
		if err := s.ReplayEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	if qi := s.QueueInfo("c1"); qi.Count != 19 || s.LastSeq() != 20 {
		t.Fatalf("after salvage: pebble alone kept %d, now queue %+v, LastSeq %d", logged, qi, s.LastSeq())
	}
}

// BenchmarkScanWAL measures the scan Open runs on the newest WAL
// (checkNewestWAL), over the largest WAL of a store filled with 60 MB.
func BenchmarkScanWAL(b *testing.B) {
	fs := vfs.NewMem()
	opts := testOptions(fs)
	opts.MemTableSize = 256 << 20
	s, err := Open("db", opts)
	if err != nil {
		b.Fatal(err)
	}
	payload := strings.Repeat("x", 1000)
	for i := 0; i < 60000; i++ {
		if err := s.Commit([]*Event{evPub("t", payload, "c1")}, false, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	// Pebble grows its memtable (and so its WAL) from small to
	// MemTableSize: scan the largest WAL it wrote.
	names, _ := ListWALs(fs, "db")
	var big *WALFile
	for _, n := range names {
		w, err := ScanWAL(fs, "db", n)
		if err != nil {
			b.Fatal(err)
		}
		if big == nil || w.Size > big.Size {
			big = w
		}
	}
	b.SetBytes(big.Size)
	b.ResetTimer()
	for range b.N {
		if _, err := ScanWAL(fs, "db", big.Name); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(big.Size)/(1<<20), "MiB/wal")
}
