package bridge

// The bridges of one broker: started together after recovery, stopped
// together before the broker shuts down, and their status for the admin
// endpoint.
//
// Invariants:
//   - Start returns only when every bridge's session is subscribed (or
//     with the first error, after stopping those already started).
//   - An internal session that no configured bridge owns any more (a
//     bridge removed from the config) keeps its queue — nothing the broker
//     acknowledged is thrown away because a config line went — but is
//     unsubscribed from everything so that it stops growing; configuring
//     the bridge again drains what it holds.

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// Manager runs the bridges of a broker.
type Manager struct {
	broker *engine.Broker
	log    *slog.Logger

	change  sync.Mutex // serializes Reload and Stop
	stopped bool       // under change

	mu      sync.Mutex // guards bridges (Status and the rate sampler read it)
	bridges []*Bridge

	stopc chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// Start validates cfgs and starts a bridge for each on b, whose state must
// already be recovered. log may be nil.
func Start(b *engine.Broker, cfgs []Config, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	cfgs, err := Validate(cfgs)
	if err != nil {
		return nil, err
	}
	m := &Manager{broker: b, log: log, stopc: make(chan struct{})}
	owned := map[string]bool{}
	for _, c := range cfgs {
		owned[c.ClientIDLocal()] = true
	}
	for _, id := range b.InternalSessions() {
		if !owned[id] {
			retire(b, id, log)
		}
	}
	for _, c := range cfgs {
		br := newBridge(b, c, log.With("component", "bridge"))
		if err := br.start(); err != nil {
			m.Stop()
			return nil, err
		}
		m.bridges = append(m.bridges, br)
		log.Info("bridge started", "bridge", c.Name, "remote", c.Address, "protocol", c.Protocol, "rules", len(c.Rules))
	}
	m.wg.Add(1)
	go m.sampleRates()
	return m, nil
}

// retire unsubscribes a leftover internal session from all its filters.
func retire(b *engine.Broker, id string, log *slog.Logger) {
	filters := b.SessionFilters(id)
	depth, _ := b.SessionQueue(id)
	if len(filters) == 0 {
		if depth > 0 {
			log.Warn("a removed bridge's session still holds queued messages; configure the bridge again to forward them",
				"session", id, "queued", depth)
		}
		return
	}
	name := id[len(engine.InternalPrefix):]
	br := &Bridge{cfg: Config{Name: name}, broker: b}
	m, _, err := br.dialLocal(1, 0)
	if err != nil {
		log.Error("cannot unsubscribe a removed bridge's session", "session", id, "err", err)
		return
	}
	defer func() { m.closeWith(&wire.Disconnect{}); m.wait() }()
	if err := request(m, &wire.Unsubscribe{PacketID: 1, Filters: filters}); err != nil {
		log.Error("cannot unsubscribe a removed bridge's session", "session", id, "err", err)
		return
	}
	log.Warn("bridge no longer configured: its session stops queuing and keeps what it holds",
		"session", id, "filters", filters, "queued", depth)
}

// Stop stops every bridge and waits for them (idempotent; nil-safe).
func (m *Manager) Stop() {
	if m == nil {
		return
	}
	m.once.Do(func() {
		m.change.Lock()
		defer m.change.Unlock()
		m.stopped = true
		close(m.stopc)
		stopAll(m.current())
		m.wg.Wait()
	})
}

// stopAll stops bridges in parallel and waits for them.
func stopAll(bridges []*Bridge) {
	var wg sync.WaitGroup
	for _, br := range bridges {
		wg.Add(1)
		go func() { defer wg.Done(); br.stop() }()
	}
	wg.Wait()
}

// current returns the running bridges, in config order.
func (m *Manager) current() []*Bridge {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*Bridge(nil), m.bridges...)
}

func (m *Manager) sampleRates() {
	defer m.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.stopc:
			return
		case now := <-t.C:
			for _, br := range m.current() {
				br.sample(now)
			}
		}
	}
}

// Status returns every bridge's status, in config order (nil-safe).
func (m *Manager) Status() []Status {
	if m == nil {
		return nil
	}
	bridges := m.current()
	out := make([]Status, 0, len(bridges))
	for _, br := range bridges {
		out = append(out, br.Status())
	}
	return out
}

// Handler answers GET with one JSON line per bridge (the format of the
// admin endpoint's other listings).
func (m *Manager) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, s := range m.Status() {
			if err := enc.Encode(s); err != nil {
				return
			}
		}
	})
}
