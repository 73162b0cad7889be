package engine

// Gauges are the broker's current sizes, for $SYS and the metrics.
type Gauges struct {
	Conns         int // connections being served (accepted, not yet finished)
	Sessions      int // sessions in memory: connected ones and offline persistent ones
	Connected     int // sessions with a connection
	Subscriptions int // in the trie, shared ones included
	Retained      int // retained messages, $SYS ones not counted
}

// Gauges returns the current sizes. It takes the broker's lock once (not
// per session): cheap enough for every scrape.
func (b *Broker) Gauges() Gauges {
	b.mu.RLock()
	g := Gauges{Conns: len(b.conns), Sessions: len(b.sessions)}
	b.mu.RUnlock()
	g.Connected = int(b.stats.Connected.Load())
	g.Subscriptions = b.subs.Count()
	b.sys.mu.Lock()
	sys := len(b.sys.topics)
	b.sys.mu.Unlock()
	g.Retained = max(b.retained.Len()-sys, 0)
	return g
}
