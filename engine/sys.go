package engine

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// $SYS: the broker's state as retained messages under $SYS/broker/,
// published on an interval.
//
// Invariants:
//   - $SYS messages live in memory only: they are set in the in-memory
//     retained index and delivered at QoS 0, never committed to the store
//     (they are regenerated every interval; writing them would only churn
//     the disk). A new subscriber gets the current values at once, as
//     retained messages.
//   - Topics beginning with "$" are not matched by filters beginning with a
//     wildcard (MQTT-4.7.2-1, the trie's rule): "#" and "+/broker/..." see
//     none of them; "$SYS/#" sees them all.
//   - $SYS/ belongs to the broker: a client's PUBLISH to it is refused (5.0
//     PUBACK/PUBREC 0x87; 3.x acknowledged and dropped), and so is a CONNECT
//     whose will is on it, so that nothing under $SYS/ is ever stored.
//   - Rates ("load") are averages over the samples of the last minute (the
//     window grows from one interval to a minute after start).

// SysTopics lists the topics PublishSys publishes, for documentation and
// tests.
var SysTopics = []string{
	"$SYS/broker/version",
	"$SYS/broker/uptime",
	"$SYS/broker/clients/connected",
	"$SYS/broker/clients/disconnected",
	"$SYS/broker/clients/maximum",
	"$SYS/broker/clients/total",
	"$SYS/broker/subscriptions/count",
	"$SYS/broker/retained messages/count",
	"$SYS/broker/messages/received",
	"$SYS/broker/messages/sent",
	"$SYS/broker/messages/dropped",
	"$SYS/broker/bytes/received",
	"$SYS/broker/bytes/sent",
	"$SYS/broker/load/messages/received/1min",
	"$SYS/broker/load/messages/sent/1min",
	"$SYS/broker/load/bytes/received/1min",
	"$SYS/broker/load/bytes/sent/1min",
	"$SYS/broker/messages/queued",
	"$SYS/broker/messages/queued/bytes",
	"$SYS/broker/store/size",
	"$SYS/broker/store/fsync/latency",
	"$SYS/broker/store/fsync/count",
}

// isSysTopic reports whether topic is the broker's.
func isSysTopic(topic string) bool {
	return strings.HasPrefix(topic, "$SYS/") || topic == "$SYS"
}

// sysState is what the publisher remembers between ticks.
type sysState struct {
	mu       sync.Mutex
	started  time.Time
	version  string
	samples  []sysSample // the last minute, oldest first
	lastSync store.CommitStats
	topics   map[string]struct{} // the $SYS topics set in the retained index
}

type sysSample struct {
	at                time.Time
	msgIn, msgOut     int64
	bytesIn, bytesOut int64
}

const sysWindow = time.Minute

// StartSys publishes the $SYS topics now (before it returns) and every
// interval until stop is called (or the broker shuts down). version is $SYS/broker/version.
func (b *Broker) StartSys(interval time.Duration, version string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.sys.mu.Lock()
	if b.sys.started.IsZero() {
		b.sys.started = b.now()
	}
	b.sys.version = version
	b.sys.mu.Unlock()
	b.PublishSys() // the values exist before StartSys returns
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.PublishSys()
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// PublishSys publishes every $SYS topic once with the current values.
func (b *Broker) PublishSys() {
	b.mu.RLock()
	closing := b.closing
	b.mu.RUnlock()
	if closing {
		return
	}
	st := &b.stats
	now := b.now()
	cur := sysSample{
		at:       now,
		msgIn:    st.MessagesReceived.Load(),
		msgOut:   st.MessagesSent.Load(),
		bytesIn:  st.Traffic.BytesReceived.Load(),
		bytesOut: st.Traffic.BytesSent.Load(),
	}
	cs := b.store.CommitStats()
	qt := b.store.QueueTotals()
	var disk uint64
	if m := b.store.Metrics(); m != nil {
		disk = m.DiskSpaceUsage()
	}

	s := &b.sys
	s.mu.Lock()
	if s.started.IsZero() {
		s.started = now
	}
	s.samples = append(s.samples, cur)
	// Keep the newest sample at least a minute old, and everything after.
	for len(s.samples) > 2 && !s.samples[1].at.After(now.Add(-sysWindow)) {
		s.samples = s.samples[1:]
	}
	old := s.samples[0]
	syncs := cs.Syncs - s.lastSync.Syncs
	syncTime := cs.SyncTime - s.lastSync.SyncTime
	s.lastSync = cs
	version, started := s.version, s.started
	s.mu.Unlock()
	g := b.Gauges()

	rate := func(a, b int64) string {
		d := cur.at.Sub(old.at).Seconds()
		if d <= 0 {
			return "0"
		}
		return strconv.FormatFloat(float64(b-a)/d, 'f', 2, 64)
	}
	latency := "0"
	if syncs > 0 {
		latency = strconv.FormatFloat(float64(syncTime)/float64(syncs)/float64(time.Millisecond), 'f', 3, 64)
	}
	sessions, connected := int64(g.Sessions), int64(g.Connected)
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	values := []string{
		"cairn " + version,
		n(int64(now.Sub(started) / time.Second)),
		n(connected),
		n(max(sessions-connected, 0)),
		n(st.Traffic.ConnectedMax.Load()),
		n(sessions),
		n(int64(g.Subscriptions)),
		n(int64(g.Retained)),
		n(cur.msgIn),
		n(cur.msgOut),
		n(st.MessagesDropped.Load()),
		n(cur.bytesIn),
		n(cur.bytesOut),
		rate(old.msgIn, cur.msgIn),
		rate(old.msgOut, cur.msgOut),
		rate(old.bytesIn, cur.bytesIn),
		rate(old.bytesOut, cur.bytesOut),
		n(qt.Messages),
		n(qt.Bytes),
		strconv.FormatUint(disk, 10),
		latency,
		strconv.FormatUint(cs.Syncs, 10),
	}
	for i, topic := range SysTopics {
		b.publishSysTopic(topic, values[i], now)
	}
}

// publishSysTopic sets topic's retained value in memory and delivers it at
// QoS 0 to the current subscribers; nothing is stored.
func (b *Broker) publishSysTopic(topic, value string, now time.Time) {
	payload := []byte(value)
	live := &store.Message{Topic: topic, Payload: payload, QoS: 0, PublishedAt: now.UnixNano()}
	kept := *live
	kept.Retain = true
	b.retained.Set(topic, &kept)
	b.sys.mu.Lock()
	if b.sys.topics == nil {
		b.sys.topics = make(map[string]struct{})
	}
	b.sys.topics[topic] = struct{}{}
	b.sys.mu.Unlock()
	r := b.route(live, "", now.UnixNano())
	r.ev = nil // QoS 0 is never queued; this makes sure nothing is stored
	r.deliver(b)
}

// refuseSysPublish answers a client's PUBLISH to a $SYS/ topic: dropped;
// 5.0 is told 0x87, 3.x gets its usual acknowledgement (it has no way to
// refuse one; answerPublish, limits.go). The connection stays open.
func (c *conn) refuseSysPublish(p *wire.Publish) bool {
	c.b.stats.Traffic.SysPublishRefused.Add(1)
	c.logRefusal("PUBLISH refused: $SYS/ topics are the broker's", "topic", p.Topic, "qos", p.QoS)
	c.answerPublish(p, wire.NotAuthorized, "$SYS/ topics are the broker's")
	return true
}
