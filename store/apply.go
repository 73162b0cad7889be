package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// txn applies events to the projections inside one Pebble batch (indexed
// when some event needs to read; see anyReads).
//
// Apply is a function of the event (with its assigned Seq, MsgID and
// Target.Seq) and of the current projections only — never of the clock or
// of in-memory state that is not itself derived from the projections — so
// that replaying the log into an empty store rebuilds the same keys
// (ReplayEvent, replay_test.go).
//
// Reads go through the indexed batch, so an event sees the effects of the
// events before it in the same commit as well as of every earlier commit.
// QueueInfo changes are staged in t.queues and reach Store.queues (publish)
// only after Pebble has accepted the batch: a failed commit leaves no trace.
//
// One txn lives in the Store and is reused under Store.mu, with its encoder
// and key scratch buffer, so that the commit path allocates little. Keys are
// built into kb immediately before each Pebble call; Pebble copies keys and
// values on Set/Delete/Get, so the buffer can be reused at once.
type txn struct {
	s       *Store
	b       *pebble.Batch
	enc     *encoder
	kb      []byte // key scratch
	vb      []byte // small-value scratch (QueueInfo, refcounts)
	queues  map[string]stagedQueue
	effects effects // what the batch actually removed (compact.go reads it)
}

// effects counts removals a batch really made, as opposed to the events it
// logged (an expiry decided on a stale scan may be a no-op).
type effects struct {
	retainedExpired int // retained values deleted by EvRetainedExpired
	entriesRemoved  int // queue entries deleted by EvAcked / EvDropped / drop-oldest
	bodiesCollected int // bodies deleted by EvBodyCollected
}

type stagedQueue struct {
	qi   QueueInfo
	gone bool // the queue was deleted (session dropped/expired)
}

func (t *txn) init(s *Store) {
	t.s = s
	t.enc = newEncoder()
	t.queues = make(map[string]stagedQueue)
}

// k keeps a key built into kb, so the buffer's growth is reused by the next
// key instead of allocating: use as t.k(fooKey(t.kb[:0], ...)).
func (t *txn) k(key []byte) []byte {
	t.kb = key
	return key
}

func (t *txn) begin(b *pebble.Batch) {
	t.b = b
	clear(t.queues)
	t.effects = effects{}
}

// apply applies one event to the batch and appends it to the log.
func (t *txn) apply(ev *Event, assign bool) error {
	var err error
	switch ev.Kind {
	case EvSessionOpened, EvSessionClosed, EvWillFired:
		err = t.putSession(ev)
	case EvSessionDropped, EvSessionExpired:
		err = t.dropSession(ev.Client)
	case EvSubscribed:
		err = t.subscribe(ev)
	case EvUnsubscribed:
		err = t.unsubscribe(ev)
	case EvPublished:
		err = t.published(ev, assign)
	case EvAcked:
		err = t.removeEntry(ev.Client, ev.QSeq)
		for _, q := range ev.QSeqs {
			if err == nil {
				err = t.removeEntry(ev.Client, q)
			}
		}
	case EvDropped:
		err = t.removeEntry(ev.Client, ev.QSeq)
	case EvPubrecReceived:
		err = t.updateEntry(ev.Client, ev.QSeq, func(e *QueueEntry) { e.State = StatePubrec })
	case EvDelivered:
		err = t.updateEntry(ev.Client, ev.QSeq, func(e *QueueEntry) {
			e.State, e.PacketID = StateSent, ev.PacketID
		})
	case EvReleased:
		err = t.released(ev)
	case EvRetainedExpired:
		err = t.retainedExpired(ev)
	case EvBodyCollected:
		err = t.bodyCollected(ev)
	default:
		err = fmt.Errorf("unknown event kind %d", ev.Kind)
	}
	if err != nil {
		return err
	}
	val, err := t.enc.encodeEvent(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	return t.b.Set(t.k(eventKey(t.kb[:0], ev.Seq)), val, nil)
}

// finish writes the staged QueueInfo records. (The last seq needs no key of
// its own: it is the last e/ key; see Store.load and TruncateLog.)
func (t *txn) finish() error {
	for client, sq := range t.queues {
		k := t.k(qinfoKey(t.kb[:0], client))
		var err error
		if sq.gone {
			err = t.b.Delete(k, nil)
		} else {
			t.vb = appendQueueInfo(t.vb[:0], sq.qi)
			err = t.b.Set(k, t.vb, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// publish installs the staged QueueInfo after a successful commit.
func (t *txn) publish() {
	if len(t.queues) == 0 {
		return
	}
	t.s.qmu.Lock()
	for client, sq := range t.queues {
		if sq.gone {
			delete(t.s.queues, client)
		} else {
			t.s.queues[client] = sq.qi
		}
	}
	t.s.qmu.Unlock()
}

// queue returns client's QueueInfo as seen by this batch. Reading
// Store.queues without qmu is safe: it is only written under Store.mu, which
// the caller holds.
func (t *txn) queue(client string) QueueInfo {
	if sq, ok := t.queues[client]; ok {
		if sq.gone {
			return emptyQueue
		}
		return sq.qi
	}
	if qi, ok := t.s.queues[client]; ok {
		return qi
	}
	return emptyQueue
}

func (t *txn) setQueue(client string, qi QueueInfo) { t.queues[client] = stagedQueue{qi: qi} }
func (t *txn) dropQueue(client string)              { t.queues[client] = stagedQueue{gone: true} }

// get decodes the value of key into v, reporting whether it exists.
func (t *txn) get(key []byte, v any) (bool, error) {
	val, closer, err := t.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %q: %w", key, err)
	}
	defer closer.Close()
	return true, decode(key, val, v)
}

func (t *txn) set(key []byte, v any) error {
	val, err := t.enc.encode(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return t.b.Set(key, val, nil)
}

func (t *txn) putSession(ev *Event) error {
	if ev.Session == nil {
		return errors.New("missing session")
	}
	client := ev.Client
	if client == "" {
		client = ev.Session.ClientID
	} else if ev.Session.ClientID != "" && ev.Session.ClientID != client {
		return fmt.Errorf("client %q does not match session client id %q", client, ev.Session.ClientID)
	}
	if err := checkClient(client); err != nil {
		return err
	}
	return t.set(t.k(sessionKey(t.kb[:0], client)), ev.Session)
}

// dropSession deletes everything client owns. Every queue entry releases its
// message reference, so bodies no other queue holds are deleted; the cost is
// one read-modify-write per queued message, bounded by the queue's known
// [Head, Next) range.
func (t *txn) dropSession(client string) error {
	if err := checkClient(client); err != nil {
		return err
	}
	if err := t.b.Delete(t.k(sessionKey(t.kb[:0], client)), nil); err != nil {
		return err
	}
	for _, fam := range []byte{famSub, famInbound} {
		if err := t.deletePrefix(clientPrefix(nil, fam, client)); err != nil {
			return err
		}
	}
	qi := t.queue(client)
	if qi.Count > 0 {
		it, err := t.b.NewIter(&pebble.IterOptions{
			LowerBound: queueKey(nil, client, qi.Head),
			UpperBound: queueKey(nil, client, qi.Next),
		})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			e, err := decodeEntryRef(it.Key(), it.Value())
			if err != nil {
				_ = it.Close()
				return err
			}
			if err := t.b.Delete(it.Key(), nil); err != nil {
				_ = it.Close()
				return err
			}
			if e.expiresAt != 0 {
				_, seq, err := queueKeySeq(it.Key())
				if err == nil {
					err = t.b.Delete(t.k(queueExpiryKey(t.kb[:0], e.expiresAt, client, seq)), nil)
				}
				if err != nil {
					_ = it.Close()
					return err
				}
			}
			if e.inline {
				continue // inline body: nothing shared to release
			}
			if err := t.release(e.msgID); err != nil {
				_ = it.Close()
				return err
			}
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
	}
	t.dropQueue(client)
	t.s.entries.dropped(client)
	return nil
}

// deletePrefix point-deletes every key with prefix p (a client's
// subscriptions or inbound packet ids: a handful of keys, not worth a range
// tombstone).
func (t *txn) deletePrefix(p []byte) error {
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := t.b.Delete(it.Key(), nil); err != nil {
			_ = it.Close()
			return err
		}
	}
	return errors.Join(it.Error(), it.Close())
}

func (t *txn) subscribe(ev *Event) error {
	if err := checkClient(ev.Client); err != nil {
		return err
	}
	if ev.Filter == "" {
		return errors.New("missing filter")
	}
	if ev.Sub == nil {
		return errors.New("missing subscription")
	}
	return t.set(t.k(subKey(t.kb[:0], ev.Client, ev.Filter)), ev.Sub)
}

func (t *txn) unsubscribe(ev *Event) error {
	if err := checkClient(ev.Client); err != nil {
		return err
	}
	if ev.Filter == "" {
		return errors.New("missing filter")
	}
	return t.b.Delete(t.k(subKey(t.kb[:0], ev.Client, ev.Filter)), nil)
}

// published stores the body once — inline in the queue entry when exactly
// one target is enqueued, as m/<id> with a refcount when more are, not at
// all when none is — one queue entry per target, the retained value, and
// the inbound QoS 2 packet id. A Limit can refuse the event, skip targets or
// drop old entries first (limit.go).
func (t *txn) published(ev *Event, assign bool) error {
	m := ev.Msg
	if m == nil {
		return errors.New("missing message")
	}
	if assign {
		ev.MsgID = ev.Seq
	} else if ev.MsgID == 0 && len(ev.Targets) > 0 {
		return errors.New("missing message id")
	}
	if ev.Limit != nil {
		if err := ev.Limit.check(); err != nil {
			return err
		}
		if assign {
			ev.QueueFull, ev.Dropped = "", nil
			if ev.Limit.Policy == LimitReject {
				ev.QueueFull = t.overflowing(ev)
			}
		}
	}
	if ev.QueueFull != "" {
		return nil // refused whole: nothing is stored
	}
	if !assign {
		// The recorded drops; none of them is an entry of this event.
		for _, d := range ev.Dropped {
			if err := t.removeEntry(d.Client, d.Seq); err != nil {
				return fmt.Errorf("recorded drop %q/%d: %w", d.Client, d.Seq, err)
			}
		}
	}
	// How many targets get an entry is known up front unless a Limit is
	// being decided now; then the body is placed after the entries.
	known := ev.Limit == nil || !assign
	n := len(ev.Targets)
	if ev.Limit != nil && !assign {
		n = 0
		for _, tg := range ev.Targets {
			if tg.Seq != 0 {
				n++
			}
		}
	}
	var inline *Message // one entry: the body lives in it
	if known {
		if n == 1 {
			inline = m
		} else if err := t.sharedBody(ev.MsgID, m, n); err != nil {
			return err
		}
	}
	size := int64(len(m.Payload))
	var last QueueEntry // the last entry enqueued, with its target
	var lastTarget *Target
	enqueued := 0
	for i := range ev.Targets {
		tg := &ev.Targets[i]
		e, ok, err := t.enqueueTarget(ev, tg, size, inline, assign)
		if err != nil {
			return fmt.Errorf("target %q: %w", tg.Client, err)
		}
		if ok {
			enqueued++
			last, lastTarget = e, tg
		}
	}
	if !known {
		if enqueued == 1 {
			last.Body = m // rewrite the only entry with the body inline
			if err := t.set(t.k(queueKey(t.kb[:0], lastTarget.Client, lastTarget.Seq)), &last); err != nil {
				return err
			}
			if w := t.s.entries.window(lastTarget.Client); w != nil {
				if sl := w.slot(lastTarget.Seq); sl != nil {
					sl.ref.inline = true
				}
			}
		} else if err := t.sharedBody(ev.MsgID, m, enqueued); err != nil {
			return err
		}
	}
	if m.Retain {
		if err := t.setRetained(m); err != nil {
			return err
		}
	}
	if ev.InboundPID != 0 {
		if err := checkClient(ev.Client); err != nil {
			return fmt.Errorf("inbound packet id: %w", err)
		}
		return t.b.Set(t.k(inboundKey(t.kb[:0], ev.Client, ev.InboundPID)), nil, nil)
	}
	return nil
}

// enqueueTarget enqueues one target, first applying the event's Limit when
// committing (assign); a replayed target with Seq 0 was not enqueued.
func (t *txn) enqueueTarget(ev *Event, tg *Target, size int64, inline *Message, assign bool) (QueueEntry, bool, error) {
	if err := checkClient(tg.Client); err != nil {
		return QueueEntry{}, false, err
	}
	if !assign && tg.Seq == 0 && ev.Limit != nil {
		return QueueEntry{}, false, nil
	}
	if assign && ev.Limit != nil {
		victims, ok, err := t.makeRoom(ev, tg, size)
		if err != nil {
			return QueueEntry{}, false, err
		}
		if !ok {
			tg.Seq = 0
			return QueueEntry{}, false, nil
		}
		for _, seq := range victims {
			if err := t.removeEntry(tg.Client, seq); err != nil {
				return QueueEntry{}, false, err
			}
			ev.Dropped = append(ev.Dropped, QueueRef{Client: tg.Client, Seq: seq})
		}
	}
	e, err := t.enqueue(ev.MsgID, size, ev.Msg.ExpiresAt, inline, tg, assign)
	return e, err == nil, err
}

// sharedBody stores a body n > 1 entries reference, with its refcount.
func (t *txn) sharedBody(id uint64, m *Message, n int) error {
	if n < 2 {
		return nil
	}
	if err := t.set(t.k(msgKey(t.kb[:0], id)), m); err != nil {
		return err
	}
	t.vb = binary.AppendUvarint(t.vb[:0], uint64(n))
	if err := t.b.Set(t.k(refKey(t.kb[:0], id)), t.vb, nil); err != nil {
		return err
	}
	t.s.refs.added(id, n)
	return nil
}

func (t *txn) enqueue(msgID uint64, size, expiresAt int64, inline *Message, tg *Target, assign bool) (QueueEntry, error) {
	qi := t.queue(tg.Client)
	if assign {
		tg.Seq = qi.Next
	} else if tg.Seq < qi.Next {
		return QueueEntry{}, fmt.Errorf("queue seq %d is below the queue's next seq %d", tg.Seq, qi.Next)
	}
	e := QueueEntry{MsgID: msgID, QoS: tg.QoS, Retain: tg.Retain, SubIDs: tg.SubIDs, Size: size, ExpiresAt: expiresAt, Group: tg.Group, Body: inline}
	val, err := t.enc.encodeEntry(&e)
	if err != nil {
		return QueueEntry{}, fmt.Errorf("encode queue entry: %w", err)
	}
	if err := t.b.Set(t.k(queueKey(t.kb[:0], tg.Client, tg.Seq)), val, nil); err != nil {
		return QueueEntry{}, err
	}
	t.s.entries.added(tg.Client, tg.Seq, entryRef{msgID: msgID, size: size, expiresAt: expiresAt, inline: inline != nil}, qi)
	if expiresAt != 0 {
		if err := t.b.Set(t.k(queueExpiryKey(t.kb[:0], expiresAt, tg.Client, tg.Seq)), nil, nil); err != nil {
			return QueueEntry{}, err
		}
	}
	if qi.Count == 0 {
		qi.Head = tg.Seq
	}
	qi.Count++
	qi.Bytes += size
	qi.Next = tg.Seq + 1
	t.setQueue(tg.Client, qi)
	return e, nil
}

// retainedExpiry decodes only the deadlines of a stored retained message,
// so replacing a retained value does not decode the old payload.
type retainedExpiry struct {
	ExpiresAt   int64 `msgpack:"ex,omitempty"`
	RetainUntil int64 `msgpack:"ru,omitempty"`
}

// deadline is the x/ index time of the retained value (Message.RetainedDeadline).
func (r retainedExpiry) deadline() int64 {
	return (&Message{ExpiresAt: r.ExpiresAt, RetainUntil: r.RetainUntil}).RetainedDeadline()
}

// setRetained sets or (empty payload) clears r/<topic>, keeping the x/
// expiry index in step: the old value's index entry is always removed.
func (t *txn) setRetained(m *Message) error {
	var old retainedExpiry
	found, err := t.get(t.k(retainedKey(t.kb[:0], m.Topic)), &old)
	if err != nil {
		return err
	}
	if d := old.deadline(); found && d != 0 {
		if err := t.b.Delete(t.k(expiryKey(t.kb[:0], d, m.Topic)), nil); err != nil {
			return err
		}
	}
	if len(m.Payload) == 0 {
		return t.b.Delete(t.k(retainedKey(t.kb[:0], m.Topic)), nil)
	}
	if err := t.set(t.k(retainedKey(t.kb[:0], m.Topic)), m); err != nil {
		return err
	}
	if d := m.RetainedDeadline(); d != 0 {
		return t.b.Set(t.k(expiryKey(t.kb[:0], d, m.Topic)), nil, nil)
	}
	return nil
}

// retainedExpired deletes r/<topic> and its index entry. With ev.Time set it
// only does so if the stored value has expired by ev.Time, so an expiry
// decided on a stale scan of x/ cannot delete a retained message published
// after the scan. (ev.Time is logged, so this stays deterministic.)
func (t *txn) retainedExpired(ev *Event) error {
	var cur retainedExpiry
	found, err := t.get(t.k(retainedKey(t.kb[:0], ev.Topic)), &cur)
	if err != nil || !found {
		return err
	}
	d := cur.deadline()
	if ev.Time != 0 && (d == 0 || d > ev.Time) {
		return nil
	}
	if d != 0 {
		if err := t.b.Delete(t.k(expiryKey(t.kb[:0], d, ev.Topic)), nil); err != nil {
			return err
		}
	}
	t.effects.retainedExpired++
	return t.b.Delete(t.k(retainedKey(t.kb[:0], ev.Topic)), nil)
}

// bodyCollected deletes a body (and its refcount) that no queue entry
// references. Bodies are normally deleted with their last reference; this is
// for orphans that the compaction task found on a snapshot (an orphan never
// gains a reference: only the publish that creates a body enqueues it).
func (t *txn) bodyCollected(ev *Event) error {
	if ev.MsgID == 0 {
		return errors.New("missing message id")
	}
	_, closer, err := t.b.Get(t.k(msgKey(t.kb[:0], ev.MsgID)))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read body %d: %w", ev.MsgID, err)
	default:
		_ = closer.Close()
		t.effects.bodiesCollected++
	}
	t.s.refs.forget(ev.MsgID)
	if err := t.b.Delete(t.k(msgKey(t.kb[:0], ev.MsgID)), nil); err != nil {
		return err
	}
	return t.b.Delete(t.k(refKey(t.kb[:0], ev.MsgID)), nil)
}

func (t *txn) released(ev *Event) error {
	if err := checkClient(ev.Client); err != nil {
		return err
	}
	return t.b.Delete(t.k(inboundKey(t.kb[:0], ev.Client, ev.PacketID)), nil)
}

// removeEntry deletes queue entry q/<client>/<qseq> (ack or drop) and
// releases its message. A missing entry is a no-op: acks can arrive twice
// (a duplicate PUBACK, or one racing a session takeover).
//
// The entry cache (entrycache.go) usually knows the entry: then nothing is
// read, and for a client whose window is complete not even the next head.
func (t *txn) removeEntry(client string, qseq uint64) error {
	if err := checkClient(client); err != nil {
		return err
	}
	cache := &t.s.entries
	complete := cache.complete(client)
	if complete {
		if qi := t.queue(client); qseq < qi.Head || qseq >= qi.Next {
			return nil // not in the queue: a repeated ack
		}
	}
	k := t.k(queueKey(t.kb[:0], client, qseq))
	e, state := cache.take(client, qseq)
	switch {
	case state == entryDead:
		return nil // already removed
	case state == entryUnknown && complete:
		return fmt.Errorf("store: entry cache: seq %d of %q missing from a complete window", qseq, client)
	case state == entryUnknown:
		cache.removedUncached() // a page read before now may hold it (prefill)
		if !t.b.Indexed() {
			return fmt.Errorf("store: internal: removing %q/%d needs a read in a batch without an index", client, qseq)
		}
		val, closer, err := t.b.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %q: %w", k, err)
		}
		e, err = decodeEntryRef(k, val)
		closer.Close()
		if err != nil {
			return err
		}
	}
	if err := t.b.Delete(k, nil); err != nil {
		return err
	}
	if e.expiresAt != 0 {
		if err := t.b.Delete(t.k(queueExpiryKey(t.kb[:0], e.expiresAt, client, qseq)), nil); err != nil {
			return err
		}
	}
	if !e.inline {
		if err := t.release(e.msgID); err != nil {
			return err
		}
	}
	t.effects.entriesRemoved++
	qi := t.queue(client)
	qi.Count--
	qi.Bytes -= e.size
	switch {
	case qi.Count <= 0:
		qi.Count, qi.Bytes, qi.Head = 0, 0, qi.Next
	case qseq == qi.Head && qi.Next-(qseq+1) == uint64(qi.Count):
		// No holes: every seq in [qseq+1, Next) is still queued (there are
		// Count of them and Count entries), so the next one is the head.
		// This is the in-order ack of every subscriber keeping up: no read.
		qi.Head = qseq + 1
	case qseq == qi.Head && complete:
		qi.Head = cache.window(client).base // the lowest live seq
	case qseq == qi.Head:
		var err error
		if qi.Head, err = t.nextHead(client, qseq+1, qi.Next); err != nil {
			return err
		}
	}
	t.setQueue(client, qi)
	cache.settled(client, qi)
	return nil
}

// nextHead finds the lowest queue seq in [from, next). The iterator starts
// at the removed head, so it only passes tombstones of entries acked out of
// order, never the whole consumed history.
func (t *txn) nextHead(client string, from, next uint64) (uint64, error) {
	if from >= next {
		return next, nil
	}
	// Subscribers acknowledge in order almost always, so the next entry is
	// usually the new head: a point lookup (found in the batch or the
	// memtable) is far cheaper than building an iterator over every level.
	_, closer, err := t.b.Get(t.k(queueKey(t.kb[:0], client, from)))
	if err == nil {
		closer.Close()
		return from, nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return 0, fmt.Errorf("read queue entry %d: %w", from, err)
	}
	it, err := t.b.NewIter(&pebble.IterOptions{
		LowerBound: queueKey(nil, client, from),
		UpperBound: queueKey(nil, client, next),
	})
	if err != nil {
		return 0, err
	}
	head := next
	if it.First() {
		_, seq, err := queueKeySeq(it.Key())
		if err != nil {
			_ = it.Close()
			return 0, err
		}
		head = seq
	}
	return head, errors.Join(it.Error(), it.Close())
}

// updateEntry rewrites a queue entry's state; a missing entry is a no-op.
func (t *txn) updateEntry(client string, qseq uint64, fn func(*QueueEntry)) error {
	if err := checkClient(client); err != nil {
		return err
	}
	var e QueueEntry
	found, err := t.get(t.k(queueKey(t.kb[:0], client, qseq)), &e)
	if err != nil || !found {
		return err
	}
	fn(&e)
	return t.set(t.k(queueKey(t.kb[:0], client, qseq)), &e)
}

// release drops one reference to shared message id (an entry with an inline
// body has none to drop). c/<id> exists only while more than one reference
// remains (absent means exactly one), so the last release deletes the body.
//
// The refcount cache (refcache.go) usually knows the count of a recent
// body: then the same writes are made without reading c/<id>.
func (t *txn) release(id uint64) error {
	if n, ok := t.s.refs.count(id); ok {
		t.s.refs.set(id, n-1)
		switch n {
		case 1:
			return t.b.Delete(t.k(msgKey(t.kb[:0], id)), nil)
		case 2:
			return t.b.Delete(t.k(refKey(t.kb[:0], id)), nil)
		}
		t.vb = binary.AppendUvarint(t.vb[:0], uint64(n-1))
		return t.b.Set(t.k(refKey(t.kb[:0], id)), t.vb, nil)
	}
	if !t.b.Indexed() {
		return fmt.Errorf("store: internal: releasing message %d needs a read in a batch without an index", id)
	}
	k := t.k(refKey(t.kb[:0], id))
	val, closer, err := t.b.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return t.b.Delete(t.k(msgKey(t.kb[:0], id)), nil)
	}
	if err != nil {
		return fmt.Errorf("read %q: %w", k, err)
	}
	n, derr := decodeUvarint(val)
	if derr != nil || n < 2 {
		err = fmt.Errorf("refcount of message %d: bad value %x", id, val)
	}
	_ = closer.Close()
	if err != nil {
		return err
	}
	if n == 2 {
		return t.b.Delete(t.k(refKey(t.kb[:0], id)), nil)
	}
	t.vb = binary.AppendUvarint(t.vb[:0], n-1)
	return t.b.Set(t.k(refKey(t.kb[:0], id)), t.vb, nil)
}
