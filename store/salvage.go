package store

// Salvaging a store whose WAL Pebble refuses to replay.
//
// Pebble stops at the first damaged WAL record and refuses to open (it
// cannot tell which later writes depended on the lost one). SalvageWAL
// makes the store openable again while keeping every record that can be
// read:
//
//  1. Every WAL is scanned (walscan.go). The damaged one is the WAL Pebble
//     named in its error, else the oldest with damage in the middle or (for
//     any but the newest) without a clean end.
//  2. The records before the damage stay as they are: the file is cut at the
//     start of the record the damage hit, so it ends cleanly, and Pebble
//     replays that prefix — the projections are then exactly those of the
//     last intact commit before the damage.
//  3. Every later WAL file is removed, and the readable records after the
//     damage (in the damaged file and in the later ones) are returned as
//     their logged events. They must not be applied as raw writes: each
//     batch's projection writes were computed on top of the lost one. The
//     caller replays them as events (Store.ReplayEvent) once the store is
//     open, so they are re-applied to the state that actually exists —
//     every acknowledged publish, subscription and session change behind the
//     damage survives; only the damaged commits are lost, leaving a gap in
//     the log that Check reports.
//
// The caller takes a backup first (CopyStore): SalvageWAL rewrites and
// deletes WAL files.

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// WALSalvage says what SalvageWAL did.
type WALSalvage struct {
	WAL string `json:"wal"` // the damaged WAL
	// CutAt is the length the damaged WAL was cut to (the start of the
	// first damaged record); KeptRecords are the records before it.
	CutAt       int64 `json:"cut_at"`
	KeptRecords int   `json:"kept_records"`
	// Removed lists the later WAL files deleted (their records are in
	// Events).
	Removed []string `json:"removed"`
	// Events are the readable events logged after the damage, in seq order
	// without duplicates, to be replayed.
	Events []*Event `json:"-"`
	// OtherWrites counts writes in those records outside the log and the
	// projections (which the events re-derive): meta/ keys such as a log
	// truncation, keys of unknown families. They are not replayed.
	OtherWrites int `json:"other_writes"`
	// Undecodable counts logged events after the damage that do not decode.
	Undecodable int `json:"undecodable"`
}

// ScanWALs scans every WAL of the store in dir, oldest first.
func ScanWALs(fs vfs.FS, dir string) ([]*WALFile, error) {
	names, err := ListWALs(fs, dir)
	if err != nil {
		return nil, err
	}
	out := make([]*WALFile, 0, len(names))
	for _, n := range names {
		w, err := ScanWAL(fs, dir, n)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// ScanWALsLocked scans the WALs of the closed store in dir while holding
// the store's lock, so that no broker writes them meanwhile.
func ScanWALsLocked(dir string, opts Options) ([]*WALFile, error) {
	opts = opts.withDefaults()
	lock, err := pebble.LockDirectory(dir, opts.FS)
	if err != nil {
		if isLockErr(err) {
			return nil, lockedErr(dir, err)
		}
		return nil, fmt.Errorf("store: lock %s: %w", dir, err)
	}
	defer lock.Close()
	return ScanWALs(opts.FS, dir)
}

// Damaged reports whether Pebble would refuse to replay w: damage in the
// middle, or (unless w is the newest WAL, whose tail may be torn by a crash)
// no clean end.
func (w *WALFile) Damaged(newest bool) bool {
	return len(w.Damage) > 0 || (!newest && w.End != WALEndClean)
}

var walNumInError = regexp.MustCompile(`replaying wal (\d+)`)

// walNamedIn returns the WAL number Pebble's error names ("replaying wal N,
// offset …" is a detail of the error, printed by %+v), if any.
func walNamedIn(err error) (uint64, bool) {
	if err == nil {
		return 0, false
	}
	m := walNumInError.FindStringSubmatch(fmt.Sprintf("%+v", err))
	if m == nil {
		return 0, false
	}
	n, perr := strconv.ParseUint(m[1], 10, 64)
	return n, perr == nil
}

// SalvageWAL cuts the damaged WAL of the store in dir, removes the WALs
// after it and returns the readable events behind the damage (see the file
// comment). The damaged WAL is one Pebble refuses, or the newest one when it
// holds synced records behind damage that Pebble would silently drop. It
// returns an error when no WAL is damaged — the corruption is then in an
// sstable or the manifest, which this cannot mend — or when Pebble still
// refuses the store afterwards.
func SalvageWAL(dir string, opts Options) (*WALSalvage, error) {
	opts = opts.withDefaults()
	fs := opts.FS
	var openErr error
	if db, err := openRaw(dir, opts, true); err != nil {
		openErr = err
	} else if err := db.Close(); err != nil {
		return nil, err
	}
	wals, err := ScanWALs(fs, dir)
	if err != nil {
		return nil, err
	}
	idx := -1
	if openErr == nil {
		// Pebble opens it; the newest WAL may still hold synced records
		// behind damage that Pebble would drop (checkNewestWAL).
		if n := len(wals); n > 0 && wals[n-1].SyncedDamage() {
			idx = n - 1
		} else {
			return nil, errors.New("store: the WAL is readable: nothing to salvage")
		}
	}
	if n, ok := walNamedIn(openErr); ok && idx < 0 {
		for i, w := range wals {
			if w.Num == n && w.Damaged(i == len(wals)-1) {
				idx = i
			}
		}
	}
	for i := 0; idx < 0 && i < len(wals); i++ {
		if wals[i].Damaged(i == len(wals)-1) {
			idx = i
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("store: no WAL of %s is damaged, so the corruption is in an sstable or the manifest, which recover cannot mend (restore a backup): %w", dir, openErr)
	}
	w := wals[idx]
	cut := w.EndOffset
	if w.End == WALEndTorn {
		cut = w.TornRecordOffset
	}
	if len(w.Damage) > 0 {
		cut = w.Damage[0].RecordOffset
	}
	sv := &WALSalvage{WAL: w.Name, CutAt: cut}
	byseq := make(map[uint64]*Event)
	collect := func(rec []byte) {
		sv.OtherWrites += batchEvents(rec, func(seq uint64, val []byte) {
			ev, err := decodeEvent(seq, val)
			if err != nil {
				sv.Undecodable++
				return
			}
			byseq[seq] = ev
		})
	}
	for _, r := range w.records {
		if r.Offset < cut {
			sv.KeptRecords++
		} else {
			collect(r.Data)
		}
	}
	for _, later := range wals[idx+1:] {
		for _, r := range later.records {
			collect(r.Data)
		}
	}
	for _, seq := range slices.Sorted(maps.Keys(byseq)) {
		sv.Events = append(sv.Events, byseq[seq])
	}

	if err := cutFile(fs, fs.PathJoin(dir, w.Name), cut); err != nil {
		return nil, err
	}
	for _, later := range wals[idx+1:] {
		if err := fs.Remove(fs.PathJoin(dir, later.Name)); err != nil {
			return nil, fmt.Errorf("store: salvage: remove %s: %w", later.Name, err)
		}
		sv.Removed = append(sv.Removed, later.Name)
	}
	if err := syncDir(fs, dir); err != nil {
		return nil, err
	}
	db, err := openRaw(dir, opts, true)
	if err != nil {
		return sv, fmt.Errorf("store: after cutting %s at %d, the store still does not open: %w", w.Name, cut, err)
	}
	if err := db.Close(); err != nil {
		return sv, err
	}
	return sv, nil
}

// cutFile replaces name by its first n bytes (written to a new file, synced,
// renamed over the old one), zero-padded on the disk to a whole page, as
// the store's WALs always are there (zeroahead.go; WALFile.Cut): Pebble
// reads the zeros as the end of the log.
func cutFile(fs vfs.FS, name string, n int64) error {
	f, err := fs.Open(name)
	if err != nil {
		return fmt.Errorf("store: salvage: %w", err)
	}
	size := n
	if fs == vfs.Default && size%walPage != 0 {
		size += walPage - size%walPage
	}
	data := make([]byte, size)
	_, err = f.ReadAt(data[:n], 0)
	_ = f.Close()
	if err != nil && n > 0 {
		return fmt.Errorf("store: salvage: read %s: %w", name, err)
	}
	tmp := name + ".salvage"
	out, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("store: salvage: %w", err)
	}
	_, err = out.Write(data)
	if err == nil {
		err = out.Sync()
	}
	if err = errors.Join(err, out.Close()); err != nil {
		return fmt.Errorf("store: salvage: write %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, name); err != nil {
		return fmt.Errorf("store: salvage: %w", err)
	}
	return nil
}

// checkNewestWAL returns a *CorruptionError when the newest WAL of the
// store in dir holds synced writes that Pebble would silently drop: damage
// that a later chunk's synced offset says had been fsynced (walscan.go).
// Pebble confirms damage only from chunks in later 32 KiB blocks, so damage
// in the last block of the newest WAL passes for a torn tail and Pebble
// opens the store without the acknowledged commits behind it — and an open
// for writing then discards them for good. Open runs this first, under the
// directory lock; a store held by another process is left to Pebble's own
// lock error.
func checkNewestWAL(fs vfs.FS, dir string) error {
	names, err := ListWALs(fs, dir)
	if err != nil || len(names) == 0 {
		return nil // no store yet, or unreadable: Pebble reports it
	}
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		return nil
	}
	defer lock.Close()
	w, err := ScanWAL(fs, dir, names[len(names)-1])
	if err != nil {
		return fmt.Errorf("store: open %s: %w", dir, err)
	}
	for _, d := range w.Damage {
		if d.Synced {
			recs, evs := w.After(d.RecordOffset)
			return &CorruptionError{Dir: dir, Err: fmt.Errorf("WAL %s: %d bytes at offset %d do not read back although the log says they were synced; Pebble would silently open the store without the %d records (%d events) after them",
				w.Name, d.Length, d.Offset, recs, evs)}
		}
	}
	return nil
}

// After counts the complete records at or after off, and the events they
// log.
func (w *WALFile) After(off int64) (records, events int) {
	for _, r := range w.records {
		if r.Offset >= off {
			records++
			batchEvents(r.Data, func(uint64, []byte) { events++ })
		}
	}
	return records, events
}

// SyncedDamage reports whether w holds damage that had been synced.
func (w *WALFile) SyncedDamage() bool {
	for _, d := range w.Damage {
		if d.Synced {
			return true
		}
	}
	return false
}
