package store

import "time"

// Commit pipeline measurements for metrics: the size of every commit batch
// and the latency of every WAL fsync with the number of commits it made
// durable (the group-commit factor). They are reported once per batch and
// once per fsync, never per event, to an observer the caller provides
// (Options.Observer); the store keeps no histogram of its own. Queue
// totals across sessions come from the in-memory queue summaries.

// CommitObserver receives the commit pipeline's measurements. Its methods
// run on the committing goroutine (ObserveCommit, under the store's commit
// lock) and on the syncer (ObserveSync): they must be cheap and must not
// call the store.
type CommitObserver interface {
	// ObserveCommit reports one commit: a Pebble batch of this many events.
	ObserveCommit(events int)
	// ObserveSync reports one WAL fsync, how long it took, and how many
	// commits it made durable.
	ObserveSync(took time.Duration, commits int)
}

// observeCommit reports a commit of events (called with Store.mu held).
func (p *pipeline) observeCommit(events int) {
	if o := p.s.opts.Observer; o != nil {
		o.ObserveCommit(events)
	}
}

// observeSync reports an fsync that covered the commits counted since the
// previous one (called with pipeline.mu held).
func (p *pipeline) observeSync(took time.Duration, upTo uint64) {
	n := upTo - p.syncedCommits
	p.syncedCommits = upTo
	if o := p.s.opts.Observer; o != nil {
		o.ObserveSync(took, int(n))
	}
}

// QueueTotals sums the queues of every persistent session.
type QueueTotals struct {
	Queues   int   // sessions with at least one queued message
	Messages int64 // queued messages
	Bytes    int64 // their payload bytes
	Deepest  int   // messages in the longest queue
}

// QueueTotals sums the in-memory queue summaries (one pass over them: for
// metrics and $SYS, not the hot path).
func (s *Store) QueueTotals() QueueTotals {
	var t QueueTotals
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	for _, qi := range s.queues {
		if qi.Count == 0 {
			continue
		}
		t.Queues++
		t.Messages += int64(qi.Count)
		t.Bytes += qi.Bytes
		t.Deepest = max(t.Deepest, qi.Count)
	}
	return t
}
