package bridge

// What a bridge reports: its state, its queue on the local broker, its
// counters and rates (for `cairn inspect bridges` and the admin endpoint).
//
// Invariants:
//   - Counters only grow for the life of the process; rates are the
//     messages per second over the last rateWindow, from samples the
//     manager's ticker takes every second (so a rate is never older than
//     a second and does not depend on how often anyone asks).

import (
	"sync"
	"time"
)

const rateWindow = 10 * time.Second

// Status is one bridge's live state.
type Status struct {
	Name     string `json:"name"`
	Remote   string `json:"remote"`
	Protocol string `json:"protocol"`
	ClientID string `json:"client_id"` // on the remote
	Session  string `json:"session"`   // the internal session on the local broker
	TLS      bool   `json:"tls"`

	State       string    `json:"state"`
	Since       time.Time `json:"since"`
	NextAttempt time.Time `json:"next_attempt,omitzero"` // while waiting to reconnect
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Connects    int64     `json:"connects"`
	Failures    int64     `json:"failures"`

	// QueueDepth and QueueBytes are the messages waiting to go out (in
	// flight included), on disk in the internal session's queue.
	QueueDepth  int   `json:"queue_depth"`
	QueueBytes  int64 `json:"queue_bytes"`
	InflightOut int   `json:"inflight_out"`
	InflightIn  int   `json:"inflight_in"`

	// Out: messages the remote acknowledged (QoS 0: sent); bytes are
	// payload bytes sent. Dropped counts what the queue limits cost the
	// session, what no rule could rename, and what the remote refused.
	OutForwarded int64   `json:"out_forwarded"`
	OutBytes     int64   `json:"out_bytes"`
	OutDropped   int64   `json:"out_dropped"`
	OutRate      float64 `json:"out_rate"` // messages/s over the last 10 s
	// QueueRejected counts local publishes refused whole because this
	// bridge's queue was full (queue limit policy reject).
	QueueRejected int64 `json:"queue_rejected"`

	InForwarded int64   `json:"in_forwarded"`
	InBytes     int64   `json:"in_bytes"`
	InDropped   int64   `json:"in_dropped"`
	InRate      float64 `json:"in_rate"`

	RemoteSubscribeRefused int64 `json:"remote_subscribe_refused"`
}

// Status returns the bridge's live state.
func (br *Bridge) Status() Status {
	c := &br.cfg
	s := Status{
		Name: c.Name, Remote: c.Address, Protocol: c.Protocol.String(), ClientID: c.ClientID,
		Session: c.ClientIDLocal(), TLS: c.TLS != nil,
		Connects: br.stats.connects.Load(), Failures: br.stats.failures.Load(),
		OutForwarded: br.stats.outForwarded.Load(), OutBytes: br.stats.outBytes.Load(),
		InForwarded: br.stats.inForwarded.Load(), InBytes: br.stats.inBytes.Load(),
		InDropped:              br.stats.inDropped.Load(),
		RemoteSubscribeRefused: br.stats.subRefused.Load(),
	}
	drops := br.broker.InternalDrops(c.ClientIDLocal())
	s.OutDropped = br.stats.outDropped.Load() + drops.Dropped
	s.QueueRejected = drops.Rejected
	s.QueueDepth, s.QueueBytes = br.broker.SessionQueue(c.ClientIDLocal())
	s.OutRate, s.InRate = br.rate.rates()
	br.mu.Lock()
	s.State, s.Since, s.LastError, s.LastErrorAt = br.state, br.since, br.lastErr, br.lastErrAt
	if br.state == StateBackoff {
		s.NextAttempt = br.nextTry
	}
	if l := br.link; l != nil {
		s.InflightOut, s.InflightIn = l.inflight()
	}
	br.mu.Unlock()
	return s
}

// meters turn the forwarded counters into rates.
type meters struct {
	mu      sync.Mutex
	samples []sample // oldest first, spanning at most rateWindow
}

type sample struct {
	at      time.Time
	out, in int64
}

func (m *meters) add(at time.Time, out, in int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, sample{at, out, in})
	i := 0
	for i < len(m.samples)-1 && at.Sub(m.samples[i+1].at) >= rateWindow {
		i++
	}
	m.samples = append(m.samples[:0], m.samples[i:]...)
}

func (m *meters) rates() (out, in float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) < 2 {
		return 0, 0
	}
	a, b := m.samples[0], m.samples[len(m.samples)-1]
	d := b.at.Sub(a.at).Seconds()
	if d <= 0 {
		return 0, 0
	}
	return float64(b.out-a.out) / d, float64(b.in-a.in) / d
}

// sample records the counters now.
func (br *Bridge) sample(now time.Time) {
	br.rate.add(now, br.stats.outForwarded.Load(), br.stats.inForwarded.Load())
}
