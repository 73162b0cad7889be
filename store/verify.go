package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// VerifyError lists the invariant violations Verify found.
type VerifyError struct {
	Problems []string // at most maxProblems, then a count of the rest
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("store: %d consistency problem(s):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

const maxProblems = 100

// Verify checks the store's internal invariants against one consistent
// snapshot: every queue entry's body exists (inline, or m/ for a shared
// one); every m/ body is referenced, and
// its c/ refcount equals the number of entries referencing it (absent when
// that number is 1); the y/ queue expiry index holds exactly the entries
// whose message expires; every QueueInfo (on disk and in memory) matches its
// entries; the retained values and the x/ expiry index agree; LastSeq is the
// last logged seq (or meta/seq after a full truncation). It does not check
// engine-level rules (for example that every queue belongs to a stored
// session). It reads the whole store: it is for `recover`, tests and offline
// checks, not the hot path.
func (s *Store) Verify() error {
	if err := s.enterRead(); err != nil {
		return err
	}
	defer s.exitRead()
	// Snapshot and memory copy under the commit mutex so that they agree.
	s.mu.Lock()
	snap := s.db.NewSnapshot()
	mem := s.copyQueues()
	lastSeq := s.lastSeq
	s.mu.Unlock()
	defer snap.Close()

	v := &verifier{r: snap}
	v.run(mem, lastSeq)
	if v.err != nil {
		return s.readErr("verify", v.err)
	}
	if len(v.problems) == 0 {
		return nil
	}
	if v.extra > 0 {
		v.problems = append(v.problems, fmt.Sprintf("... and %d more", v.extra))
	}
	return &VerifyError{Problems: v.problems}
}

func (s *Store) copyQueues() map[string]QueueInfo {
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	return maps.Clone(s.queues)
}

type verifier struct {
	r        pebble.Reader
	err      error
	problems []string
	extra    int
}

func (v *verifier) problem(format string, args ...any) {
	if len(v.problems) >= maxProblems {
		v.extra++
		return
	}
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

// each iterates one family; decode or iteration errors stop verification.
func (v *verifier) each(fam byte, fn func(key, val []byte) error) {
	if v.err != nil {
		return
	}
	p := familyPrefix(fam)
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		v.err = err
		return
	}
	for it.First(); it.Valid(); it.Next() {
		val, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key(), val)
		}
		if err != nil {
			v.err = err
			break
		}
	}
	v.err = errors.Join(v.err, it.Error(), it.Close())
}

func (v *verifier) run(mem map[string]QueueInfo, lastSeq uint64) {
	// Queue entries: per-message references and per-client summaries.
	refs := make(map[uint64]uint64)
	type acc struct {
		min, max uint64
		count    int
		bytes    int64
	}
	queues := make(map[string]*acc)
	expiring := make(map[string]bool) // y/ keys the entries call for
	v.each(famQueue, func(key, val []byte) error {
		client, seq, err := queueKeySeq(key)
		if err != nil {
			return err
		}
		var e QueueEntry
		if err := decode(key, val, &e); err != nil {
			return err
		}
		if e.Body == nil {
			refs[e.MsgID]++
		}
		if e.ExpiresAt != 0 {
			expiring[string(queueExpiryKey(nil, e.ExpiresAt, client, seq))] = true
		}
		a := queues[client]
		if a == nil {
			a = &acc{min: seq}
			queues[client] = a
		}
		a.max, a.count, a.bytes = seq, a.count+1, a.bytes+e.Size
		return nil
	})
	bodies := make(map[uint64]bool)
	v.each(famMsg, func(key, _ []byte) error {
		id, _, err := splitU64(key)
		if err != nil {
			return err
		}
		bodies[id] = true
		if refs[id] == 0 {
			v.problem("message %d has no queue entry referencing it", id)
		}
		return nil
	})
	for id := range refs {
		if !bodies[id] {
			v.problem("message %d is referenced by %d queue entries but missing", id, refs[id])
		}
	}
	counted := make(map[uint64]bool)
	v.each(famRef, func(key, val []byte) error {
		id, _, err := splitU64(key)
		if err != nil {
			return err
		}
		n, err := decodeUvarint(val)
		if err != nil {
			return fmt.Errorf("refcount of %d: %w", id, err)
		}
		counted[id] = true
		if n != refs[id] || n < 2 {
			v.problem("message %d: refcount %d, but %d entries reference it", id, n, refs[id])
		}
		return nil
	})
	for id, n := range refs {
		if n > 1 && !counted[id] {
			v.problem("message %d: %d entries reference it but it has no refcount", id, n)
		}
	}
	// Queue summaries on disk and in memory.
	onDisk := make(map[string]QueueInfo)
	v.each(famQInfo, func(key, val []byte) error {
		client, _, err := splitClient(key)
		if err != nil {
			return err
		}
		qi, err := decodeQueueInfo(val)
		if err != nil {
			return fmt.Errorf("queue info of %q: %w", client, err)
		}
		onDisk[client] = qi
		want := QueueInfo{Head: qi.Next, Next: qi.Next}
		if a := queues[client]; a != nil {
			want.Head, want.Count, want.Bytes = a.min, a.count, a.bytes
			if a.max >= qi.Next {
				v.problem("queue %q: entry %d at or above next seq %d", client, a.max, qi.Next)
			}
		}
		if qi != want {
			v.problem("queue %q: stored info %+v, entries say %+v", client, qi, want)
		}
		if m, ok := mem[client]; !ok || m != qi {
			v.problem("queue %q: in-memory info %+v (present %v) differs from stored %+v", client, m, ok, qi)
		}
		return nil
	})
	for client := range queues {
		if _, ok := onDisk[client]; !ok {
			v.problem("queue %q has entries but no queue info", client)
		}
	}
	for client := range mem {
		if _, ok := onDisk[client]; !ok && v.err == nil {
			v.problem("queue %q is in memory but not stored", client)
		}
	}
	v.each(famQExpiry, func(key, _ []byte) error {
		at, client, seq, err := splitQueueExpiry(key)
		if err != nil {
			return err
		}
		if !expiring[string(key)] {
			v.problem("queue expiry index entry %d for %q/%d does not match a queue entry", at, client, seq)
		}
		delete(expiring, string(key))
		return nil
	})
	for k := range expiring {
		at, client, seq, _ := splitQueueExpiry([]byte(k))
		if v.err == nil {
			v.problem("queue entry %q/%d expires at %d but is not in the queue expiry index", client, seq, at)
		}
	}
	v.retained()
	v.sequence(lastSeq)
}

// retained checks that r/ values and the x/ index agree both ways.
func (v *verifier) retained() {
	expiries := make(map[string]int64)
	v.each(famRetained, func(key, val []byte) error {
		var m Message
		if err := decode(key, val, &m); err != nil {
			return err
		}
		topic := string(key[2:])
		if m.Topic != topic {
			v.problem("retained %q holds topic %q", topic, m.Topic)
		}
		if len(m.Payload) == 0 {
			v.problem("retained %q has an empty payload", topic)
		}
		if d := m.RetainedDeadline(); d != 0 {
			expiries[topic] = d
		}
		return nil
	})
	indexed := make(map[string]bool)
	v.each(famExpiry, func(key, _ []byte) error {
		at, topic, err := splitU64(key)
		if err != nil {
			return err
		}
		if exp, ok := expiries[string(topic)]; !ok || uint64(exp) != at {
			v.problem("expiry index entry %d for %q does not match a retained message", at, topic)
		}
		indexed[string(topic)] = true
		return nil
	})
	for topic := range expiries {
		if !indexed[topic] {
			v.problem("retained %q expires but is not in the expiry index", topic)
		}
	}
}

// sequence checks that LastSeq is what Open would derive: the last logged
// seq, or meta/seq (written by TruncateLog) when that is higher.
func (v *verifier) sequence(lastSeq uint64) {
	if v.err != nil {
		return
	}
	var floor uint64
	val, closer, err := v.r.Get(keySeq)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		v.err = fmt.Errorf("read meta/seq: %w", err)
		return
	default:
		if len(val) == 8 {
			floor = binary.BigEndian.Uint64(val)
		} else {
			v.problem("meta/seq has %d bytes", len(val))
		}
		_ = closer.Close()
	}
	p := familyPrefix(famEvent)
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		v.err = err
		return
	}
	var logged uint64
	if it.Last() {
		logged, _, err = splitU64(it.Key())
	}
	if v.err = errors.Join(err, it.Error(), it.Close()); v.err != nil {
		return
	}
	if max(floor, logged) != lastSeq {
		v.problem("LastSeq is %d but the log ends at %d and meta/seq is %d", lastSeq, logged, floor)
	}
}
