package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The compaction task: one pass of Store.Compact.
//
// Pebble has no TTL and no compaction filter, so everything that expires is
// found through an expiry-ordered index and removed by ordinary events:
//
//  1. Retained messages: x/<deadline><topic> up to now, removed with
//     EvRetainedExpired{Time: now} (which spares a value replaced since the
//     scan).
//  2. Queued messages whose 5.0 expiry passed: y/<expiresAt><client><seq> up
//     to now, removed with EvDropped{Reason: "expired"}. Only queues the
//     caller lets go (CompactOptions.LockQueue: the engine says no for
//     sessions with a connection, whose writer drops expired messages as it
//     reaches them), never an entry in StatePubrec (its PUBREL must still
//     be sent) and never one that may have been sent (seq below the
//     session's "may have been sent" watermark): its onward delivery has
//     started, so it is resent on reconnect whatever its expiry
//     (MQTT-4.4.0-1; MQTT-3.3.2-5 deletes only copies not yet sent).
//     Skipped entries stay in the index; a cursor that survives between
//     passes makes every pass progress past them.
//  3. Orphan bodies (Full only): m/ and c/ keys no queue entry references,
//     removed with EvBodyCollected. Bodies are normally deleted in the batch
//     of their last release, so on a healthy store this finds nothing; it
//     exists for stores written by a buggy version or salvaged by recover.
//  4. The event log: truncated before the first event younger than
//     EventRetention and to about EventRetentionBytes on disk.
//  5. Pebble is asked to compact the key spans the pass freed, so that
//     tombstones and deleted values actually leave the disk.
//
// Invariants:
//   - The pass never holds the commit mutex for more than one batch of at
//     most Batch events (or one TruncateLog): that hold time is the only
//     pause publishers see, and every one is measured (CompactReport.Pauses).
//     Scans run outside the mutex, on Pebble iterators.
//   - Every removal is a logged event, so replay sees it and the log says
//     why a message disappeared. Maintenance commits are not synced: a crash
//     can only lose removals, which the next pass redoes.
//   - Deadlines are absolute unix times stored with the data, so time the
//     broker was down counts, and a pass after a restart expires what came
//     due meanwhile.
//   - One pass at a time (Store.cmu).

// CompactOptions configure one pass.
type CompactOptions struct {
	// Now is the expiry time; zero means Options.Now().
	Now time.Time
	// Batch bounds the events of one maintenance commit; 0 means 128.
	Batch int
	// Gap is the pause between two maintenance commits, leaving the commit
	// mutex to the broker; 0 means 200µs, negative none.
	Gap time.Duration
	// MaxQueueScan bounds the queue expiry index keys one pass examines
	// without expiring them (queues it may not touch, PUBREC'd entries);
	// 0 means 64 × Batch. Keys it expires do not count: each is gone.
	MaxQueueScan int
	// EventRetention keeps events younger than this (by Event.Time); 0
	// means no time limit.
	EventRetention time.Duration
	// EventRetentionBytes keeps at most about this many bytes of event log
	// in sstables (the memtable is not counted); 0 means no size limit.
	EventRetentionBytes int64
	// Full also collects orphan bodies, which reads every queue entry.
	Full bool
	// CompactThreshold is how many keys a pass must free in a family before
	// it asks Pebble to compact that span; 0 means 1024, negative never.
	CompactThreshold int
	// LockQueue, if set, is asked before expiring entries of client's queue;
	// ok false leaves them for later. unlock runs after the commit.
	// sentBelow is the queue's "may have been sent" watermark: entries
	// below it are never expired. nil means every queue may be expired (a
	// stopped broker's store) up to the watermark in its session record
	// (none expired for a session a crash left connected, whose watermark
	// is unknown).
	LockQueue func(client string) (unlock func(), sentBelow uint64, ok bool)
	// OnRetainedExpired, if set, is called after each committed batch of
	// retained expiries (the engine updates its in-memory index).
	OnRetainedExpired func(topics []string, now int64)
	// OnQueueExpired, if set, is called after each committed batch of
	// queue entry expiries.
	OnQueueExpired func(refs []QueueRef)
}

func (o CompactOptions) withDefaults(s *Store) CompactOptions {
	if o.Now.IsZero() {
		o.Now = s.opts.Now()
	}
	if o.Batch <= 0 {
		o.Batch = 128
	}
	if o.Gap == 0 {
		o.Gap = 200 * time.Microsecond
	}
	if o.MaxQueueScan <= 0 {
		o.MaxQueueScan = 64 * o.Batch
	}
	if o.CompactThreshold == 0 {
		o.CompactThreshold = 1024
	}
	return o
}

// CompactReport says what one pass did.
type CompactReport struct {
	Now             time.Time     // the expiry time used
	Took            time.Duration // wall time of the pass
	RetainedExpired int           // retained values deleted
	QueuedExpired   int           // queue entries deleted because their message expired
	QueuedSkipped   int           // expired entries left in place (queue busy, or PUBREC held)
	BodiesCollected int           // orphan bodies deleted (Full)
	EventsTruncated uint64        // log events deleted
	LogFirstSeq     uint64        // first logged seq after the pass (LastSeq+1 if the log is empty)
	Compactions     int           // key spans Pebble was asked to compact
	CompactTime     time.Duration // time spent in those compactions
	// Pauses are the commit-mutex hold times of the pass's commits, in
	// order: how long each held up the broker's own commits.
	Pauses     []time.Duration
	MaxPause   time.Duration
	TotalPause time.Duration
	DiskBefore uint64 // Pebble's disk space usage before and after
	DiskAfter  uint64
}

func (r *CompactReport) pause(d time.Duration) {
	r.Pauses = append(r.Pauses, d)
	r.TotalPause += d
	r.MaxPause = max(r.MaxPause, d)
}

// span tracks the smallest and largest key a pass freed in one family.
type span struct {
	lo, hi []byte
	n      int
}

func (sp *span) add(k []byte) {
	if sp.lo == nil || string(k) < string(sp.lo) {
		sp.lo = append([]byte(nil), k...)
	}
	if sp.hi == nil || string(k) > string(sp.hi) {
		sp.hi = append([]byte(nil), k...)
	}
	sp.n++
}

// Compact runs one pass of the compaction task (see the top of this file).
// It is safe to call while the broker runs; passes are serialized. A
// cancelled ctx stops the pass between batches, with what was done so far
// reported.
func (s *Store) Compact(ctx context.Context, opts CompactOptions) (CompactReport, error) {
	if s.opts.ReadOnly {
		return CompactReport{}, ErrReadOnly
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	start := time.Now()
	o := opts.withDefaults(s)
	rep := CompactReport{Now: o.Now}
	if m := s.Metrics(); m != nil {
		rep.DiskBefore = m.DiskSpaceUsage()
	}
	spans := map[byte]*span{}
	freed := func(fam byte) *span {
		if spans[fam] == nil {
			spans[fam] = &span{}
		}
		return spans[fam]
	}
	err := s.expireRetained(ctx, o, &rep, freed)
	if err == nil {
		err = s.expireQueued(ctx, o, &rep, freed)
	}
	if err == nil && o.Full {
		err = s.collectOrphans(ctx, o, &rep, freed)
	}
	if err == nil {
		err = s.truncateByRetention(o, &rep, freed)
	}
	if err == nil {
		err = s.compactSpans(ctx, o, &rep, spans)
	}
	if m := s.Metrics(); m != nil {
		rep.DiskAfter = m.DiskSpaceUsage()
	}
	rep.Took = time.Since(start)
	if err != nil {
		return rep, fmt.Errorf("store: compact: %w", err)
	}
	s.log.Debug("compaction pass", "retained_expired", rep.RetainedExpired, "queued_expired", rep.QueuedExpired,
		"queued_skipped", rep.QueuedSkipped, "bodies_collected", rep.BodiesCollected, "events_truncated", rep.EventsTruncated,
		"compactions", rep.Compactions, "max_pause", rep.MaxPause, "took", rep.Took)
	return rep, nil
}

// commitMaint commits maintenance events without sync or callback, and
// measures how long it held the commit mutex.
func (s *Store) commitMaint(evs []*Event) (held time.Duration, eff effects, err error) {
	s.mu.Lock()
	start := time.Now()
	defer func() {
		held = time.Since(start)
		s.mu.Unlock()
	}()
	if s.closed {
		return 0, eff, ErrClosed
	}
	if err := s.pipe.failure(); err != nil {
		return 0, eff, err
	}
	if err := s.commitLocked(evs, true); err != nil {
		return 0, eff, err
	}
	eff = s.tx.effects
	s.pipe.enqueue(s.lastSeq, false, nil, len(evs))
	return 0, eff, nil
}

// between runs between two maintenance commits: it honours ctx and leaves
// the commit mutex to others for a moment.
func between(ctx context.Context, o CompactOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.Gap > 0 {
		t := time.NewTimer(o.Gap)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (s *Store) expireRetained(ctx context.Context, o CompactOptions, rep *CompactReport, freed func(byte) *span) error {
	now := o.Now.UnixNano()
	// Each scan resumes after the last key of the previous one: the keys
	// before it are deleted, and scanning their tombstones again on every
	// batch would make a large backlog quadratic.
	from := familyPrefix(famExpiry)
	upper := expiryKey(nil, now+1, "")
	for {
		var keys [][]byte
		var topics []string
		err := s.scan("scan retained expiry", from, upper, func(key, _ []byte) error {
			_, topic, err := splitU64(key)
			if err != nil {
				return err
			}
			keys = append(keys, append([]byte(nil), key...))
			topics = append(topics, string(topic))
			if len(topics) >= o.Batch {
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop {
			return err
		}
		if len(topics) == 0 {
			return nil
		}
		last := keys[len(keys)-1]
		from = append(last[:len(last):len(last)], 0)
		evs := make([]*Event, len(topics))
		for i, topic := range topics {
			evs[i] = &Event{Kind: EvRetainedExpired, Time: now, Topic: topic, Reason: "expired"}
			freed(famRetained).add(retainedKey(nil, topic))
		}
		held, eff, err := s.commitMaint(evs)
		if err != nil {
			return err
		}
		rep.pause(held)
		rep.RetainedExpired += eff.retainedExpired
		freed(famExpiry).add(keys[0])
		freed(famExpiry).add(last)
		if o.OnRetainedExpired != nil {
			o.OnRetainedExpired(topics, now)
		}
		if err := between(ctx, o); err != nil {
			return err
		}
	}
}

// expiredRef is one y/ index key.
type expiredRef struct {
	key []byte
	ref QueueRef
}

// scanQueueExpiry returns up to limit y/ keys in [from, upper).
func (s *Store) scanQueueExpiry(from, upper []byte, limit int) ([]expiredRef, error) {
	var out []expiredRef
	errLimit := errors.New("limit")
	err := s.scan("scan queue expiry", from, upper, func(key, _ []byte) error {
		_, client, seq, err := splitQueueExpiry(key)
		if err != nil {
			return err
		}
		out = append(out, expiredRef{key: append([]byte(nil), key...), ref: QueueRef{Client: client, Seq: seq}})
		if len(out) >= limit {
			return errLimit
		}
		return nil
	})
	if err != nil && err != errLimit {
		return nil, err
	}
	return out, nil
}

// recordedSentBelow is the "may have been sent" watermark of client's queue
// as its session record has it: everything for a record without one (a
// session a crash left connected), nothing for a queue without a record.
func (s *Store) recordedSentBelow(client string) (uint64, error) {
	if err := s.enterRead(); err != nil {
		return 0, err
	}
	defer s.exitRead()
	key := sessionKey(nil, client)
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, s.readErr("read session", err)
	}
	defer closer.Close()
	var ses Session
	if err := decode(key, val, &ses); err != nil {
		return 0, err
	}
	if ses.Connected || !ses.SentKnown {
		return math.MaxUint64, nil
	}
	return ses.SentBelow, nil
}

// entryState reads the state of a queue entry (found false if it is gone).
func (s *Store) entryState(ref QueueRef) (state byte, found bool, err error) {
	if err := s.enterRead(); err != nil {
		return 0, false, err
	}
	defer s.exitRead()
	key := queueKey(nil, ref.Client, ref.Seq)
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, s.readErr("read queue entry", err)
	}
	defer closer.Close()
	var e QueueEntry
	if err := decode(key, val, &e); err != nil {
		return 0, false, err
	}
	return e.State, true, nil
}

func (s *Store) expireQueued(ctx context.Context, o CompactOptions, rep *CompactReport, freed func(byte) *span) error {
	now := o.Now.UnixNano()
	start := familyPrefix(famQExpiry)
	upper := appendU64(appendFamily(nil, famQExpiry), uint64(now)+1)
	from := start
	if c := s.qcursor; c != nil && string(c) < string(upper) {
		from = c
	}
	for skipped := rep.QueuedSkipped; rep.QueuedSkipped-skipped < o.MaxQueueScan; {
		page, err := s.scanQueueExpiry(from, upper, o.Batch)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			s.qcursor = nil // the next pass starts from the beginning
			return nil
		}
		last := page[len(page)-1].key
		from = append(last[:len(last):len(last)], 0)
		s.qcursor = from
		if err := s.expireQueuedPage(o, rep, page, freed); err != nil {
			return err
		}
		if err := between(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// expireQueuedPage expires one page of y/ keys: it locks each client's queue
// (LockQueue), skips what must stay, and commits the drops in one batch.
func (s *Store) expireQueuedPage(o CompactOptions, rep *CompactReport, page []expiredRef, freed func(byte) *span) error {
	var unlocks []func()
	defer func() {
		for _, u := range unlocks {
			u()
		}
	}()
	type queueLock struct {
		ok        bool
		sentBelow uint64
	}
	locked := map[string]queueLock{}
	var evs []*Event
	var refs []QueueRef
	for _, p := range page {
		l, seen := locked[p.ref.Client]
		if !seen {
			l.ok = true
			if o.LockQueue != nil {
				var unlock func()
				if unlock, l.sentBelow, l.ok = o.LockQueue(p.ref.Client); l.ok && unlock != nil {
					unlocks = append(unlocks, unlock)
				}
			} else {
				var err error
				if l.sentBelow, err = s.recordedSentBelow(p.ref.Client); err != nil {
					return err
				}
			}
			locked[p.ref.Client] = l
		}
		if !l.ok || p.ref.Seq < l.sentBelow {
			rep.QueuedSkipped++
			continue
		}
		state, found, err := s.entryState(p.ref)
		if err != nil {
			return err
		}
		if !found {
			continue // removed since the scan (acked, or the session dropped)
		}
		if state == StatePubrec {
			rep.QueuedSkipped++
			continue
		}
		evs = append(evs, &Event{Kind: EvDropped, Time: o.Now.UnixNano(), Client: p.ref.Client, QSeq: p.ref.Seq, Reason: "expired"})
		refs = append(refs, p.ref)
		freed(famQExpiry).add(p.key)
		freed(famQueue).add(queueKey(nil, p.ref.Client, p.ref.Seq))
	}
	if len(evs) == 0 {
		return nil
	}
	held, eff, err := s.commitMaint(evs)
	if err != nil {
		return err
	}
	rep.pause(held)
	rep.QueuedExpired += eff.entriesRemoved
	if o.OnQueueExpired != nil {
		o.OnQueueExpired(refs)
	}
	return nil
}

// collectOrphans finds bodies and refcounts no queue entry references, on
// one snapshot, and deletes them. A body that is an orphan in the snapshot
// stays one: only the publish that creates a body ever enqueues it.
func (s *Store) collectOrphans(ctx context.Context, o CompactOptions, rep *CompactReport, freed func(byte) *span) error {
	if err := s.enterRead(); err != nil {
		return err
	}
	snap := s.db.NewSnapshot()
	var ids, orphans []uint64
	v := &verifier{r: snap}
	v.each(famQueue, func(key, val []byte) error {
		e, err := decodeEntryRef(key, val)
		if err != nil {
			return err
		}
		if !e.inline { // an inline body references no m/ key
			ids = append(ids, e.msgID)
		}
		return nil
	})
	slices.Sort(ids)
	referenced := func(id uint64) bool { _, ok := slices.BinarySearch(ids, id); return ok }
	for _, fam := range []byte{famMsg, famRef} {
		v.each(fam, func(key, _ []byte) error {
			id, _, err := splitU64(key)
			if err != nil {
				return err
			}
			if !referenced(id) {
				orphans = append(orphans, id)
			}
			return nil
		})
	}
	err := errors.Join(v.err, snap.Close())
	s.exitRead()
	if err != nil {
		return s.readErr("collect orphans", err)
	}
	slices.Sort(orphans)
	orphans = slices.Compact(orphans)
	for len(orphans) > 0 {
		n := min(len(orphans), o.Batch)
		evs := make([]*Event, n)
		for i, id := range orphans[:n] {
			evs[i] = &Event{Kind: EvBodyCollected, Time: o.Now.UnixNano(), MsgID: id, Reason: "unreferenced"}
			freed(famMsg).add(msgKey(nil, id))
		}
		orphans = orphans[n:]
		held, eff, err := s.commitMaint(evs)
		if err != nil {
			return err
		}
		rep.pause(held)
		rep.BodiesCollected += eff.bodiesCollected
		if err := between(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// firstLogged returns the seq of the first e/ key (LastSeq+1 if none).
func (s *Store) firstLogged() (uint64, error) {
	seq := s.LastSeq() + 1
	p := familyPrefix(famEvent)
	err := s.scan("find first event", p, prefixEnd(p), func(key, _ []byte) error {
		var err error
		if seq, _, err = splitU64(key); err == nil {
			err = errStop
		}
		return err
	})
	if err == errStop {
		err = nil
	}
	return seq, err
}

var errStop = errors.New("stop")

// eventAt returns the seq and time of the first event with Seq >= seq.
func (s *Store) eventAt(seq uint64) (found uint64, at int64, ok bool, err error) {
	p := familyPrefix(famEvent)
	err = s.scan("read event", eventKey(nil, seq), prefixEnd(p), func(key, val []byte) error {
		n, _, err := splitU64(key)
		if err != nil {
			return err
		}
		ev, err := decodeEvent(n, val)
		if err != nil {
			return err
		}
		found, at, ok = n, ev.Time, true
		return errStop
	})
	if err == errStop {
		err = nil
	}
	return found, at, ok, err
}

// timeCut returns the smallest seq in [lo, hi) whose event is at least as
// recent as cutoff (hi if none), by binary search: event times follow the
// log order (the engine stamps events just before committing them; commits
// racing each other differ by microseconds).
func (s *Store) timeCut(lo, hi uint64, cutoff int64) (uint64, error) {
	for lo < hi {
		mid := lo + (hi-lo)/2
		seq, at, ok, err := s.eventAt(mid)
		if err != nil {
			return 0, err
		}
		if !ok || seq >= hi {
			hi = mid
			continue
		}
		if at < cutoff {
			lo = seq + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// logBytesFrom estimates the on-disk bytes of the log from seq on.
func (s *Store) logBytesFrom(seq uint64) (uint64, error) {
	if err := s.enterRead(); err != nil {
		return 0, err
	}
	defer s.exitRead()
	n, err := s.db.EstimateDiskUsage(eventKey(nil, seq), prefixEnd(familyPrefix(famEvent)))
	if err != nil {
		return 0, s.readErr("estimate log size", err)
	}
	return n, nil
}

// sizeCut returns the smallest seq in [lo, hi] such that the log from it on
// takes at most max bytes on disk.
func (s *Store) sizeCut(lo, hi uint64, maxBytes int64) (uint64, error) {
	total, err := s.logBytesFrom(lo)
	if err != nil || total <= uint64(maxBytes) {
		return lo, err
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		n, err := s.logBytesFrom(mid)
		if err != nil {
			return 0, err
		}
		if n <= uint64(maxBytes) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

func (s *Store) truncateByRetention(o CompactOptions, rep *CompactReport, freed func(byte) *span) error {
	first, err := s.firstLogged()
	if err != nil {
		return err
	}
	end := s.LastSeq() + 1
	cut := first
	if o.EventRetention > 0 {
		c, err := s.timeCut(first, end, o.Now.Add(-o.EventRetention).UnixNano())
		if err != nil {
			return err
		}
		cut = max(cut, c)
	}
	if o.EventRetentionBytes > 0 {
		c, err := s.sizeCut(first, end, o.EventRetentionBytes)
		if err != nil {
			return err
		}
		cut = max(cut, c)
	}
	rep.LogFirstSeq = first
	if cut <= first {
		return nil
	}
	held, err := s.truncateTimed(cut)
	if err != nil {
		return err
	}
	rep.pause(held)
	rep.EventsTruncated = cut - first
	rep.LogFirstSeq = cut
	sp := freed(famEvent)
	sp.add(eventKey(nil, first))
	sp.add(eventKey(nil, cut))
	sp.n = int(min(cut-first, math.MaxInt32))
	return nil
}

// truncateTimed is TruncateLog, measuring the commit-mutex hold time.
func (s *Store) truncateTimed(before uint64) (time.Duration, error) {
	start := time.Now()
	err := s.TruncateLog(before)
	// TruncateLog holds the mutex for all but a few instructions of its run.
	return time.Since(start), err
}

// compactSpans asks Pebble to compact every family span the pass freed
// enough keys in.
func (s *Store) compactSpans(ctx context.Context, o CompactOptions, rep *CompactReport, spans map[byte]*span) error {
	if o.CompactThreshold < 0 {
		return nil
	}
	fams := make([]byte, 0, len(spans))
	for fam := range spans {
		fams = append(fams, fam)
	}
	slices.Sort(fams)
	for _, fam := range fams {
		sp := spans[fam]
		if sp.n < o.CompactThreshold {
			continue
		}
		end := append(append([]byte(nil), sp.hi...), 0)
		if err := s.enterRead(); err != nil {
			return err
		}
		start := time.Now()
		err := s.db.Compact(ctx, sp.lo, end, false)
		s.exitRead()
		rep.CompactTime += time.Since(start)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("pebble compact %c/: %w", fam, err)
		}
		rep.Compactions++
	}
	return nil
}

// Usage is the store's size: logical bytes (keys plus values) per key
// family, and Pebble's disk space.
type Usage struct {
	Families map[string]FamilyUsage // by family prefix, "e/", "q/", ..., "meta/"
	Keys     int
	Bytes    int64  // logical: the sum of key and value lengths
	Disk     uint64 // Pebble's disk space usage (sstables, WAL, manifest)
}

// FamilyUsage is the logical size of one key family.
type FamilyUsage struct {
	Keys  int
	Bytes int64
}

// Usage reads every key once (it is for tests, `cairn inspect` and offline
// checks, not the hot path).
func (s *Store) Usage() (Usage, error) {
	u := Usage{Families: make(map[string]FamilyUsage)}
	err := s.scan("usage", nil, nil, func(key, val []byte) error {
		fam := "meta/"
		if len(key) >= 2 && key[1] == '/' {
			fam = string(key[:2])
		}
		f := u.Families[fam]
		f.Keys++
		f.Bytes += int64(len(key) + len(val))
		u.Families[fam] = f
		u.Keys++
		u.Bytes += int64(len(key) + len(val))
		return nil
	})
	if err != nil {
		return u, err
	}
	if m := s.Metrics(); m != nil {
		u.Disk = m.DiskSpaceUsage()
	}
	return u, nil
}
