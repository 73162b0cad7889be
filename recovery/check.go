package recovery

// `cairn recover --check`: judge a stopped store without changing it.
//
// Two layers are examined. Pebble's own files come first: every WAL is read
// by the store's WAL scanner (damage in the middle, a torn tail, a clean
// end), and the store is opened read-only — a corruption Pebble detects
// (WAL it refuses to replay, sstable or manifest checksum) ends there,
// because nothing above it can be read consistently. If Pebble opens it,
// the store's invariants are checked on one snapshot (store.CheckDir, the
// full list in store/check.go). Every finding carries a severity: errors
// mean `serve` would refuse the store or serve it wrongly, warnings are
// worth knowing but harmless (a torn WAL tail from a crash, a gap in the
// history), info lines describe what was read.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-mqtt/cairn/store"
)

// Severities of a Finding.
const (
	SevError   = "error"
	SevWarning = "warning"
	SevInfo    = "info"
)

// Finding is one line of a check.
type Finding struct {
	Severity string `json:"severity"`
	Where    string `json:"where"` // a file ("000012.log") or a key ("q/c1/7")
	Kind     string `json:"kind"`  // store.ProblemKind, or wal-damage, wal-torn, corruption, ...
	Detail   string `json:"detail"`
}

// CheckResult is what Check found.
type CheckResult struct {
	Dir  string           `json:"dir"`
	WALs []*store.WALFile `json:"wals"`
	// OpenError is set when Pebble refused to open the store; Report is nil
	// then.
	OpenError string             `json:"open_error,omitempty"`
	Report    *store.CheckReport `json:"report,omitempty"`
	Findings  []Finding          `json:"findings"`
}

// Errors counts the error findings.
func (r *CheckResult) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == SevError {
			n++
		}
	}
	return n
}

// Healthy reports whether serve can use the store as it is.
func (r *CheckResult) Healthy() bool { return r.Errors() == 0 }

// ErrNoStore is returned by Check and Repair for a directory without a
// store.
var ErrNoStore = errors.New("recovery: no store")

// Check examines the stopped store in dir and changes nothing. It returns
// an error wrapping store.ErrLocked when a running broker holds the store,
// and ErrNoStore when there is no store in dir.
func Check(dir string, opts store.Options) (*CheckResult, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	if err := isStore(fs, dir); err != nil {
		return nil, err
	}
	res := &CheckResult{Dir: dir, Findings: []Finding{}}
	wals, err := store.ScanWALsLocked(dir, opts)
	if err != nil {
		return nil, err
	}
	res.WALs = wals
	rep, err := store.CheckDir(dir, opts)
	var ce *store.CorruptionError
	switch {
	case errors.As(err, &ce):
		res.OpenError = err.Error()
	case err != nil:
		return nil, err
	default:
		res.Report = rep
	}
	res.walFindings()
	if res.OpenError != "" {
		res.add(SevError, "store", "corruption", "Pebble refuses to open the store: "+ce.Err.Error())
		return res, nil
	}
	res.add(SevInfo, "store", "summary", summary(rep))
	for _, p := range rep.Problems {
		sev := SevError
		if p.Warning {
			sev = SevWarning
		}
		where := p.Key
		if where == "" {
			where = "store"
		}
		res.add(sev, where, string(p.Kind), p.Detail)
	}
	if rep.Omitted > 0 {
		res.add(SevError, "store", "omitted", fmt.Sprintf("%d more problems not listed", rep.Omitted))
	}
	return res, nil
}

func (r *CheckResult) add(sev, where, kind, detail string) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Where: where, Kind: kind, Detail: detail})
}

func summary(rep *store.CheckReport) string {
	var keys int64
	for _, n := range rep.Keys {
		keys += n
	}
	log := fmt.Sprintf("event log %d..%d", rep.FirstSeq, rep.LastLogged)
	if rep.FirstSeq == 0 {
		log = "event log empty"
	}
	if rep.Truncated {
		log += " (truncated: older events were compacted away)"
	}
	return fmt.Sprintf("%d keys checked (sessions %d, queue entries %d, message bodies %d, retained %d); %s; last seq %d",
		keys, rep.Keys["s/"], rep.Keys["q/"], rep.Keys["m/"], rep.Keys["r/"], log, rep.LastSeq)
}

// walFindings describes the WAL files. Damage matters only where Pebble
// reads: in every WAL when it refused the store, otherwise the newest WAL's
// tail (older WALs it opened past are obsolete ones kept for reuse).
func (r *CheckResult) walFindings() {
	refused := r.OpenError != ""
	for i, w := range r.WALs {
		newest := i == len(r.WALs)-1
		events := "no events"
		if w.Events > 0 {
			events = fmt.Sprintf("%d events, seqs %d..%d", w.Events, w.FirstSeq, w.LastSeq)
		}
		r.add(SevInfo, w.Name, "wal", fmt.Sprintf("%d bytes, %d records (%s), end: %s", w.Size, w.Records, events, w.End))
		for _, d := range w.Damage {
			what := fmt.Sprintf("%d bytes unreadable at offset %d (the record starting at %d is lost)", d.Length, d.Offset, d.RecordOffset)
			switch {
			case refused:
				r.add(SevError, w.Name, "wal-damage", what+"; intact records follow, which --repair replays")
			case newest && d.Synced:
				// Pebble took it for a torn tail (store/walscan.go).
				recs, evs := w.After(d.RecordOffset)
				r.add(SevError, w.Name, "wal-damage", what+fmt.Sprintf("; the log says it was synced, yet Pebble would open the store without the %d records (%d events) after it, acknowledged writes among them; --repair replays them", recs, evs))
			case newest:
				r.add(SevWarning, w.Name, "wal-damage", what+"; it was never synced (a crash wrote later unsynced records before it): nothing acknowledged is lost, and the next start discards what follows")
			default:
				r.add(SevWarning, w.Name, "wal-damage", what+" in an older WAL that Pebble no longer reads")
			}
		}
		switch {
		case w.Cut && newest:
			r.add(SevError, w.Name, "wal-cut", fmt.Sprintf("ends at byte %d, inside a page: the file was cut short, not by a crash (on the disk a crash leaves the store's WAL files in whole pages), and what followed is gone, acknowledged writes possibly among it; the store opens without it: restore a backup if it mattered, or --repair to keep the %d complete records before the cut", w.Size, w.Records))
		case w.End == store.WALEndTorn && newest:
			r.add(SevWarning, w.Name, "wal-torn", fmt.Sprintf("ends in an incomplete record at offset %d (%d bytes): a write interrupted by a crash, or a truncated file; everything before it is intact, and the next start (or --repair) discards the incomplete record", w.TornRecordOffset, w.Size-w.TornRecordOffset))
		case w.End != store.WALEndClean && !newest && refused:
			r.add(SevError, w.Name, "wal-damage", fmt.Sprintf("a WAL older than the newest does not end cleanly (%s at offset %d): Pebble treats this as corruption", w.End, w.EndOffset))
		}
	}
}

// isStore returns ErrNoStore unless dir holds a Pebble manifest. It is
// checked before anything takes the lock, which creates a LOCK file: a
// check must not leave one in a directory that is not a store.
func isStore(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("%w in %s: %v", ErrNoStore, dir, err)
	}
	others := false
	for _, n := range names {
		if strings.HasPrefix(n, "MANIFEST-") {
			return nil
		}
		others = others || strings.HasSuffix(n, ".sst") || strings.HasSuffix(n, ".log") || strings.HasPrefix(n, "OPTIONS-")
	}
	if others {
		// Pebble's other files without the manifest that lists them:
		// damage (nothing here can tell which tables are live).
		return fmt.Errorf("the store in %s has lost its Pebble manifest (its other files are there): "+
			"it cannot be opened or repaired without it; restore a backup (cairn backup)", dir)
	}
	return fmt.Errorf("%w in %s (no Pebble manifest)", ErrNoStore, dir)
}

// newestSyncedDamage reports whether the newest WAL holds synced records
// behind damage, which Pebble would drop on opening.
func (r *CheckResult) newestSyncedDamage() bool {
	return len(r.WALs) > 0 && r.WALs[len(r.WALs)-1].SyncedDamage()
}
