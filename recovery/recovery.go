// Package recovery brings a broker back from its store: it rebuilds the
// engine's sessions, subscriptions, queues, inbound QoS 2 state and retained
// messages, and publishes the wills of clients whose connections a crash
// cut — all before any listener accepts a connection (Restore).
//
// It also judges and mends a stopped store for `cairn recover` (Check,
// Repair: check.go, repair.go) and re-derives its projections from the
// event log for `cairn replay` (Replay, VerifyReplay: replay.go).
package recovery

import (
	"fmt"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
)

// Report says what Restore found.
type Report struct {
	Sessions      int
	Subscriptions int
	Queued        int   // messages waiting in persistent sessions' queues
	QueuedBytes   int64 // their payload bytes
	InboundQoS2   int   // packet ids awaiting PUBREL
	Retained      int
	Wills         int // wills published for connections the crash cut, or whose delay passed while the broker was down
	Expired       int // sessions whose expiry passed while the broker was down
	Took          time.Duration
}

// Restore loads everything st holds into b. b must be new and not serving.
func Restore(st *store.Store, b *engine.Broker) (Report, error) {
	start := time.Now()
	var r Report
	sessions, err := st.LoadSessions()
	if err != nil {
		return r, fmt.Errorf("recovery: loading sessions: %w", err)
	}
	for _, s := range sessions {
		b.RestoreSession(s)
		r.Sessions++
		r.Subscriptions += len(s.Subs)
		r.Queued += s.Queue.Count
		r.QueuedBytes += s.Queue.Bytes
		r.InboundQoS2 += len(s.InboundPIDs)
	}
	err = st.ForEachRetained(func(m *store.Message) error {
		b.RestoreRetained(m)
		r.Retained++
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("recovery: loading retained messages: %w", err)
	}
	if r.Wills, err = b.FinishRestore(); err != nil {
		return r, fmt.Errorf("recovery: %w", err)
	}
	r.Expired = int(b.Stats().SessionsExpired.Load())
	r.Took = time.Since(start)
	return r, nil
}
