package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// SchemaVersion is the key-schema version this code writes (meta/version).
// Open refuses a store with a newer version: an old binary must not guess at
// a layout it does not know.
const SchemaVersion uint64 = 1

var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store: closed")
	// ErrReadOnly is returned by Commit on a store opened with ReadOnly.
	ErrReadOnly = errors.New("store: opened read-only")
	// ErrFailed is returned by Commit once a write or WAL fsync has failed:
	// after that nothing the store says about durability can be trusted, so
	// it accepts nothing more. The broker must stop and restart, recovering
	// from what reached the disk.
	ErrFailed = errors.New("store: failed")
	// ErrNewerSchema is returned by Open for a store written by a newer Cairn.
	ErrNewerSchema = errors.New("store: schema version is newer than this binary supports")
)

// CorruptionError reports that Pebble found corrupt data (a checksum
// mismatch in the WAL, an sstable or the manifest). It is distinct from other
// errors so that the CLI can tell the user what to do about it.
type CorruptionError struct {
	Dir string
	Err error
}

func (e *CorruptionError) Error() string {
	where := ""
	if d := corruptionDetail(e.Err); d != "" { // corrupt.go: the file and offset
		where = " [" + d + "]"
	}
	msg := strings.ReplaceAll(e.Err.Error(), "\n<corruption detail carrier>", "") // a marker of Pebble's, not a message
	return fmt.Sprintf("store: %s is corrupt: %s%s (run `cairn recover` to salvage what is readable)", e.Dir, msg, where)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// Store is Cairn's durable state. All methods are safe for concurrent use.
type Store struct {
	dir  string
	db   *pebble.DB
	opts Options
	log  *slog.Logger

	// mu is the commit mutex (commit.go): it serializes sequence assignment,
	// batch building and pebble commits, and guards everything below it.
	mu      sync.Mutex
	closed  bool
	lastSeq uint64
	tx      txn // reused for every commit; see apply.go

	// last mirrors lastSeq for lock-free LastSeq.
	last atomic.Uint64

	// qmu guards queues, the in-memory QueueInfo of every queue. Commit
	// updates it (under mu) only after the batch is committed; readers take
	// qmu alone so that QueueInfo never waits behind a commit.
	qmu    sync.RWMutex
	queues map[string]QueueInfo

	pipe  pipeline   // commit.go
	space spaceGuard // space.go

	// reads counts readers inside the DB so that Close waits for them
	// instead of closing Pebble under a live iterator (see enterRead).
	rmu      sync.Mutex
	rcond    *sync.Cond
	readers  int
	dbClosed bool

	closeOnce sync.Once
	closeErr  error

	// queueReadHook, if set (tests only), runs in ReadQueue between reading
	// the entries and reading their bodies.
	queueReadHook func()

	// cmu serializes compaction passes (compact.go) and guards qcursor,
	// where the last pass stopped in the queue expiry index.
	cmu     sync.Mutex
	qcursor []byte
}

// Open opens the store in dir, creating it if absent (unless ReadOnly).
//
// A new store gets meta/version and is then flushed: the first
// WAL of a brand-new Pebble is written before the format version is raised,
// in a format that cannot tell a corrupt record from a torn tail. After the
// flush, every acknowledged write lives in a WAL whose corruption makes Open
// fail loudly. A corruption found while opening is returned as a
// *CorruptionError — including damage Pebble itself would let pass: synced
// records it would drop from the newest WAL's last block (salvage.go,
// checkNewestWAL).
func Open(dir string, opts Options) (*Store, error) {
	s, err := open(dir, opts.withDefaults())
	if err != nil {
		return nil, err
	}
	return s, nil
}

func open(dir string, opts Options) (s *Store, err error) {
	defer func() {
		if fe := fatalFrom(recover()); fe != nil {
			s, err = nil, wrapOpenErr(dir, fe)
		}
	}()
	if err := checkNewestWAL(opts.FS, dir); err != nil {
		return nil, err
	}
	db, err := pebble.Open(dir, opts.pebbleOptions())
	if err != nil {
		return nil, wrapOpenErr(dir, err)
	}
	s = &Store{
		dir:    dir,
		db:     db,
		opts:   opts,
		log:    opts.Logger.With("component", "store"),
		queues: make(map[string]QueueInfo),
	}
	s.rcond = sync.NewCond(&s.rmu)
	s.tx.init(s)
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, wrapOpenErr(dir, err)
	}
	s.last.Store(s.lastSeq)
	if !opts.ReadOnly {
		s.pipe.start(s)
		s.space.start(s)
	}
	s.log.Info("store opened", "dir", dir, "last_seq", s.lastSeq, "queues", len(s.queues), "read_only", opts.ReadOnly)
	return s, nil
}

func wrapOpenErr(dir string, err error) error {
	if pebble.IsCorruptionError(err) {
		return &CorruptionError{Dir: dir, Err: err}
	}
	if isLockErr(err) {
		return lockedErr(dir, err)
	}
	return fmt.Errorf("store: open %s: %w", dir, err)
}

// load initializes a new store or checks an existing one's version, then
// finds the last seq and reads every QueueInfo into memory.
func (s *Store) load() error {
	ver, found, err := s.getUint64(keyVersion)
	if err != nil {
		return err
	}
	if !found {
		if err := s.initNew(); err != nil {
			return err
		}
		ver = SchemaVersion
	}
	if ver > SchemaVersion {
		return fmt.Errorf("%w: store has version %d, this binary supports %d", ErrNewerSchema, ver, SchemaVersion)
	}
	if ver < SchemaVersion {
		return fmt.Errorf("store: schema version %d is older than %d and no migration exists", ver, SchemaVersion)
	}
	floor, _, err := s.getUint64(keySeq)
	if err != nil {
		return err
	}
	logged, err := s.lastLogged()
	if err != nil {
		return err
	}
	s.lastSeq = max(floor, logged)
	return s.loadQueues()
}

// initNew writes the metadata of a brand-new store and flushes it (see Open).
// A Pebble directory that holds keys but no meta/version is not ours.
func (s *Store) initNew() error {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return err
	}
	nonEmpty := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if nonEmpty {
		return errors.New("holds data but no meta/version: not a Cairn store")
	}
	if s.opts.ReadOnly {
		return errors.New("no meta/version: store was never initialized")
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(keyVersion, binary.BigEndian.AppendUint64(nil, SchemaVersion), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("write meta: %w", err)
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("initial flush: %w", err)
	}
	s.log.Info("store created", "dir", s.dir, "schema", SchemaVersion)
	return nil
}

func (s *Store) getUint64(key []byte) (uint64, bool, error) {
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", key, err)
	}
	defer closer.Close()
	if len(val) != 8 {
		return 0, false, fmt.Errorf("%w: %s: value of %d bytes, want 8", ErrUndecodable, key, len(val))
	}
	return binary.BigEndian.Uint64(val), true, nil
}

// lastLogged returns the seq of the last e/ key (0 if the log is empty).
// Every commit writes its events to the log, so this is the last committed
// seq unless TruncateLog removed the whole log, in which case meta/seq holds
// it. Not writing meta/seq in every commit saves a key per commit.
func (s *Store) lastLogged() (uint64, error) {
	p := familyPrefix(famEvent)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return 0, err
	}
	var seq uint64
	if it.Last() {
		seq, _, err = splitU64(it.Key())
	}
	return seq, errors.Join(err, it.Error(), it.Close())
}

// loadQueues reads every n/<client> record into s.queues.
func (s *Store) loadQueues() error {
	p := familyPrefix(famQInfo)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		client, rest, err := splitClient(it.Key())
		if err == nil && len(rest) != 0 {
			err = fmt.Errorf("%w %q", errKeyShape, it.Key())
		}
		if err != nil {
			_ = it.Close()
			return err
		}
		qi, err := decodeQueueInfo(it.Value())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("%w: queue info of %q: %w", ErrUndecodable, client, err)
		}
		s.queues[client] = qi
	}
	return errors.Join(it.Error(), it.Close())
}

// Close waits for in-flight commits and their completions, syncs the WAL a
// last time (so non-durable commits survive a clean shutdown too), and
// closes Pebble. It is idempotent; later calls return the first result.
// Close must not be called from a done callback or a ForEach callback.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Store) close() (err error) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if !s.opts.ReadOnly {
		s.space.halt()
		s.pipe.stop()
	}
	s.rmu.Lock()
	s.dbClosed = true
	for s.readers > 0 {
		s.rcond.Wait()
	}
	s.rmu.Unlock()
	failErr := s.pipe.failure()
	defer recoverFatal(&err)
	if cerr := s.db.Close(); cerr != nil && failErr == nil {
		return fmt.Errorf("store: close %s: %w", s.dir, cerr)
	}
	if failErr != nil {
		return fmt.Errorf("store: close %s after failure: %w", s.dir, failErr)
	}
	s.log.Info("store closed", "dir", s.dir, "last_seq", s.LastSeq())
	return nil
}

// enterRead registers a reader; it fails once Close has begun. Every read
// path brackets its use of s.db with enterRead/exitRead. A counter, not an
// RWMutex, so that a reader nested inside another reader's callback cannot
// deadlock against a waiting Close.
func (s *Store) enterRead() error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.dbClosed {
		return ErrClosed
	}
	s.readers++
	return nil
}

func (s *Store) exitRead() {
	s.rmu.Lock()
	s.readers--
	if s.readers == 0 {
		s.rcond.Broadcast()
	}
	s.rmu.Unlock()
}

// LastSeq is the sequence of the last committed event (0 if none). It never
// goes back, even across restarts and log truncation.
func (s *Store) LastSeq() uint64 { return s.last.Load() }

// QueueInfo returns client's queue summary from memory. It reflects every
// Commit that has returned, durable or not. A client with no queue has
// QueueInfo{Head: 1, Next: 1}.
func (s *Store) QueueInfo(client string) QueueInfo {
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	if qi, ok := s.queues[client]; ok {
		return qi
	}
	return emptyQueue
}

// emptyQueue is the QueueInfo of a client that has no queue. Queue seqs start
// at 1 so that 0 can mean "none" (Event.QSeq is omitempty).
var emptyQueue = QueueInfo{Head: 1, Next: 1}

// Metrics returns Pebble's metrics (nil after Close).
func (s *Store) Metrics() *pebble.Metrics {
	if s.enterRead() != nil {
		return nil
	}
	defer s.exitRead()
	return s.db.Metrics()
}

// Dir is the directory the store was opened in.
func (s *Store) Dir() string { return s.dir }
