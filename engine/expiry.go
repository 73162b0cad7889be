package engine

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/store"
)

// Session expiry and delayed wills: what happens to an offline persistent
// session as time passes.
//
// When a connection ends, detach stores in the session record the absolute
// times that matter (store.Session.ExpiresAt = disconnect + session expiry
// interval, WillAt = disconnect + will delay interval when a will is
// pending), and hands the earlier of the two to the deadline timer
// (deadlines.go). When it fires — or when ExpireSessions is called (the
// compaction task, FinishRestore) — settle looks at each session again:
//
//   - a pending will whose time has come is published (EvWillFired clears
//     it from the record, EvPublished routes it, in one batch);
//   - a session whose expiry has come is removed (EvSessionExpired deletes
//     its record, subscriptions, queue and inbound QoS 2 state; the trie and
//     the session map forget it). A will still armed is published with it:
//     the will fires at session end if that comes first (§3.1.3.2.2).
//
// Invariants:
//   - Deadlines are absolute, in the store: a deadline that passed while the
//     broker was down (kill -9 included) is honoured by FinishRestore before
//     any client connects; one still ahead is re-armed.
//   - settle holds the CONNECT lock of every client it settles (connects are
//     serialised per client id), so a client connecting at the very moment
//     its session expires either resumes the session (and the expiry finds
//     it connected and does nothing) or finds it gone — never half of each.
//     Locks are taken in client-id order by one settle at a time (settleMu),
//     and CONNECT takes only one: no deadlock.
//   - Wills are delivered only after the batch that routes them is durable.
//   - A reconnect before the will delay passes cancels the pending will: the
//     new CONNECT replaces the record (and its will); a CONNECT with Clean
//     Start that ends the old session publishes the pending will at once.

// expiresAt is the absolute expiry of a session disconnected at now.
func expiresAt(interval uint32, now time.Time) int64 {
	if interval == 0 || interval == 0xFFFFFFFF {
		return 0 // 0 ends with the connection (never stored); max never expires
	}
	return now.Add(time.Duration(interval) * time.Second).UnixNano()
}

// nextDeadline is the earlier of a record's expiry and pending will (0: none).
func nextDeadline(rec *store.Session, will *store.Will) int64 {
	at := rec.ExpiresAt
	if will != nil && rec.WillAt != 0 && (at == 0 || rec.WillAt < at) {
		at = rec.WillAt
	}
	return at
}

// ExpireSessions settles every offline session whose deadline has passed by
// now: pending wills that are due are published, and sessions whose expiry
// has passed are removed, durably. It returns how many sessions expired.
// The broker runs it by itself from a timer; the compaction task may call it
// too (it is safe at any time, concurrently with connections).
func (b *Broker) ExpireSessions(now time.Time) (int, error) {
	t := now.UnixNano()
	var ids []string
	b.mu.RLock()
	for id, s := range b.sessions {
		s.mu.Lock()
		at := nextDeadline(&s.rec, s.will)
		due := s.conn == nil && s.persistent && at != 0 && at <= t
		s.mu.Unlock()
		if due {
			ids = append(ids, id)
		}
	}
	b.mu.RUnlock()
	return b.settle(ids, now)
}

// onDeadlines is the deadline timer's callback.
func (b *Broker) onDeadlines(ids []string, now time.Time) {
	if _, err := b.settle(ids, now); err != nil {
		b.log.Error("expiring sessions failed", "err", err)
	}
}

// settle applies the deadlines that have come to the given sessions.
func (b *Broker) settle(ids []string, now time.Time) (expired int, err error) {
	if len(ids) == 0 {
		return 0, nil
	}
	b.settleMu.Lock()
	defer b.settleMu.Unlock()
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for len(ids) > 0 {
		n := min(len(ids), dueBatch)
		k, err := b.settleBatch(ids[:n], now)
		expired += k
		if err != nil {
			return expired, err
		}
		ids = ids[n:]
	}
	return expired, nil
}

func (b *Broker) settleBatch(ids []string, now time.Time) (expired int, err error) {
	t := now.UnixNano()
	var (
		evs     []*store.Event
		wills   []*routed
		willFor []string
		later   []*Session
		unlocks []func()
	)
	defer func() {
		for _, u := range unlocks {
			u()
		}
	}()
	for _, id := range ids {
		unlocks = append(unlocks, b.connects.lock(id))
		s := b.lookup(id)
		if s == nil || !s.persistent {
			continue
		}
		s.mu.Lock()
		if s.conn != nil {
			s.mu.Unlock()
			continue // reconnected: detach re-arms it when it goes
		}
		expire := s.rec.ExpiresAt != 0 && s.rec.ExpiresAt <= t
		var will *store.Will
		if s.will != nil && (expire || s.rec.WillAt != 0 && s.rec.WillAt <= t) {
			will, s.will = s.will, nil
			s.rec.Will, s.rec.WillAt = nil, 0
		}
		rec := s.rec
		s.mu.Unlock()
		switch {
		case expire:
			shared := b.hasShared(id) || b.queueHasShared(id)
			b.unlinkSession(s)
			if shared {
				b.handOffStoredQueue(id, now) // committed before the expiry (sharedhandoff.go)
			}
			evs = append(evs, &store.Event{Kind: store.EvSessionExpired, Time: t, Client: id})
			expired++
		case will != nil:
			evs = append(evs, &store.Event{Kind: store.EvWillFired, Time: t, Client: id, Session: &rec})
			later = append(later, s)
		default:
			later = append(later, s) // not due (any more): re-arm at its current deadline
		}
		if will != nil && b.willAllowed(s, will) {
			// Routed after an expiring session left the trie: its own will
			// is not queued for it.
			r := b.routeWill(id, will, now)
			if r.ev != nil {
				evs = append(evs, r.ev)
			}
			wills = append(wills, r)
			willFor = append(willFor, id)
		}
	}
	if len(evs) > 0 {
		if err := b.commitWait(evs, true); err != nil {
			b.stats.CommitFailures.Add(1)
			return 0, fmt.Errorf("engine: expiring sessions: %w", err)
		}
	}
	for i, r := range wills {
		b.publishWill(r, willFor[i])
	}
	for _, s := range later {
		s.mu.Lock()
		at := int64(0)
		if s.conn == nil {
			at = nextDeadline(&s.rec, s.will)
		}
		s.mu.Unlock()
		b.deadl.set(s.id, at)
	}
	if expired > 0 {
		b.stats.SessionsExpired.Add(int64(expired))
		b.log.Info("sessions expired", "count", expired)
	}
	return expired, nil
}

// publishWill delivers a will whose routing events are durable.
func (b *Broker) publishWill(r *routed, client string) {
	b.publishRouted(r)
	b.stats.WillsPublished.Add(1)
	b.log.Info("will published", "client", client, "topic", r.msg.Topic)
}

// unlinkSession removes a session from memory: its subscriptions from the
// trie, then the session from the map. It runs once per session, and a
// second caller waits until the first is done (s.unlink): a clean session
// being torn down is unlinked by its own teardown and, maybe at the same
// moment, by a CONNECT of its client id, and that CONNECT must not register
// the id's new session until the old one's subscriptions are gone — the
// trie keys subscriptions by client id, so a removal still under way would
// take the new session's too (acknowledged SUBSCRIBEs silently inactive; the
// restart benchmark lost a session's 100 messages that way, once in 10,000).
// The trie goes first so that the session stays findable meanwhile: a
// CONNECT finds it and unlinks it (waiting) rather than starting a new
// session beside a half-removed one. The broker's lock and the trie's are
// not held together (Match calls isOnline under the trie's read lock).
func (b *Broker) unlinkSession(s *Session) {
	s.unlink.Do(func() {
		b.mu.RLock()
		mine := b.sessions[s.id] == s
		b.mu.RUnlock()
		if !mine {
			return
		}
		b.subs.UnsubscribeAll(s.id)
		if pause := unlinkPause.Load(); pause != nil {
			(*pause)(s.id)
		}
		b.mu.Lock()
		if b.sessions[s.id] == s {
			delete(b.sessions, s.id)
		}
		b.mu.Unlock()
	})
}

// unlinkPause, set by tests only (export_test.go), runs inside
// unlinkSession between its two steps, to widen the window the unlink's
// once-and-wait closes.
var unlinkPause atomic.Pointer[func(client string)]

// dropWithWill ends a session for a CONNECT with Clean Start: like
// dropSession, and a will that was pending (its delay running) is published
// now, because its session ends first. The caller commits the events and
// then publishes the returned will.
func (b *Broker) dropWithWill(s *Session, now time.Time) ([]*store.Event, *routed) {
	s.mu.Lock()
	var will *store.Will
	if s.rec.WillAt != 0 {
		will = s.will
	}
	s.will = nil
	s.mu.Unlock()
	evs := b.dropSession(s, now)
	if will == nil || !b.willAllowed(s, will) {
		return evs, nil
	}
	r := b.routeWill(s.id, will, now)
	if r.ev != nil {
		evs = append(evs, r.ev)
	}
	return evs, r
}
