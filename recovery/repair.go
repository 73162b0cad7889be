package recovery

// `cairn recover --repair`: mend a stopped store in place, after a backup.
//
// Order of work, each step reported:
//
//  1. Check (check.go). A store with no errors and no torn WAL tail is left
//     alone.
//  2. Backup: a copy of the directory exactly as found (store.CopyStore:
//     sstables hard-linked, everything else copied, under the store's lock).
//     A Pebble checkpoint would need the store opened for writing first,
//     which already changes it (WAL replay, a torn tail discarded) — and a
//     store Pebble refuses cannot be opened at all.
//  3. If Pebble refused the store for a damaged WAL, or the newest WAL holds
//     synced records behind damage that Pebble would take for a torn tail
//     and drop: store.SalvageWAL cuts that WAL before the damage and keeps
//     the readable events behind it.
//  4. store.RepairDir fixes every invariant violation (store/repair.go says
//     how each is fixed, from the event log where it knows).
//  5. The salvaged events are replayed into the store as events, so
//     everything acknowledged behind the damage is back; then RepairDir
//     runs once more (it normally finds nothing).
//  6. Check again: the result must be healthy, or Repair says what is left.

import (
	"errors"
	"fmt"
	"time"

	"github.com/cairn-mqtt/cairn/store"
)

// RepairResult says what Repair found and changed.
type RepairResult struct {
	Dir     string            `json:"dir"`
	Before  *CheckResult      `json:"before"`
	Backup  *store.BackupInfo `json:"backup,omitempty"`
	Salvage *store.WALSalvage `json:"salvage,omitempty"`
	// Replayed counts salvaged events replayed; AlreadyPresent those the
	// store held already; Refused lists the ones it would not take.
	Replayed       int                  `json:"replayed"`
	AlreadyPresent int                  `json:"already_present"`
	Refused        []string             `json:"refused,omitempty"`
	Actions        []store.RepairAction `json:"actions"`
	// Discarded lists the torn WAL tails that opening the store for
	// writing dropped (incomplete records: never readable), and the cut
	// WALs it accepted (wal-cut: what followed the cut is lost).
	Discarded []Finding    `json:"discarded,omitempty"`
	After     *CheckResult `json:"after"`
	// Nothing is true when the store needed no repair (and was not touched).
	Nothing bool          `json:"nothing"`
	Took    time.Duration `json:"took_ns"`
}

// Repair repairs the stopped store in dir, first copying it to backupDir
// (which must not exist). See the file comment for the steps.
func Repair(dir string, opts store.Options, backupDir string) (*RepairResult, error) {
	start := time.Now()
	before, err := Check(dir, opts)
	if err != nil {
		return nil, err
	}
	res := &RepairResult{Dir: dir, Before: before, Actions: []store.RepairAction{}}
	if !needsRepair(before) {
		res.Nothing, res.After, res.Took = true, before, time.Since(start)
		return res, nil
	}
	bk, err := store.CopyStore(opts.FS, dir, backupDir)
	if err != nil {
		return nil, fmt.Errorf("recovery: backup before repair: %w (nothing was changed)", err)
	}
	res.Backup = &bk
	if before.OpenError != "" || before.newestSyncedDamage() {
		sv, err := store.SalvageWAL(dir, opts)
		if err != nil {
			return res, fmt.Errorf("recovery: %w (the store as found is in %s)", err, backupDir)
		}
		res.Salvage = sv
	}
	if err := res.repairDir(dir, opts); err != nil {
		return res, err
	}
	if res.Salvage != nil && len(res.Salvage.Events) > 0 {
		if err := res.replaySalvaged(dir, opts); err != nil {
			return res, err
		}
		if err := res.repairDir(dir, opts); err != nil {
			return res, err
		}
	}
	if res.After, err = Check(dir, opts); err != nil {
		return res, err
	}
	for _, f := range before.Findings {
		if (f.Kind == "wal-torn" || f.Kind == "wal-cut") && !res.After.has(f.Where, f.Kind) {
			res.Discarded = append(res.Discarded, f)
		}
	}
	res.Took = time.Since(start)
	return res, nil
}

func (r *CheckResult) has(where, kind string) bool {
	for _, f := range r.Findings {
		if f.Where == where && f.Kind == kind {
			return true
		}
	}
	return false
}

// needsRepair: errors, or a torn WAL tail (which opening for writing
// discards, so that the store's files are clean again).
func needsRepair(c *CheckResult) bool {
	for _, f := range c.Findings {
		if f.Severity == SevError || f.Kind == "wal-torn" {
			return true
		}
	}
	return false
}

func (r *RepairResult) repairDir(dir string, opts store.Options) error {
	rep, err := store.RepairDir(dir, opts)
	if err != nil {
		return fmt.Errorf("recovery: %w (the store as found is in %s)", err, r.Backup.Dir)
	}
	r.Actions = append(r.Actions, rep.Actions...)
	return nil
}

// replaySalvaged applies the events read behind the WAL damage.
func (r *RepairResult) replaySalvaged(dir string, opts store.Options) (err error) {
	st, err := store.Open(dir, opts)
	if err != nil {
		return fmt.Errorf("recovery: open after salvage: %w (the store as found is in %s)", err, r.Backup.Dir)
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	for _, ev := range r.Salvage.Events {
		if ev.Seq <= st.LastSeq() {
			r.AlreadyPresent++
			continue
		}
		if err := st.ReplayEvent(ev); err != nil {
			if errors.Is(err, store.ErrFailed) {
				return fmt.Errorf("recovery: replaying salvaged events: %w", err)
			}
			r.Refused = append(r.Refused, fmt.Sprintf("event %d (%v): %v", ev.Seq, ev.Kind, err))
			continue
		}
		r.Replayed++
	}
	if err := st.Sync(); err != nil {
		return fmt.Errorf("recovery: sync after replaying salvaged events: %w", err)
	}
	return nil
}
