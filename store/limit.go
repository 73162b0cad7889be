package store

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Per-session queue limits, enforced where the queue is changed: inside the
// commit, under the commit mutex, against the exact QueueInfo. Checking in
// the engine before Commit would race with every other commit to the same
// queue; here the limit is never exceeded by a publish that carries it.
//
// Invariants:
//   - A publish carrying a Limit never leaves a target's queue above
//     Limit.Count entries or Limit.Bytes payload bytes because of its own
//     entries. (Queues already above the limit — the limit was lowered, or
//     an event without a Limit enqueued — are not trimmed, only not grown.)
//   - Every decision is recorded in the logged event (QueueFull, Dropped,
//     Target.Seq == 0), so the log says what was refused or dropped and
//     ReplayEvent applies the recorded decisions instead of re-deciding.
//   - Drop-oldest never drops an entry that may be in flight toward the
//     client (seq < Target.SentBelow), a QoS 2 entry whose PUBREC the broker
//     holds (StatePubrec: its PUBREL must still be sent), or an entry of the
//     event itself (one client matched twice). If no such room can be made
//     the new message is not enqueued for that target instead.
//   - A body is stored only if at least one target was enqueued, with a
//     refcount equal to the number enqueued: a full queue never leaves an
//     orphan body behind.

// LimitPolicy says what a publish does to a full queue.
type LimitPolicy uint8

// Limit policies. Values are stored: never renumber.
const (
	// LimitReject refuses the whole publish when it would overflow any
	// target's queue: nothing is stored (Event.QueueFull names the queue),
	// so the engine can refuse the PUBLISH (5.0 reason 0x97) and the
	// publisher can send it again later.
	LimitReject LimitPolicy = 0
	// LimitSkip does not enqueue the message for a target whose queue is
	// full (Target.Seq = 0); the other targets get it. For messages nobody
	// can be told about: wills, retained messages sent on subscribe.
	LimitSkip LimitPolicy = 1
	// LimitDropOldest removes the oldest droppable entries of a full queue
	// to make room (Event.Dropped lists them).
	LimitDropOldest LimitPolicy = 2
)

// QueueLimit bounds each target's queue. Zero fields are unlimited.
type QueueLimit struct {
	Count  uint32      `msgpack:"n,omitempty"` // entries per queue
	Bytes  int64       `msgpack:"b,omitempty"` // payload bytes per queue
	Policy LimitPolicy `msgpack:"p,omitempty"`
}

// QueueRef names one queue entry.
type QueueRef struct {
	Client string `msgpack:"c"`
	Seq    uint64 `msgpack:"n"`
}

// over reports whether a queue of count entries and bytes payload bytes
// exceeds the limit.
func (l *QueueLimit) over(count int, bytes int64) bool {
	return (l.Count > 0 && count > int(l.Count)) || (l.Bytes > 0 && bytes > l.Bytes)
}

func (l *QueueLimit) check() error {
	if l.Policy > LimitDropOldest {
		return fmt.Errorf("unknown queue limit policy %d", l.Policy)
	}
	if l.Bytes < 0 {
		return fmt.Errorf("negative queue byte limit %d", l.Bytes)
	}
	return nil
}

// overflowing returns the first target client whose queue the whole event
// would take over the limit ("" if none), counting a client matched more
// than once once per match.
func (t *txn) overflowing(ev *Event) string {
	size := int64(len(ev.Msg.Payload))
	var seen map[string]int
	if len(ev.Targets) > 1 {
		seen = make(map[string]int, len(ev.Targets))
	}
	for _, tg := range ev.Targets {
		n := 1
		if seen != nil {
			seen[tg.Client]++
			n = seen[tg.Client]
		}
		qi := t.queue(tg.Client)
		if ev.Limit.over(qi.Count+n, qi.Bytes+int64(n)*size) {
			return tg.Client
		}
	}
	return ""
}

// makeRoom decides whether target tg can take a message of size payload
// bytes under ev.Limit, and which entries drop-oldest must remove first.
func (t *txn) makeRoom(ev *Event, tg *Target, size int64) (victims []uint64, ok bool, err error) {
	lim := ev.Limit
	qi := t.queue(tg.Client)
	if !lim.over(qi.Count+1, qi.Bytes+size) {
		return nil, true, nil
	}
	if lim.Policy != LimitDropOldest || (lim.Bytes > 0 && size > lim.Bytes) {
		return nil, false, nil
	}
	from := max(qi.Head, tg.SentBelow)
	if from >= qi.Next {
		return nil, false, nil
	}
	it, err := t.b.NewIter(&pebble.IterOptions{
		LowerBound: queueKey(nil, tg.Client, from),
		UpperBound: queueKey(nil, tg.Client, qi.Next),
	})
	if err != nil {
		return nil, false, err
	}
	count, bytes := qi.Count, qi.Bytes
	for it.First(); it.Valid() && lim.over(count+1, bytes+size); it.Next() {
		var e QueueEntry
		if err := decode(it.Key(), it.Value(), &e); err != nil {
			_ = it.Close()
			return nil, false, err
		}
		if e.State == StatePubrec || e.MsgID == ev.MsgID {
			continue
		}
		_, seq, err := queueKeySeq(it.Key())
		if err != nil {
			_ = it.Close()
			return nil, false, err
		}
		victims = append(victims, seq)
		count--
		bytes -= e.Size
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, false, err
	}
	if lim.over(count+1, bytes+size) {
		return nil, false, nil
	}
	return victims, true, nil
}

// mayDrop reports whether a drop-oldest limit in evs might have to read the
// queues (and so needs an indexed batch): only when some target's queue is
// near its limit. Called with s.mu held, so s.queues is stable. It errs on
// the side of reading: every target of the commit could land in one queue.
func (s *Store) mayDrop(evs []*Event) bool {
	var adds int
	var bytes int64
	for _, ev := range evs {
		if ev != nil && ev.Kind == EvPublished && ev.Msg != nil {
			adds += len(ev.Targets)
			bytes += int64(len(ev.Targets)) * int64(len(ev.Msg.Payload))
		}
	}
	for _, ev := range evs {
		if ev == nil || ev.Kind != EvPublished || ev.Limit == nil || ev.Limit.Policy != LimitDropOldest {
			continue
		}
		for _, tg := range ev.Targets {
			qi, ok := s.queues[tg.Client]
			if !ok {
				qi = emptyQueue
			}
			if ev.Limit.over(qi.Count+adds, qi.Bytes+bytes) {
				return true
			}
		}
	}
	return false
}
