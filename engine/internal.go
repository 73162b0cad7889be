package engine

import (
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cairn-mqtt/cairn/wire"
)

// Internal sessions: MQTT sessions the broker holds for its own components
// (the bridges of engine/bridge), served over in-process connections.
//
// An internal component is an ordinary MQTT 5.0 client of the broker,
// connected through DialInternal instead of a listener, so that its session
// is a persistent session like any other: its subscriptions, queue,
// in-flight window and QoS 2 state are under the durability contract, its
// queue obeys the queue limits, and recovery restores it. Only these things
// differ, each checked where the corresponding decision is made:
//
//   - Client ids starting with InternalPrefix are reserved: a network client
//     asking for one is refused (CONNACK 0x02 / 0x85), so no client can take
//     over or read an internal session (connect.go).
//   - An internal connection is not authenticated and not subject to the
//     ACL (authz.go): the operator configured it; nor to the publish rate
//     (limits.go), the caps on keep alive and session expiry (connect5.go) or
//     the connection limits (it has no listener).
//   - Its Receive Maximum is still capped by MaxInflight (the conservative
//     "may have been sent" watermark after a restart assumes that window).
//
// Invariants:
//   - c.internal() is true exactly for connections made by DialInternal.
//   - Messages a queue limit drops or refuses for an internal session are
//     counted per session (InternalDrops), besides the broker's counters.

// InternalPrefix starts the client id of every internal session.
const InternalPrefix = "$bridge/"

// IsInternalClientID reports whether id is reserved for an internal session.
func IsInternalClientID(id string) bool { return strings.HasPrefix(id, InternalPrefix) }

// internalListener serves the connections of DialInternal.
var internalListener = Listener{Name: "internal", AllowAnonymous: true, internal: true}

// internal reports whether the connection was made by DialInternal.
func (c *conn) internal() bool { return c.sec.lis != nil && c.sec.lis.internal }

// DialInternal returns the client end of a new in-process connection served
// by the broker, as a listener would serve a socket, except that it may
// claim an InternalPrefix client id. The caller speaks MQTT on it (CONNECT
// first) and closes it when done. It fails with ErrClosed once Shutdown
// began.
func (b *Broker) DialInternal() (net.Conn, error) {
	client, server := net.Pipe()
	if !b.serveConn(server, &internalListener) {
		client.Close()
		return nil, ErrClosed
	}
	return client, nil
}

// admitClientID refuses a network client that asks for a reserved client id.
// It returns false when the connection was refused (CONNACK written).
func (c *conn) admitClientID(id string) bool {
	if c.internal() || !IsInternalClientID(id) {
		return true
	}
	c.b.stats.Security.ClientIDRejected.Add(1)
	return c.refuse(wire.ConnRefusedIdentifier, wire.ClientIDNotValid, "client id prefix "+InternalPrefix+" is reserved for the broker's bridges")
}

// InternalSessions returns the client ids of the internal sessions the
// broker holds (restored from the store or connected since), sorted.
func (b *Broker) InternalSessions() []string {
	b.mu.RLock()
	var ids []string
	for id := range b.sessions {
		if IsInternalClientID(id) {
			ids = append(ids, id)
		}
	}
	b.mu.RUnlock()
	sort.Strings(ids)
	return ids
}

// SessionFilters returns the topic filters id's session is subscribed to,
// sorted (nil when it has none).
func (b *Broker) SessionFilters(id string) []string {
	subs := b.subs.Subscriptions(id)
	if len(subs) == 0 {
		return nil
	}
	out := make([]string, 0, len(subs))
	for f := range subs {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// DropCounts are the messages a queue limit cost one internal session.
type DropCounts struct {
	Dropped  int64 // not queued (policy reject, for wills and retained) or dropped oldest to make room
	Rejected int64 // publishes refused whole because this queue was full (policy reject)
}

// internalDrops counts queue-limit losses per internal session.
type internalDrops struct {
	m sync.Map // client id → *dropCounters
}

type dropCounters struct{ dropped, rejected atomic.Int64 }

func (d *internalDrops) get(id string) *dropCounters {
	if v, ok := d.m.Load(id); ok {
		return v.(*dropCounters)
	}
	v, _ := d.m.LoadOrStore(id, &dropCounters{})
	return v.(*dropCounters)
}

// countDropped records n messages of client's queue dropped or not queued.
func (b *Broker) countDropped(client string, n int) {
	if IsInternalClientID(client) {
		b.idrops.get(client).dropped.Add(int64(n))
	}
}

// countRejected records a publish refused because client's queue was full.
func (b *Broker) countRejected(client string) {
	if IsInternalClientID(client) {
		b.idrops.get(client).rejected.Add(1)
	}
}

// InternalDrops returns what the queue limits cost the internal session id
// since the broker started.
func (b *Broker) InternalDrops(id string) DropCounts {
	v, ok := b.idrops.m.Load(id)
	if !ok {
		return DropCounts{}
	}
	c := v.(*dropCounters)
	return DropCounts{Dropped: c.dropped.Load(), Rejected: c.rejected.Load()}
}

// SessionQueue returns the number of messages queued for id's session (in
// flight included) and their payload bytes, as the store holds them.
func (b *Broker) SessionQueue(id string) (messages int, bytes int64) {
	qi := b.store.QueueInfo(id)
	return qi.Count, qi.Bytes
}
