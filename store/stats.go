package store

// Stats for `cairn inspect stats`: what each key family holds, the event
// log's extent, and the Pebble numbers an operator asks about first (LSM
// levels, WAL, compaction debt, memtables, fsync latency).
//
// Key and byte counts come from a scan of one snapshot (they are exact, and
// cost a read of the whole store); the disk figures are Pebble's estimates.

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// FamilyStats describes one key family.
type FamilyStats struct {
	Family string `json:"family"` // name, e.g. "sessions"
	Prefix string `json:"prefix"` // key prefix, e.g. "s/"
	Keys   int64  `json:"keys"`
	// Bytes is the logical size, keys plus values.
	Bytes int64 `json:"bytes"`
	// DiskBytes is Pebble's estimate of the family's size on disk
	// (sstables only: data still in the memtable counts as 0).
	DiskBytes uint64 `json:"disk_bytes"`
}

// LevelStats is one LSM level.
type LevelStats struct {
	Level     int     `json:"level"`
	Sublevels int32   `json:"sublevels"`
	Files     int64   `json:"files"`
	Bytes     int64   `json:"bytes"`
	Score     float64 `json:"score"`
}

// Stats is `cairn inspect stats`.
type Stats struct {
	Dir      string        `json:"dir"`
	ReadOnly bool          `json:"read_only"`
	Schema   uint64        `json:"schema_version"`
	Families []FamilyStats `json:"families"`
	// FirstSeq and LastSeq bound the event log (FirstSeq 0: empty log);
	// LastSeq is the store's last committed seq even when the log is
	// truncated.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`

	Levels            []LevelStats `json:"levels"`
	DiskBytes         uint64       `json:"disk_bytes"` // everything Pebble has on disk
	WALFiles          int64        `json:"wal_files"`
	WALBytes          uint64       `json:"wal_bytes"`          // live data in the WAL
	WALPhysicalBytes  uint64       `json:"wal_physical_bytes"` // WAL files on disk
	MemTables         int64        `json:"memtables"`
	MemTableBytes     uint64       `json:"memtable_bytes"`
	CompactionDebt    uint64       `json:"compaction_debt"`
	CompactionsActive int64        `json:"compactions_active"`
	Compactions       int64        `json:"compactions"`
	Flushes           int64        `json:"flushes"`
	ReadAmp           int          `json:"read_amp"`
	Tombstones        uint64       `json:"tombstones"`

	// Commit pipeline counters since the store was opened (zero on a
	// store opened for inspection): fsyncs and their mean latency.
	Commits   uint64        `json:"commits"`
	Syncs     uint64        `json:"syncs"`
	FsyncMean time.Duration `json:"fsync_mean_ns"`
}

// families lists the key families in display order.
var families = []struct {
	fam  byte
	name string
}{
	{famSession, "sessions"},
	{famSub, "subscriptions"},
	{famQInfo, "queue-summaries"},
	{famQueue, "queue-entries"},
	{famMsg, "message-bodies"},
	{famRef, "refcounts"},
	{famInbound, "inbound-qos2"},
	{famRetained, "retained"},
	{famExpiry, "retained-expiry"},
	{famQExpiry, "queue-expiry"},
	{famEvent, "events"},
}

// Stats scans the store and gathers its statistics.
func (s *Store) Stats() (*Stats, error) {
	st := &Stats{Dir: s.dir, ReadOnly: s.opts.ReadOnly, Schema: SchemaVersion, LastSeq: s.LastSeq()}
	err := s.snapshotRead("stats", func(r pebble.Reader) error {
		for _, f := range families {
			fs := FamilyStats{Family: f.name, Prefix: string(familyPrefix(f.fam))}
			err := iterFamily(r, f.fam, func(key, val []byte) error {
				if f.fam == famEvent && st.FirstSeq == 0 {
					st.FirstSeq, _, _ = splitU64(key)
				}
				fs.Keys++
				fs.Bytes += int64(len(key) + len(val))
				return nil
			})
			if err != nil {
				return err
			}
			p := familyPrefix(f.fam)
			if fs.DiskBytes, err = s.db.EstimateDiskUsage(p, prefixEnd(p)); err != nil {
				return err
			}
			st.Families = append(st.Families, fs)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.enterRead(); err != nil {
		return nil, err
	}
	m := s.db.Metrics()
	s.exitRead()
	for i, l := range m.Levels {
		st.Levels = append(st.Levels, LevelStats{Level: i, Sublevels: l.Sublevels, Files: l.TablesCount, Bytes: l.TablesSize, Score: l.Score})
	}
	st.DiskBytes = m.DiskSpaceUsage()
	st.WALFiles, st.WALBytes, st.WALPhysicalBytes = m.WAL.Files, m.WAL.Size, m.WAL.PhysicalSize
	st.MemTables, st.MemTableBytes = m.MemTable.Count, m.MemTable.Size
	st.CompactionDebt, st.CompactionsActive, st.Compactions = m.Compact.EstimatedDebt, m.Compact.NumInProgress, m.Compact.Count
	st.Flushes, st.ReadAmp, st.Tombstones = m.Flush.Count, m.ReadAmp(), m.Keys.TombstoneCount
	cs := s.CommitStats()
	st.Commits, st.Syncs = cs.Commits, cs.Syncs
	if cs.Syncs > 0 {
		st.FsyncMean = cs.SyncTime / time.Duration(cs.Syncs)
	}
	return st, nil
}
