package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/store"
)

// The broker's side of the compaction task (the mechanism is store.Compact,
// store/compact.go): the engine decides which queues may be touched, keeps
// its in-memory retained index in step, counts and logs.
//
// Invariants:
//   - A queue is expired by the task only while its session has no
//     connection, and the task holds the client id's connect lock while it
//     commits (so no connection can attach and read the queue meanwhile).
//     A connected session's expired messages are dropped by its writer as
//     it reaches them (writer.go: an expired message is never sent), so
//     nothing is dropped twice.
//   - The in-memory retained index loses a topic only if the value it holds
//     is itself expired (topics.Retained.DeleteIf): a retained message
//     published after the task's scan survives the task's commit.
//   - Readers never serve an expired retained message, swept or not:
//     retainedFor skips them, and so does the store's ForEachRetained.
//   - Passes are serialized by the store; RunCompaction and Compact (the
//     admin endpoint, `cairn compact`) may run concurrently.

// QueuePolicy is what happens when a persistent session's queue is full.
type QueuePolicy string

// Queue policies.
const (
	// QueueReject refuses a PUBLISH that would overflow any subscriber's
	// queue: nothing of it is stored or delivered. A 5.0 publisher gets
	// PUBACK / PUBREC with reason 0x97 (quota exceeded); a 3.1.1 (or 3.1)
	// publisher gets no PUBACK / PUBREC at all, its connection stays open,
	// and it sends the message again (DUP) on its next connection, when it
	// is evaluated afresh. QoS 0 messages are never queued and never
	// refused. Wills and retained messages sent on subscribe cannot be
	// refused to anyone: the full queue just does not get them (counted).
	QueueReject QueuePolicy = "reject"
	// QueueDropOldest makes room by dropping the oldest queued messages
	// that are not in flight (and not awaiting PUBCOMP).
	QueueDropOldest QueuePolicy = "drop-oldest"
)

// MaintOptions configure retained TTLs, queue limits and the compaction
// task. Zero values mean: no TTL, no limit, keep the log forever.
type MaintOptions struct {
	// RetainedTTL is how long a retained message is kept (0: until
	// replaced, cleared or expired by its own 5.0 message expiry).
	RetainedTTL time.Duration
	// RetainedTTLRules override RetainedTTL per topic filter; the most
	// specific matching rule wins (retainttl.go).
	RetainedTTLRules []TTLRule
	// EventRetention keeps logged events younger than this; 0: no time limit.
	EventRetention time.Duration
	// EventRetentionBytes keeps about this many bytes of event log on disk;
	// 0: no size limit.
	EventRetentionBytes int64
	// QueueLimitMessages and QueueLimitBytes (payload bytes) bound every
	// persistent session's queue; 0: unlimited.
	QueueLimitMessages int
	QueueLimitBytes    int64
	// QueueLimitPolicy applies when a queue is full; "" means reject.
	QueueLimitPolicy QueuePolicy
	// RetainedLimitMessages and RetainedLimitBytes (memory, as
	// retainedSize counts it) bound the retained messages a client may
	// add; 0: unlimited (retainlimit.go).
	RetainedLimitMessages int
	RetainedLimitBytes    int64
	// CompactBatch bounds the events of one maintenance commit (the longest
	// the task holds up the broker's commits); 0: 128.
	CompactBatch int
	// CompactThreshold is how many keys a pass must free in a key family
	// before it asks Pebble to compact them; 0: 1024, negative: never.
	CompactThreshold int
}

// Check validates the options (the CLI calls it; New does not fail, it
// logs and ignores invalid TTL rules).
func (o MaintOptions) Check() error {
	if _, err := checkTTLRules(o.RetainedTTLRules); err != nil {
		return err
	}
	switch {
	case o.RetainedTTL < 0:
		return fmt.Errorf("retained TTL %v is negative", o.RetainedTTL)
	case o.EventRetention < 0:
		return fmt.Errorf("event retention %v is negative", o.EventRetention)
	case o.EventRetentionBytes < 0:
		return fmt.Errorf("event retention bytes %d is negative", o.EventRetentionBytes)
	case o.QueueLimitMessages < 0 || o.QueueLimitMessages > 1<<31-1:
		return fmt.Errorf("queue limit %d messages is not in 0..2147483647", o.QueueLimitMessages)
	case o.QueueLimitBytes < 0:
		return fmt.Errorf("queue limit %d bytes is negative", o.QueueLimitBytes)
	case o.RetainedLimitMessages < 0:
		return fmt.Errorf("retained limit %d messages is negative", o.RetainedLimitMessages)
	case o.RetainedLimitBytes < 0:
		return fmt.Errorf("retained limit %d bytes is negative", o.RetainedLimitBytes)
	}
	switch o.QueueLimitPolicy {
	case "", QueueReject, QueueDropOldest:
	default:
		return fmt.Errorf("queue limit policy %q: want %q or %q", o.QueueLimitPolicy, QueueReject, QueueDropOldest)
	}
	return nil
}

func (o MaintOptions) withDefaults(log *slog.Logger) MaintOptions {
	rules, err := checkTTLRules(o.RetainedTTLRules)
	if err != nil {
		log.Error("retained TTL rules ignored", "err", err)
	}
	o.RetainedTTLRules = rules
	if o.QueueLimitPolicy == "" {
		o.QueueLimitPolicy = QueueReject
	}
	return o
}

// MaintStats are the counters of the compaction task and the queue limits.
// Every expiry and drop they count is also an event in the store's log and
// a log line.
type MaintStats struct {
	CompactRuns     atomic.Int64 // passes completed
	CompactFailures atomic.Int64 // passes that ended in an error
	CompactNanos    atomic.Int64 // wall time of all passes
	// CompactPauses counts the task's commits; CompactPauseNanos is the sum
	// and CompactMaxPauseNanos the largest of their commit-mutex hold times:
	// how long the task held up the broker's own commits.
	CompactPauses        atomic.Int64
	CompactPauseNanos    atomic.Int64
	CompactMaxPauseNanos atomic.Int64
	PebbleCompactions    atomic.Int64 // key spans Pebble was asked to compact

	RetainedExpired atomic.Int64 // retained messages deleted (5.0 expiry or server TTL)
	QueuedExpired   atomic.Int64 // queued messages of offline sessions deleted because they expired
	BodiesCollected atomic.Int64 // orphan message bodies deleted (full passes)
	EventsTruncated atomic.Int64 // log events deleted past the retention window

	QueueFullRejected atomic.Int64 // publishes refused: a subscriber's queue was full (reject)
	QueueFullSkipped  atomic.Int64 // deliveries not queued because the queue was full
	QueueFullDropped  atomic.Int64 // queued messages dropped to make room (drop-oldest)

	RetainedFullRejected atomic.Int64 // retained publishes refused: the retained limits were reached
}

// MaintStats returns the live counters of the compaction task and the queue
// limits.
func (b *Broker) MaintStats() *MaintStats { return &b.stats.Maint }

// Compact runs one pass of the compaction task now: it expires retained
// messages and the queued messages of offline sessions, truncates the event
// log past its retention window and asks Pebble to compact what was freed;
// full also collects orphan message bodies (a scan of every queue entry).
// It is the entry point of the admin endpoint; RunCompaction calls it on an
// interval.
func (b *Broker) Compact(ctx context.Context, full bool) (store.CompactReport, error) {
	o := b.opts.Maint
	st := &b.stats.Maint
	// Sessions whose expiry passed go first (their timer normally expired
	// them already; this catches any it missed), so that the pass below
	// also reclaims what their queues held.
	expired, err := b.ExpireSessions(b.now())
	if err != nil {
		st.CompactFailures.Add(1)
		return store.CompactReport{}, fmt.Errorf("engine: compaction: %w", err)
	}
	rep, err := b.store.Compact(ctx, store.CompactOptions{
		Now:                 b.now(),
		Batch:               o.CompactBatch,
		EventRetention:      o.EventRetention,
		EventRetentionBytes: o.EventRetentionBytes,
		Full:                full,
		CompactThreshold:    o.CompactThreshold,
		LockQueue:           b.lockOfflineQueue,
		OnRetainedExpired:   b.forgetExpiredRetained,
		OnQueueExpired:      b.noteQueueExpired,
	})
	st.CompactNanos.Add(int64(rep.Took))
	st.PebbleCompactions.Add(int64(rep.Compactions))
	st.RetainedExpired.Add(int64(rep.RetainedExpired))
	st.BodiesCollected.Add(int64(rep.BodiesCollected))
	st.EventsTruncated.Add(int64(rep.EventsTruncated))
	st.CompactPauses.Add(int64(len(rep.Pauses)))
	st.CompactPauseNanos.Add(int64(rep.TotalPause))
	for {
		cur := st.CompactMaxPauseNanos.Load()
		if int64(rep.MaxPause) <= cur || st.CompactMaxPauseNanos.CompareAndSwap(cur, int64(rep.MaxPause)) {
			break
		}
	}
	if rep.BodiesCollected > 0 {
		b.log.Warn("compaction: orphan message bodies deleted", "bodies", rep.BodiesCollected)
	}
	if err != nil {
		st.CompactFailures.Add(1)
		return rep, fmt.Errorf("engine: compaction: %w", err)
	}
	st.CompactRuns.Add(1)
	level := slog.LevelDebug
	if expired+rep.RetainedExpired+rep.QueuedExpired+rep.BodiesCollected > 0 || rep.EventsTruncated > 0 {
		level = slog.LevelInfo
	}
	b.log.Log(ctx, level, "compaction pass", "sessions_expired", expired, "retained_expired", rep.RetainedExpired, "queued_expired", rep.QueuedExpired,
		"queued_skipped", rep.QueuedSkipped, "bodies_collected", rep.BodiesCollected, "events_truncated", rep.EventsTruncated,
		"log_first_seq", rep.LogFirstSeq, "pebble_compactions", rep.Compactions, "commits", len(rep.Pauses),
		"max_pause", rep.MaxPause, "disk_before", rep.DiskBefore, "disk_after", rep.DiskAfter, "took", rep.Took)
	return rep, nil
}

// RunCompaction runs a pass at once (to clear what came due while the broker
// was down) and then every interval until ctx is done.
func (b *Broker) RunCompaction(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := b.Compact(ctx, false); err != nil && ctx.Err() == nil {
			b.log.Error("compaction pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lockOfflineQueue lets the task expire client's queue only while the
// session has no connection, holding the connect lock so that none can
// attach until the task's commit is applied. It never waits: a client id
// being connected right now is left for the next pass. It also gives the
// session's "may have been sent" watermark: what the client may have
// received stays, expired or not, to be resent when it reconnects.
func (b *Broker) lockOfflineQueue(client string) (func(), uint64, bool) {
	unlock, ok := b.connects.tryLock(client)
	if !ok {
		return nil, 0, false
	}
	var sentBelow uint64
	if s := b.lookup(client); s != nil {
		s.mu.Lock()
		online := s.conn != nil
		sentBelow = s.out.SentBelow()
		s.mu.Unlock()
		if online {
			unlock()
			return nil, 0, false
		}
	}
	return unlock, sentBelow, true
}

// tryLock is lock without waiting: it fails if anyone holds or awaits id.
func (l *idLocks) tryLock(id string) (func(), bool) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[string]*idLock)
	}
	if l.locks[id] != nil {
		l.mu.Unlock()
		return nil, false
	}
	k := &idLock{refs: 1}
	k.mu.Lock()
	l.locks[id] = k
	l.mu.Unlock()
	return func() {
		k.mu.Unlock()
		l.mu.Lock()
		k.refs--
		if k.refs == 0 {
			delete(l.locks, id)
		}
		l.mu.Unlock()
	}, true
}

// forgetExpiredRetained drops expired topics from the in-memory index after
// the task committed their expiry.
func (b *Broker) forgetExpiredRetained(topics []string, now int64) {
	for _, topic := range topics {
		if b.retained.DeleteIf(topic, func(m *store.Message) bool { return m.RetainedExpired(now) }) {
			b.log.Debug("retained message expired", "topic", topic)
		}
	}
}

// noteQueueExpired counts and logs the queued messages the task expired.
func (b *Broker) noteQueueExpired(refs []store.QueueRef) {
	b.stats.Maint.QueuedExpired.Add(int64(len(refs)))
	b.stats.drop(DropExpired, int64(len(refs)))
	per := make(map[string]int)
	for _, r := range refs {
		per[r.Client]++
	}
	for client, n := range per {
		b.log.Info("queued messages expired", "client", client, "messages", n, "reason", "message expiry interval passed")
	}
}
