package store

import (
	"sync/atomic"
	"time"
)

// The fsync latency the commit pipeline sees, for metrics: a fixed-bucket
// histogram (Prometheus-style upper bounds; the sum and count are
// CommitStats.SyncTime and Syncs), the slowest fsync, and how many commits
// wait for one right now. A slow disk shows here first: throughput is fsync
// latency × commits per fsync, and the group commit makes the second grow
// as the first does.

// SyncBuckets are the upper bounds of CommitStats.SyncLatency's buckets;
// the last bucket counts the fsyncs slower than all of them.
var SyncBuckets = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 10 * time.Second,
}

type syncHist struct {
	counts [len(SyncBuckets) + 1]atomic.Uint64
	max    atomic.Int64
}

func (h *syncHist) observe(d time.Duration) {
	i := 0
	for i < len(SyncBuckets) && d > SyncBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// fill copies the histogram into st.
func (h *syncHist) fill(st *CommitStats) {
	for i := range h.counts {
		st.SyncLatency[i] = h.counts[i].Load()
	}
	st.MaxSyncTime = time.Duration(h.max.Load())
}

// waiting is the number of commits on the completion list (commit.go).
func (p *pipeline) waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}
