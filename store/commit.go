package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The commit pipeline.
//
// Commit turns events into one Pebble batch and hands back control at once;
// durability and completion happen on two goroutines of the store's own:
//
//	caller ──Commit──▶ [mu: assign seqs, build batch, db.Apply(NoSync)] ──▶ pending list
//	syncer:    while a durable commit is not yet covered: db.LogData(nil, Sync) ──▶ synced = committed-at-start
//	completer: pops the pending list in order, calling done when the entry is ready
//
// Invariants:
//
//  1. Order. Commit holds Store.mu from sequence assignment until the batch is
//     in Pebble and its entry is on the pending list, so log seqs, Pebble
//     commit order, WAL order and pending-list order are all the same order.
//     Reads inside the next batch see this one (Apply(NoSync) returns after
//     the batch is published to readers).
//
//  2. Coverage. pipeline.committed is the seq of the last batch whose
//     db.Apply has returned, i.e. whose WAL record has been written. The
//     syncer reads committed, then calls db.LogData(nil, pebble.Sync). That
//     record is written to the WAL after every batch counted in committed,
//     and Pebble's LogWriter fsyncs a file through a record before
//     acknowledging it, so on success everything through committed is on
//     stable storage. Batches in earlier WAL files are covered too: Pebble's
//     rotateWAL (db.go) closes the previous WAL — which syncs it — before the
//     first record is written to the next one. Hence synced = committed-at-start.
//
//  3. Group commit. While one fsync runs, commits keep landing on the pending
//     list; the next LogData covers all of them. One fsync per round, however
//     many commits — from many connections or one pipelining publisher —
//     arrived meanwhile. No timer: an idle store syncs at once.
//
//  4. Completion. The completer calls done callbacks strictly in commit
//     order, outside every lock (so a callback may call Commit). A durable
//     entry is ready once synced >= its seq; a non-durable entry is ready as
//     soon as it is at the head of the list, i.e. after every earlier commit
//     has completed. Entries without a callback are not queued at all.
//
//  5. Failure is final. If db.Apply or the sync fails (Pebble reports a
//     failed fsync through Logger.Fatalf, which pebbleLogger turns into a
//     recovered panic), the pipeline records the error; every entry not
//     already covered by a successful sync completes with an error wrapping
//     ErrFailed, and every later Commit returns ErrFailed. An fsync error is
//     never retried: after a failed fsync the kernel may have dropped the
//     dirty pages, so a later successful fsync proves nothing.
//
//  6. Close stops new commits (under mu), makes the syncer sync whatever was
//     committed (durable or not), waits for both goroutines to drain, then
//     closes Pebble.
//
// Why not Pebble's own Sync commits? A pebble.Sync Apply blocks its caller
// for the fsync, so a single publisher pipelining N messages would pay N
// fsyncs unless it batched them itself, and completions from different
// goroutines would race each other. NoSync commits under one mutex plus one
// syncer give the same group-commit batching (Pebble's LogWriter coalesces
// concurrent syncs in the same way) while keeping commits strictly ordered
// and never blocking the committer. ApplyNoSyncWait would do much the same
// but Pebble marks it experimental.

// pendingCommit is one entry of the ordered completion list.
type pendingCommit struct {
	seq     uint64 // the last log seq of the commit (LastSeq after it)
	durable bool
	done    func(error)
}

// pipeline is the syncer/completer state. Its fields are guarded by mu.
type pipeline struct {
	s        *Store
	mu       sync.Mutex
	syncCond sync.Cond // wakes the syncer
	doneCond sync.Cond // wakes the completer

	pending   []pendingCommit
	committed uint64 // seq of the last batch applied to Pebble
	durable   uint64 // highest seq some durable commit needs synced
	synced    uint64 // WAL fsynced through this seq
	closing   bool
	syncerOut bool  // the syncer has exited
	err       error // first failure; sticky

	failed   atomic.Bool   // mirrors err != nil for the Commit fast path
	failedCh chan struct{} // closed with the first failure (Store.Failed)
	wg       sync.WaitGroup

	commits  atomic.Uint64
	events   atomic.Uint64
	syncs    atomic.Uint64
	syncNano atomic.Int64
	syncHist syncHist // syncstats.go
	// nCommits counts the non-empty commits enqueued, syncedCommits those
	// already reported as covered by an fsync (observe.go); both under mu.
	nCommits, syncedCommits uint64
}

func (p *pipeline) start(s *Store) {
	p.s = s
	p.failedCh = make(chan struct{})
	p.syncCond.L = &p.mu
	p.doneCond.L = &p.mu
	// Everything present at Open is durable: Pebble flushes the memtables
	// it replays from the WAL (with fsync) before Open returns.
	p.committed, p.durable, p.synced = s.lastSeq, s.lastSeq, s.lastSeq
	p.wg.Add(2)
	go p.syncLoop()
	go p.completeLoop()
}

// Commit assigns ev.Seq to each event (one global, gap-free sequence), sets
// MsgID = Seq for EvPublished and assigns Target.Seq from each target's
// QueueInfo.Next, then appends the events to the log and applies them to the
// projections in one Pebble batch committed without waiting for the disk.
//
// If Commit returns an error nothing was applied (the assigned fields of evs
// are then meaningless) and done is never called. Otherwise done, if non-nil,
// is called later on the store's completion goroutine, in commit order: for
// durable commits after the WAL has been fsynced through this batch, for
// non-durable ones once every earlier commit has completed. A non-nil error
// passed to done wraps ErrFailed: the batch may not be durable and the store
// accepts nothing more. done must not block for long (it holds up every later
// completion) and must not call Close.
//
// An empty evs is a barrier: nothing is written, and done runs after every
// earlier commit has completed (and, if durable, is on disk).
func (s *Store) Commit(evs []*Event, durable bool, done func(error)) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.pipe.failure(); err != nil {
		return err
	}
	if len(evs) > 0 && s.space.tight() { // the free-space guard (space.go)
		if grows, err := s.growth(evs); err != nil || grows {
			if err != nil {
				return fmt.Errorf("store: commit: %w", err)
			}
			return s.space.refuse()
		}
	}
	if len(evs) > 0 {
		if err := s.commitLocked(evs, true); err != nil {
			return err
		}
	}
	s.pipe.enqueue(s.lastSeq, durable, done, len(evs))
	return nil
}

// ReplayEvent applies a logged event with its preassigned Seq, MsgID and
// Target.Seq values (as read by Events from another store) and appends it to
// this store's log. Seq must be greater than LastSeq; gaps are allowed (a
// truncated log). It is how `replay` rebuilds projections into a fresh store.
// The write is not synced; call Sync when done.
func (s *Store) ReplayEvent(ev *Event) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.pipe.failure(); err != nil {
		return err
	}
	if err := s.commitLocked([]*Event{ev}, false); err != nil {
		return err
	}
	s.pipe.enqueue(s.lastSeq, false, nil, 1)
	return nil
}

// Sync blocks until everything committed so far is fsynced. It must not be
// called from a done callback (it waits for the completion goroutine).
func (s *Store) Sync() error {
	ch := make(chan error, 1)
	if err := s.Commit(nil, true, func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

// commitLocked builds one batch from evs, commits it with NoSync and, only
// then, publishes the new in-memory state (QueueInfo, lastSeq). Called with
// s.mu held. assign selects Commit (assign seqs) or ReplayEvent (check them).
func (s *Store) commitLocked(evs []*Event, assign bool) (err error) {
	defer func() {
		if err != nil {
			s.entries.reset() // it may hold changes of the failed batch
			s.refs.reset()
		}
	}()
	var b *pebble.Batch
	if s.anyReads(evs) || s.mayDrop(evs) {
		b = s.db.NewIndexedBatch()
	} else {
		b = s.db.NewBatch() // cheaper: no per-key index to maintain
	}
	defer b.Close()
	t := &s.tx
	t.begin(b)
	seq := s.lastSeq
	for _, ev := range evs {
		if ev == nil {
			return errors.New("store: commit: nil event")
		}
		if assign {
			seq++
			ev.Seq = seq
		} else if ev.Seq <= seq {
			return fmt.Errorf("store: replay: event seq %d is not after %d", ev.Seq, seq)
		} else {
			seq = ev.Seq
		}
		if err := t.apply(ev, assign); err != nil {
			return fmt.Errorf("store: event %d (%v): %w", ev.Seq, ev.Kind, err)
		}
	}
	if err := t.finish(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	if err := s.applyBatch(b); err != nil {
		s.pipe.fail(err)
		return fmt.Errorf("%w: commit: %v", ErrFailed, err)
	}
	s.space.wrote(b.Len())
	t.publish()
	s.lastSeq = seq
	s.last.Store(seq)
	return nil
}

// applyBatch commits b without waiting for the WAL fsync, turning a Pebble
// Fatalf into an error (see pebbleLogger).
func (s *Store) applyBatch(b *pebble.Batch) (err error) {
	defer recoverFatal(&err)
	return s.db.Apply(b, pebble.NoSync)
}

// enqueue records a commit that has been applied to Pebble. Called with s.mu
// held, so entries arrive in seq order.
func (p *pipeline) enqueue(seq uint64, durable bool, done func(error), events int) {
	if events > 0 {
		p.commits.Add(1)
		p.events.Add(uint64(events))
		p.observeCommit(events)
	}
	p.mu.Lock()
	if events > 0 {
		p.nCommits++
	}
	p.committed = seq
	if durable && seq > p.durable {
		p.durable = seq
		p.syncCond.Signal()
	}
	if done != nil {
		p.pending = append(p.pending, pendingCommit{seq: seq, durable: durable, done: done})
		p.doneCond.Signal()
	}
	p.mu.Unlock()
}

// syncLoop is the syncer goroutine (invariants 2, 3, 5, 6).
func (p *pipeline) syncLoop() {
	defer p.wg.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.err != nil || (p.closing && p.durable <= p.synced && p.committed <= p.synced) {
			p.syncerOut = true
			p.doneCond.Signal()
			return
		}
		if p.closing && p.committed > p.durable {
			p.durable = p.committed // final sync covers non-durable commits too
		}
		if p.durable <= p.synced {
			p.syncCond.Wait()
			continue
		}
		target, covers := p.committed, p.nCommits
		p.mu.Unlock()
		start := time.Now()
		err := p.syncWAL()
		took := time.Since(start)
		p.syncNano.Add(int64(took))
		p.syncHist.observe(took)
		p.mu.Lock()
		if err != nil {
			p.failLocked(fmt.Errorf("wal sync: %w", err))
			continue
		}
		p.syncs.Add(1)
		p.observeSync(took, covers)
		if target > p.synced {
			p.synced = target
		}
		p.doneCond.Signal()
	}
}

// syncWAL fsyncs the WAL through every record written before it.
func (p *pipeline) syncWAL() (err error) {
	defer recoverFatal(&err)
	return p.s.db.LogData(nil, pebble.Sync)
}

// completeLoop is the completer goroutine (invariants 4, 5).
func (p *pipeline) completeLoop() {
	defer p.wg.Done()
	var ready []pendingCommit
	var errs []error
	p.mu.Lock()
	for {
		n := 0
		for n < len(p.pending) {
			e := p.pending[n]
			if p.err == nil && e.durable && e.seq > p.synced {
				break
			}
			n++
		}
		if n == 0 {
			if p.closing && p.syncerOut && len(p.pending) == 0 {
				p.mu.Unlock()
				return
			}
			p.doneCond.Wait()
			continue
		}
		ready = append(ready[:0], p.pending[:n]...)
		errs = errs[:0]
		for _, e := range ready {
			var err error
			if p.err != nil && e.seq > p.synced {
				err = fmt.Errorf("%w: %v", ErrFailed, p.err)
			}
			errs = append(errs, err)
		}
		// Shift the rest down rather than reslicing, so the backing array is
		// reused instead of reallocated by every append; clear the tail so
		// completed callbacks can be collected.
		k := copy(p.pending, p.pending[n:])
		clear(p.pending[k:])
		p.pending = p.pending[:k]
		if k == 0 && cap(p.pending) > 1<<12 {
			p.pending = nil // let a backlog's large array go
		}
		p.mu.Unlock()
		for i, e := range ready {
			e.done(errs[i])
		}
		clear(ready)
		p.mu.Lock()
	}
}

// fail records the first failure of the store.
func (p *pipeline) fail(err error) {
	p.mu.Lock()
	p.failLocked(err)
	p.mu.Unlock()
}

func (p *pipeline) failLocked(err error) {
	if p.err == nil {
		p.err = err
		p.failed.Store(true)
		if p.failedCh != nil {
			close(p.failedCh)
		}
		if p.s != nil {
			p.s.log.Error("store failed: accepting no more commits", "err", err)
		}
	}
	p.syncCond.Signal()
	p.doneCond.Signal()
}

// failure returns an error wrapping ErrFailed once the store has failed.
func (p *pipeline) failure() error {
	if !p.failed.Load() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Errorf("%w: %v", ErrFailed, p.err)
}

// stop makes the syncer sync what is left and waits for both goroutines.
// New commits are already refused (Store.closed).
func (p *pipeline) stop() {
	p.mu.Lock()
	p.closing = true
	p.syncCond.Signal()
	p.doneCond.Signal()
	p.mu.Unlock()
	p.wg.Wait()
}

// CommitStats counts the pipeline's work since Open.
type CommitStats struct {
	Commits uint64 // non-empty Commit / ReplayEvent calls
	Events  uint64 // events committed
	Syncs   uint64 // WAL fsyncs issued by the syncer
	// SyncTime is the total time spent in those fsyncs; SyncTime/Syncs is
	// the fsync latency, and SyncTime over wall time how busy the disk is.
	SyncTime time.Duration
	// SyncLatency counts the fsyncs by latency: SyncLatency[i] those at
	// most SyncBuckets[i] (and above the bucket before), the last one those
	// slower than every bucket (syncstats.go). MaxSyncTime is the slowest.
	SyncLatency [len(SyncBuckets) + 1]uint64
	MaxSyncTime time.Duration
	// Waiting is the number of commits whose completion is pending right
	// now (most of them waiting for an fsync): a gauge of the disk's lag.
	Waiting int
}

// CommitStats returns the pipeline counters; Commits/Syncs is the
// group-commit factor.
func (s *Store) CommitStats() CommitStats {
	st := CommitStats{
		Commits:  s.pipe.commits.Load(),
		Events:   s.pipe.events.Load(),
		Syncs:    s.pipe.syncs.Load(),
		SyncTime: time.Duration(s.pipe.syncNano.Load()),
		Waiting:  s.pipe.waiting(),
	}
	s.pipe.syncHist.fill(&st)
	return st
}

// anyReads reports whether applying evs reads projections (see txn), which
// needs an indexed batch so that later events see earlier ones. The hottest
// commits only write: a non-retained publish, and the acks of subscribers
// whose queue the entry cache covers completely (entrycache.go) — unless
// the same batch also enqueues, which could cap a window half way.
func (s *Store) anyReads(evs []*Event) bool {
	enqueues, removals := false, false
	for _, ev := range evs {
		switch {
		case ev == nil:
		case ev.Kind == EvPublished:
			if ev.Msg != nil && ev.Msg.Retain {
				return true
			}
			enqueues = enqueues || len(ev.Targets) > 0
		case ev.Kind == EvAcked, ev.Kind == EvDropped:
			qi, ok := s.queues[ev.Client]
			if !ok {
				qi = emptyQueue
			}
			if !s.entries.readFree(ev.Client, ev.QSeq, qi, &s.refs) {
				return true
			}
			for _, q := range ev.QSeqs {
				if !s.entries.readFree(ev.Client, q, qi, &s.refs) {
					return true
				}
			}
			removals = true
		case ev.Kind == EvSessionOpened, ev.Kind == EvSessionClosed, ev.Kind == EvWillFired,
			ev.Kind == EvSubscribed, ev.Kind == EvUnsubscribed, ev.Kind == EvReleased:
		default:
			return true
		}
	}
	return enqueues && removals
}
