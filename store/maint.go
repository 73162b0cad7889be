package store

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// TruncateLog deletes the logged events with Seq < before (clamped to
// LastSeq()+1). Projections and LastSeq are unaffected; sequences never
// restart: the same batch records LastSeq in meta/seq, which Open uses when
// the log no longer shows it. The batch is a range tombstone plus that key,
// committed without sync: losing it in a crash only means the log is
// truncated again later. It takes the commit mutex, so it is ordered with
// commits.
func (s *Store) TruncateLog(before uint64) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	before = min(before, s.lastSeq+1)
	if before <= 1 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(eventKey(nil, 0), eventKey(nil, before), nil)
	_ = b.Set(keySeq, binary.BigEndian.AppendUint64(nil, s.lastSeq), nil)
	if err := s.applyBatch(b); err != nil {
		return fmt.Errorf("store: truncate log before %d: %w", before, err)
	}
	return nil
}

// Checkpoint writes a consistent copy of the store into dir (which must not
// exist), hard-linking sstables where it can. The copy includes every commit
// accepted so far, durable or not; it opens with Open like any store. It is
// the basis for online backup and for inspecting a running broker's store.
func (s *Store) Checkpoint(dir string) error {
	if err := s.enterRead(); err != nil {
		return err
	}
	defer s.exitRead()
	if s.opts.ReadOnly {
		// Pebble's Checkpoint fails on a read-only DB; nothing writes the
		// directory while we hold its lock, so a file copy is consistent
		// (backup.go).
		return copyFiles(s.opts.FS, s.dir, dir)
	}
	// Sync the WAL first so that the copied WAL holds every accepted commit.
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("store: checkpoint to %s: %w", dir, err)
	}
	return nil
}
