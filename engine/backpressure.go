package engine

import (
	"time"
)

// Back-pressure for deliveries held in memory (QoS 0, and everything a clean
// session is sent): when a subscriber falls behind, the readers of the
// connections publishing to it pause instead of reading on and dropping
// what the subscriber's bounded queue refuses. Their clients' sockets fill
// and TCP slows them down to the subscriber's pace: the CPU goes to messages
// that are delivered, not to messages that are thrown away.
//
// Invariants:
//   - Only a connection's reader waits, between two packets, after it has
//     committed its batch (batch.go): never a commit completion, the store's
//     goroutines or a writer, and never while holding a lock.
//   - A wait is bounded (congestionWait). A subscriber that does not drain
//     within it is marked stalled and nobody waits for it again until it
//     has drained (its writer brings it back down to Roomy): a client that
//     stops reading costs its publishers one pause, then its messages are
//     dropped (counted) as before, and the other subscribers are unaffected.
//   - Waiters are woken as soon as the subscriber's writer has taken its
//     in-memory queue down to a quarter of the cap (Outbox.Roomy), all at
//     once (the channel is closed).
//   - Persistent sessions' QoS 1/2 deliveries never need it: what does not
//     fit in memory stays in the store.

// congestionWait bounds one pause of a publishing reader.
const congestionWait = 100 * time.Millisecond

// crowdedLocked is called with s.mu held after a delivery was pushed to s:
// it reports whether s is crowded and worth waiting for.
func (s *Session) crowdedLocked() bool {
	return !s.stalled && s.out.Crowded()
}

// drainedLocked runs on s's writer, with s.mu held, after it took deliveries
// out of the outbox: it wakes the waiting readers once there is room again.
func (s *Session) drainedLocked() {
	if (s.roomCh == nil && !s.stalled) || !s.out.Roomy() {
		return
	}
	s.stalled = false
	if s.roomCh != nil {
		close(s.roomCh)
		s.roomCh = nil
	}
}

// noteCrowded records, from any goroutine, that this connection's last
// deliveries found s crowded; the reader waits for it before its next read.
func (c *conn) noteCrowded(s *Session) {
	c.crowded.Store(s)
}

// waitForRoom runs on the reader between packets: if a subscriber it
// delivered to is crowded, it commits its batch and waits (bounded) until
// that subscriber has room.
func (c *conn) waitForRoom() {
	s := c.crowded.Swap(nil)
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.conn == nil || s.stalled || !s.out.Crowded() {
		s.mu.Unlock()
		return
	}
	if s.roomCh == nil {
		s.roomCh = make(chan struct{})
	}
	ch := s.roomCh
	s.mu.Unlock()
	c.flushBatch()
	c.b.stats.PublisherPauses.Add(1)
	t := time.NewTimer(congestionWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-c.done:
	case <-t.C:
		s.mu.Lock()
		s.stalled = true // do not wait for it again until it drains
		s.mu.Unlock()
	}
}
