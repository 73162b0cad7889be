package store

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Reads see every commit Pebble has accepted, including ones whose WAL
// fsync has not completed yet (Pebble publishes a batch before syncing it).
// The engine must therefore deliver a message only after its commit's done
// callback: a message read here before that may vanish in a crash.

// readErr wraps a read error with context, keeping corruption recognisable.
func (s *Store) readErr(what string, err error) error {
	if pebble.IsCorruptionError(err) {
		return &CorruptionError{Dir: s.dir, Err: fmt.Errorf("%s: %w", what, err)}
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// scan calls fn for every key in [lower, upper) in order, inside
// enterRead/exitRead. key and val are valid only during the call.
func (s *Store) scan(what string, lower, upper []byte, fn func(key, val []byte) error) error {
	if err := s.enterRead(); err != nil {
		return err
	}
	defer s.exitRead()
	return s.scanIn(s.db, what, lower, upper, fn)
}

// scanIn is scan over r (the database or a snapshot of it), for a caller
// inside enterRead/exitRead.
func (s *Store) scanIn(r pebble.Reader, what string, lower, upper []byte, fn func(key, val []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return s.readErr(what, err)
	}
	for it.First(); it.Valid(); it.Next() {
		val, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return s.readErr(what, err)
		}
		if err := fn(it.Key(), val); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return s.readErr(what, err)
	}
	return nil
}

// scanFamily scans every key of one family.
func (s *Store) scanFamily(fam byte, fn func(key, val []byte) error) error {
	p := familyPrefix(fam)
	return s.scan(fmt.Sprintf("scan %c/", fam), p, prefixEnd(p), fn)
}

// LoadSessions returns every stored session with its subscriptions, queue
// summary and inbound QoS 2 packet ids, sorted by client id: everything the
// engine needs to rebuild its state at start.
func (s *Store) LoadSessions() ([]*SessionState, error) {
	byClient := make(map[string]*SessionState)
	err := s.scanFamily(famSession, func(key, val []byte) error {
		client, rest, err := splitClient(key)
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("store: session key %q: %w", key, errKeyShape)
		}
		st := &SessionState{Subs: make(map[string]Subscription), Queue: s.QueueInfo(client)}
		if err := decode(key, val, &st.Session); err != nil {
			return err
		}
		if st.Session.ClientID == "" {
			st.Session.ClientID = client
		}
		byClient[client] = st
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = s.scanFamily(famSub, func(key, val []byte) error {
		client, filter, err := splitClient(key)
		if err != nil {
			return fmt.Errorf("store: subscription key: %w", err)
		}
		st := byClient[client]
		if st == nil {
			return nil // no session record: nothing to restore it into
		}
		var sub Subscription
		if err := decode(key, val, &sub); err != nil {
			return err
		}
		st.Subs[string(filter)] = sub
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = s.scanFamily(famInbound, func(key, _ []byte) error {
		client, rest, err := splitClient(key)
		if err != nil || len(rest) != 2 {
			return fmt.Errorf("store: inbound key %q: %w", key, errKeyShape)
		}
		if st := byClient[client]; st != nil {
			st.InboundPIDs = append(st.InboundPIDs, uint16(rest[0])<<8|uint16(rest[1]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*SessionState, 0, len(byClient))
	for _, st := range byClient {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Session.ClientID < out[j].Session.ClientID })
	return out, nil
}

// ReadQueue returns up to limit (<= 0: no limit) entries of client's queue
// with from <= seq < to, in seq order, each joined with its message body.
// The scan starts at the queue's known head, so the tombstones of consumed
// entries below it cost nothing.
//
// Entries and bodies are read from one snapshot: a commit between the two
// (an acknowledgement, a drop-oldest queue limit, an expiry) may remove an
// entry and, with its last reference, its body; read from the live
// database, that entry would seem to point at a missing body. From the
// snapshot the page is a consistent past state: an entry removed since is
// delivered anyway and its acknowledgement is a no-op.
func (s *Store) ReadQueue(client string, from, to uint64, limit int) ([]QueuedMessage, error) {
	qi := s.QueueInfo(client)
	from = max(from, qi.Head)
	to = min(to, qi.Next)
	if from >= to || qi.Count == 0 {
		return nil, nil
	}
	if limit <= 0 {
		limit = math.MaxInt
	}
	if err := s.enterRead(); err != nil {
		return nil, err
	}
	defer s.exitRead()
	// The snapshot and the entry cache's count of uncovered removals are
	// taken together, between commits, so that the page can extend the
	// cache afterwards (prefill, entrycache.go).
	s.mu.Lock()
	token := s.entries.uncached
	snap := s.db.NewSnapshot()
	s.mu.Unlock()
	defer snap.Close()
	var out []QueuedMessage
	errLimit := errors.New("limit")
	err := s.scanIn(snap, "read queue", queueKey(nil, client, from), queueKey(nil, client, to), func(key, val []byte) error {
		_, seq, err := queueKeySeq(key)
		if err != nil {
			return err
		}
		qm := QueuedMessage{Seq: seq}
		if err := decode(key, val, &qm.Entry); err != nil {
			return err
		}
		out = append(out, qm)
		if len(out) >= limit {
			return errLimit
		}
		return nil
	})
	if err != nil && err != errLimit {
		return nil, err
	}
	end := to // the page covers [from, end): a full page ends after its last entry
	if err == errLimit {
		end = out[len(out)-1].Seq + 1
	}
	if s.queueReadHook != nil {
		s.queueReadHook()
	}
	// Before the join below moves inline bodies out of the entries.
	s.mu.Lock()
	s.entries.prefill(client, token, from, end, out, s.QueueInfo(client))
	s.mu.Unlock()
	// Join bodies in a second pass, outside the queue iterator; a body
	// shared by consecutive entries (one client matched twice) is read once.
	for i := range out {
		if b := out[i].Entry.Body; b != nil {
			out[i].Msg, out[i].Entry.Body = b, nil
			continue
		}
		if i > 0 && out[i].Entry.MsgID == out[i-1].Entry.MsgID && out[i-1].Msg != nil {
			out[i].Msg = out[i-1].Msg
			continue
		}
		m, err := s.messageIn(snap, out[i].Entry.MsgID)
		if err != nil {
			return nil, fmt.Errorf("store: queue %q entry %d: %w", client, out[i].Seq, err)
		}
		out[i].Msg = m
	}
	return out, nil
}

// QueueHasShared reports whether an entry of client's queue was put there
// by a shared subscription (QueueEntry.Group set). It reads the entries
// only, not their bodies, and stops at the first such entry.
func (s *Store) QueueHasShared(client string) (bool, error) {
	qi := s.QueueInfo(client)
	if qi.Count == 0 {
		return false, nil
	}
	if err := s.enterRead(); err != nil {
		return false, err
	}
	defer s.exitRead()
	errFound := errors.New("found")
	err := s.scanIn(s.db, "scan queue for shared entries", queueKey(nil, client, qi.Head), queueKey(nil, client, qi.Next), func(key, val []byte) error {
		r, err := decodeEntryRef(key, val)
		if err != nil {
			return err
		}
		if r.shared {
			return errFound
		}
		return nil
	})
	if err == errFound {
		return true, nil
	}
	return false, err
}

// messageIn reads body m/<id> from r, for a caller inside
// enterRead/exitRead.
func (s *Store) messageIn(r pebble.Reader, id uint64) (*Message, error) {
	key := msgKey(nil, id)
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("message %d is missing", id)
	}
	if err != nil {
		return nil, s.readErr(fmt.Sprintf("read message %d", id), err)
	}
	defer closer.Close()
	m := &Message{}
	if err := decode(key, val, m); err != nil {
		return nil, err
	}
	return m, nil
}

// ForEachRetained calls fn for every retained message, in topic order,
// skipping those whose retained deadline (Message.RetainedDeadline: 5.0
// expiry or server TTL) has passed at Options.Now, even if the compaction
// task has not deleted them yet. fn's error stops the scan and is returned
// as is.
func (s *Store) ForEachRetained(fn func(*Message) error) error {
	now := s.opts.Now().UnixNano()
	return s.scanFamily(famRetained, func(key, val []byte) error {
		m := &Message{}
		if err := decode(key, val, m); err != nil {
			return err
		}
		if m.RetainedExpired(now) {
			return nil
		}
		return fn(m)
	})
}

// ExpiredRetained returns up to limit (<= 0: no limit) topics whose retained
// message expires at or before now, from the x/ index in expiry order. The
// compaction task commits an EvRetainedExpired (with Time = now) for each.
func (s *Store) ExpiredRetained(now time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		limit = math.MaxInt
	}
	var topics []string
	errLimit := errors.New("limit")
	upper := expiryKey(nil, now.UnixNano()+1, "")
	err := s.scan("scan retained expiry", familyPrefix(famExpiry), upper, func(key, _ []byte) error {
		_, topic, err := splitU64(key)
		if err != nil {
			return err
		}
		topics = append(topics, string(topic))
		if len(topics) >= limit {
			return errLimit
		}
		return nil
	})
	if err != nil && err != errLimit {
		return nil, err
	}
	return topics, nil
}

// Events calls fn for every logged event with Seq >= from, in order, with
// Seq filled in. fn's error stops the scan and is returned as is.
func (s *Store) Events(from uint64, fn func(*Event) error) error {
	p := familyPrefix(famEvent)
	return s.scan("scan event log", eventKey(nil, from), prefixEnd(p), func(key, val []byte) error {
		seq, _, err := splitU64(key)
		if err != nil {
			return err
		}
		ev, err := decodeEvent(seq, val)
		if err != nil {
			return err
		}
		return fn(ev)
	})
}
