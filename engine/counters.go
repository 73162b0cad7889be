package engine

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// Traffic counters for $SYS and the metrics: bytes and packets in each
// direction, the most clients connected at once, and dropped deliveries by
// reason.
//
// Invariants (what keeps them off the hot path):
//   - Bytes are added once per read or write system call (one atomic add
//     each), never per packet. Over WebSocket they are the MQTT bytes, not
//     the frames.
//   - Packets are tallied per connection in plain counters owned by the
//     goroutine that reads (or writes) them and folded into the shared
//     atomics once per system call: before each read (so a reader about to
//     block has published what it read), after each write, and at teardown.
//     The shared counters lag a live connection by at most one read buffer.
//   - Every dropped delivery is counted once in MessagesDropped and once
//     under its reason.

// TrafficStats are the traffic counters (Stats.Traffic).
type TrafficStats struct {
	BytesReceived atomic.Int64
	BytesSent     atomic.Int64
	// PacketsReceived and PacketsSent are indexed by wire.PacketType.
	PacketsReceived [16]atomic.Int64
	PacketsSent     [16]atomic.Int64
	// ConnectedMax is the most clients connected at once since start.
	ConnectedMax atomic.Int64
	// Drops are the dropped deliveries by reason.
	Drops [NumDropReasons]atomic.Int64
	// SysPublishRefused counts client PUBLISHes to $SYS/ topics refused.
	SysPublishRefused atomic.Int64
}

// DropReason says why a delivery was dropped.
type DropReason int

// The reasons a delivery is dropped.
const (
	DropQueueFull   DropReason = iota // a session's in-memory queue was full (clean session, or QoS 0)
	DropExpired                       // its message expiry passed before it was sent
	DropTooLarge                      // larger than the client's Maximum Packet Size
	DropUnencodable                   // could not be encoded for the client
	DropRefused                       // the client refused it (5.0 PUBREC with an error code)
	DropQueueLimit                    // a persistent session's queue limit (skipped or oldest dropped)
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"queue_full", "expired", "too_large", "unencodable", "refused_by_client", "queue_limit"}

// String is the reason's metric label.
func (r DropReason) String() string {
	if r < 0 || r >= NumDropReasons {
		return "unknown"
	}
	return dropNames[r]
}

// drop counts n dropped deliveries.
func (s *Stats) drop(r DropReason, n int64) {
	s.MessagesDropped.Add(n)
	s.Traffic.Drops[r].Add(n)
}

// connected counts a client that just connected.
func (s *Stats) connected() {
	n := s.Connected.Add(1)
	for {
		m := s.Traffic.ConnectedMax.Load()
		if n <= m || s.Traffic.ConnectedMax.CompareAndSwap(m, n) {
			return
		}
	}
}

// Observer receives the measurements counters cannot hold (histograms).
// Its methods are called on hot paths and must be cheap and safe for
// concurrent use; Options.Observer nil measures nothing.
type Observer interface {
	// ObserveAckLatency is the time from reading a QoS 1/2 PUBLISH off the
	// socket to queuing its PUBACK / PUBREC: the commit (and fsync) the
	// publisher waits for.
	ObserveAckLatency(d time.Duration)
}

// tally is a connection's packet counts and its counting reader.
type tally struct {
	nc     net.Conn
	t      *TrafficStats
	rx, tx [16]int64 // rx: the reader goroutine's; tx: the writer's
	readAt time.Time // when the last read returned (reader goroutine)
	timed  bool      // readAt is wanted (an Observer is set)
}

func (t *tally) init(nc net.Conn, ts *TrafficStats, timed bool) {
	t.nc, t.t, t.timed = nc, ts, timed
}

// Read is the connection's reads: the packets of the previous read are
// published, the bytes counted.
func (t *tally) Read(p []byte) (int, error) {
	t.flushRx()
	n, err := t.nc.Read(p)
	if n > 0 {
		t.t.BytesReceived.Add(int64(n))
		if t.timed {
			t.readAt = time.Now()
		}
	}
	return n, err
}

func (t *tally) received(pt wire.PacketType) { t.rx[pt&15]++ }
func (t *tally) sending(pt wire.PacketType)  { t.tx[pt&15]++ }

func (t *tally) flushRx() { flushTally(&t.rx, &t.t.PacketsReceived) }

// wrote counts a write of n bytes and publishes the packets it held.
func (t *tally) wrote(n int) {
	if n > 0 {
		t.t.BytesSent.Add(int64(n))
	}
	flushTally(&t.tx, &t.t.PacketsSent)
}

func flushTally(local *[16]int64, shared *[16]atomic.Int64) {
	for i, n := range local {
		if n != 0 {
			shared[i].Add(n)
			local[i] = 0
		}
	}
}

// observeAck reports an acknowledgement queued now for a PUBLISH read at.
func (b *Broker) observeAck(at time.Time) {
	if o := b.opts.Observer; o != nil && !at.IsZero() {
		o.ObserveAckLatency(time.Since(at))
	}
}
