package store

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure Open.
type Options struct {
	// FS is the filesystem; nil means vfs.Default (disk). Tests use
	// vfs.NewMem() or vfs.NewCrashableMem().
	FS vfs.FS
	// MemTableSize is Pebble's memtable size; 0 means 64 MiB. Pebble's own
	// 4 MiB default flushes too often for a queue workload.
	MemTableSize uint64
	// Logger receives the store's and Pebble's logs; nil means slog.Default().
	Logger *slog.Logger
	// ReadOnly opens an existing store for inspection: nothing is written,
	// Commit returns ErrReadOnly, and Open fails if the store does not exist.
	ReadOnly bool
	// MustExist makes Open fail, instead of creating a store, where there
	// is none (a tool that works on an existing store; ReadOnly implies it).
	MustExist bool
	// Now is the clock for retained-message expiry checks; nil means time.Now.
	Now func() time.Time
	// Observer, if set, receives commit batch sizes and fsync latencies
	// (observe.go).
	Observer CommitObserver

	// MinFreeSpace is the free-space reserve of the store's volume, bytes:
	// below it, commits that would grow the store are refused with
	// ErrNoSpace (space.go). 0 means the larger of DefaultMinFreeSpace and
	// 4 × MemTableSize (room for a WAL and a flush of a full memtable, and
	// for compactions that free space); negative turns the guard off.
	MinFreeSpace int64
	// SpaceCheckInterval is how often free space is measured; 0 means 1s.
	SpaceCheckInterval time.Duration
	// SpaceLogInterval is how often a store that stays low on space logs
	// it again; 0 means 30s.
	SpaceLogInterval time.Duration
}

const defaultMemTableSize = 64 << 20

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = defaultMemTableSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinFreeSpace == 0 {
		o.MinFreeSpace = max(DefaultMinFreeSpace, 4*int64(o.MemTableSize))
	}
	if o.SpaceCheckInterval <= 0 {
		o.SpaceCheckInterval = defaultSpaceCheck
	}
	if o.SpaceLogInterval <= 0 {
		o.SpaceLogInterval = defaultSpaceLog
	}
	return o
}

func (o Options) pebbleOptions() *pebble.Options {
	log := o.Logger.With("component", "pebble")
	fs := o.FS
	if fs == vfs.Default && !o.ReadOnly {
		fs = zeroAheadFS{fs} // zeroahead.go
	}
	po := &pebble.Options{
		FS:                 fs,
		MemTableSize:       o.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		ReadOnly:           o.ReadOnly,
		ErrorIfNotExists:   o.ReadOnly || o.MustExist,
		Logger:             pebbleLogger{log},
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				log.Error("background error", "err", err)
			},
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				log.Error("data corruption", "path", info.Path, "err", info.Details)
			},
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
				log.Warn("write stall", "reason", info.Reason)
			},
			WriteStallEnd: func() { log.Info("write stall ended") },
		},
	}
	// Bloom filters on every level, L0 included: the hottest reads are
	// point lookups of keys that usually do not exist (the c/ refcount of a
	// fan-out-1 message on every ack). Without a filter each such miss reads
	// and decompresses a block of every sstable it could be in; profiled,
	// that was a fifth of the broker's CPU under a QoS 1 fan-in.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return po
}

// pebbleLogger routes Pebble's logs to slog. Pebble's chatty job logs go to
// Debug.
//
// Fatalf must not return: Pebble calls it when a commit fails — including
// when the WAL fsync of a synced write fails — and if it returned, DB.Apply
// would go on to return nil as if the write were durable. It panics with a
// *fatalError instead; the store's own calls into Pebble (Open, commit, sync,
// close) recover that panic and turn it into a failed store, so an fsync
// error reaches the done callbacks instead of being mistaken for success. A
// Fatalf on one of Pebble's background goroutines is not recovered and
// crashes the process, which is the only safe outcome there.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("fatal: " + msg)
	panic(&fatalError{msg: msg})
}

// fatalError is the panic value of pebbleLogger.Fatalf.
type fatalError struct{ msg string }

func (e *fatalError) Error() string { return e.msg }

// recoverFatal turns a pebbleLogger.Fatalf panic into *errp. Any other panic
// is re-raised. Use only as: defer recoverFatal(&err) (recover works only in
// the deferred function itself).
func recoverFatal(errp *error) {
	if err := fatalFrom(recover()); err != nil {
		*errp = err
	}
}

// fatalFrom returns the *fatalError carried by a recovered panic value r
// (nil if r is nil) and re-raises any other panic.
func fatalFrom(r any) error {
	if r == nil {
		return nil
	}
	fe, ok := r.(*fatalError)
	if !ok {
		panic(r)
	}
	return fe
}
