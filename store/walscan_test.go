package store

import (
	"testing"
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
