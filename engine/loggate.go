package engine

import (
	"sync"
	"time"
)

// Log lines for events that can come in floods (deliveries dropped for a
// client that does not keep up, connections refused by the limits): the
// first one is logged at once, then at most one line per logGateEvery,
// which says how many occurrences it stands for. The counters in Stats
// count every one; the log stays readable.
const logGateEvery = 10 * time.Second

// logGate lets a repeated log line through at most once per logGateEvery.
// Its zero value is ready; it is safe for concurrent use.
type logGate struct {
	mu   sync.Mutex
	last time.Time
	held int64
}

// pass notes one occurrence at now. ok says to log a line now; n is how
// many occurrences that line stands for (this one and those held back since
// the last line).
func (g *logGate) pass(now time.Time) (n int64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held++
	if !g.last.IsZero() && now.Sub(g.last) < logGateEvery {
		return 0, false
	}
	n, g.held, g.last = g.held, 0, now
	return n, true
}
