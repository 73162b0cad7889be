package admin

// Query is the one implementation of the inspect queries: the admin
// endpoint answers with it from the running broker's store, and `cairn
// inspect --data` calls it on a stopped store opened read-only. The rows
// are the store's (store/inspect.go); a running broker adds what only its
// memory holds: clean sessions, and the in-flight window of connected
// sessions (sending a QoS 1/2 message writes nothing to the store, so a
// stopped store shows as in flight only the QoS 2 deliveries whose PUBREC
// it recorded — everything else is resent on the next connection).

import (
	"errors"
	"sort"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// Query answers the inspect queries from a store and, when set, a broker.
type Query struct {
	Store  *store.Store
	Broker *engine.Broker
}

// Sessions returns every session, sorted by client id.
func (q Query) Sessions() ([]store.SessionRow, error) {
	rows, err := q.Store.SessionRows()
	if err != nil {
		return nil, err
	}
	if q.Broker != nil {
		for i := range rows {
			if in, ok := q.Broker.Inflight(rows[i].Client); ok {
				rows[i].Inflight = len(in)
			}
		}
		rows = append(rows, q.Broker.CleanSessions()...)
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].Client < rows[j].Client })
	}
	return rows, nil
}

// Session returns one session in full; the error wraps store.ErrNotFound
// when there is none.
func (q Query) Session(id string) (*store.SessionDetail, error) {
	if id == "" {
		return nil, badf("a client id is required")
	}
	d, err := q.Store.SessionDetail(id)
	if errors.Is(err, store.ErrNotFound) && q.Broker != nil {
		if cd := q.Broker.CleanSession(id); cd != nil {
			return cd, nil
		}
	}
	if err == nil && q.Broker != nil {
		if in, ok := q.Broker.Inflight(id); ok {
			d.Inflights, d.Inflight = in, len(in)
		}
	}
	return d, err
}

// Queue returns up to limit (<= 0: all) queued messages of id from seq on.
func (q Query) Queue(id string, from uint64, limit int) ([]store.QueueRow, error) {
	if id == "" {
		return nil, badf("a client id is required")
	}
	rows, err := q.Store.QueueRows(id, from, limit)
	if err != nil || q.Broker == nil {
		return rows, err
	}
	// A connected session's window: what it was sent and has not
	// acknowledged yet (the store records only PUBREC states).
	if in, ok := q.Broker.Inflight(id); ok {
		bySeq := make(map[uint64]store.InflightRow, len(in))
		for _, r := range in {
			bySeq[r.Seq] = r
		}
		for i := range rows {
			if r, ok := bySeq[rows[i].Seq]; ok {
				rows[i].State, rows[i].PacketID = r.State, r.PacketID
			}
		}
	}
	return rows, nil
}

// Retained returns the retained messages matching filter, an MQTT topic
// filter; "" means every retained message ($-topics included, which "#"
// does not match).
func (q Query) Retained(filter string) ([]store.RetainedRow, error) {
	var match func(string) bool
	if filter != "" {
		if err := wire.ValidateTopicFilter(filter); err != nil {
			return nil, badf("topic filter %q: %v", filter, err)
		}
		match = func(topic string) bool { return wire.MatchTopic(filter, topic) }
	}
	return q.Store.RetainedRows(match)
}

// Events calls fn for the logged events f selects and returns the seq to
// continue from.
func (q Query) Events(f store.EventFilter, fn func(store.EventRow) error) (uint64, error) {
	return q.Store.EventRows(f, fn)
}

// Stats returns the store's statistics.
func (q Query) Stats() (*store.Stats, error) { return q.Store.Stats() }

// ParseKinds parses a list of event type names.
func ParseKinds(names []string) ([]store.EventKind, error) {
	var out []store.EventKind
	for _, n := range names {
		k, err := store.ParseEventKind(n)
		if err != nil {
			return nil, badRequest{err}
		}
		out = append(out, k)
	}
	return out, nil
}

// IsBadRequest reports whether err is about the query's parameters (the
// CLI answers those without a stack of context).
func IsBadRequest(err error) bool {
	var b badRequest
	return errors.As(err, &b)
}
