// Package loggate keeps log lines for events that can come in floods
// (deliveries dropped for a client that does not keep up, connections
// refused by the limits, HTTP requests a WebSocket listener refuses)
// readable: the first one is logged at once, then at most one line per
// Every, which says how many occurrences it stands for. The counters
// elsewhere count every one; the log stays readable.
package loggate

import (
	"sync"
	"time"
)

// Every is how often a gated log line may repeat.
const Every = 10 * time.Second

// Gate lets a repeated log line through at most once per Every. Its zero
// value is ready; it is safe for concurrent use.
type Gate struct {
	mu   sync.Mutex
	last time.Time
	held int64
}

// Pass notes one occurrence at now. ok says to log a line now; n is how
// many occurrences that line stands for (this one and those held back since
// the last line).
func (g *Gate) Pass(now time.Time) (n int64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held++
	if !g.last.IsZero() && now.Sub(g.last) < Every {
		return 0, false
	}
	n, g.held, g.last = g.held, 0, now
	return n, true
}
