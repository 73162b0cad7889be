// Package metrics exposes the broker in the Prometheus text format (the
// admin endpoint's /metrics): the engine's counters and sizes (security
// refusals by event among them), the commit pipeline's histograms, the
// store's free-space guard, Pebble's metrics, the WebSocket listeners'
// counters, and the Go runtime and process collectors.
//
// Invariants (what keeps it off the hot path):
//   - Counters and gauges are not Prometheus objects updated by the broker:
//     the broker keeps its own atomics (engine.Stats) and they are read at
//     scrape time into constant metrics. A scrape costs one pass over the
//     queue summaries and one pebble.Metrics call; traffic costs nothing
//     here.
//   - The histograms are observed once per commit batch and once per fsync
//     (store.CommitObserver), and once per QoS 1/2 acknowledgement
//     (engine.Observer): a few atomic adds each.
//   - Every family is always present, zero or not, so that dashboards and
//     alerts see it from the first scrape — except the per-bridge families
//     (bridges.go), which have a series only for each configured bridge.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/engine/listen"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// latencyBuckets are the bounds of the latency histograms, seconds: 50 µs
// (an fsync on fast NVMe) to 10 s (a disk in trouble).
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
}

// sizeBuckets are the bounds of the batch-size histograms (events per
// commit, commits per fsync).
var sizeBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}

// Metrics is the broker's metrics registry. It is an engine.Observer and a
// store.CommitObserver: pass it as Options.Observer to both, then Attach.
type Metrics struct {
	reg     *prometheus.Registry
	version string
	start   time.Time

	ackLatency   prometheus.Histogram
	fsync        prometheus.Histogram
	commitEvents prometheus.Histogram
	fsyncCommits prometheus.Histogram

	mu sync.Mutex
	b  *engine.Broker
	st *store.Store
	ws []wsSource
	// bridges, if set, reports the bridges' status (bridges.go).
	bridges func() []bridge.Status
}

type wsSource struct {
	name string
	l    *listen.WSListener
}

// New returns the registry; version is reported by cairn_build_info.
func New(version string) *Metrics {
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		version: version,
		start:   time.Now(),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_publish_ack_latency_seconds",
			Help:    "Time from reading a QoS 1/2 PUBLISH to queuing its PUBACK/PUBREC (the commit and fsync the publisher waits for).",
			Buckets: latencyBuckets,
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_store_fsync_seconds",
			Help:    "Latency of the commit pipeline's WAL fsyncs.",
			Buckets: latencyBuckets,
		}),
		commitEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_store_commit_batch_events",
			Help:    "Events per store commit (one Pebble batch).",
			Buckets: sizeBuckets,
		}),
		fsyncCommits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_store_fsync_batch_commits",
			Help:    "Commits made durable by one WAL fsync (the group-commit factor).",
			Buckets: sizeBuckets,
		}),
	}
	m.reg.MustRegister(m.ackLatency, m.fsync, m.commitEvents, m.fsyncCommits,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), (*collector)(m))
	return m
}

// ObserveAckLatency implements engine.Observer.
func (m *Metrics) ObserveAckLatency(d time.Duration) { m.ackLatency.Observe(d.Seconds()) }

// ObserveCommit implements store.CommitObserver.
func (m *Metrics) ObserveCommit(events int) { m.commitEvents.Observe(float64(events)) }

// ObserveSync implements store.CommitObserver.
func (m *Metrics) ObserveSync(took time.Duration, commits int) {
	m.fsync.Observe(took.Seconds())
	m.fsyncCommits.Observe(float64(commits))
}

// Attach sets the broker and store the scrapes read.
func (m *Metrics) Attach(b *engine.Broker, st *store.Store) {
	m.mu.Lock()
	m.b, m.st = b, st
	m.mu.Unlock()
}

// AddWebSocket adds a WebSocket listener's counters under listener=name.
func (m *Metrics) AddWebSocket(name string, l *listen.WSListener) {
	m.mu.Lock()
	m.ws = append(m.ws, wsSource{name, l})
	m.mu.Unlock()
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the underlying registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// A family read at scrape time.
type family struct {
	name string
	desc *prometheus.Desc
	kind prometheus.ValueType
}

func newFamily(name, help string, kind prometheus.ValueType, labels ...string) family {
	return family{name, prometheus.NewDesc(name, help, labels, nil), kind}
}

var (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// The families of the collector, in the README's order.
var (
	fBuild       = newFamily("cairn_build_info", "The running version (value 1).", gauge, "version", "goversion")
	fStart       = newFamily("cairn_start_time_seconds", "When the broker started, Unix time.", gauge)
	fConnsTotal  = newFamily("cairn_connections_total", "Connections accepted (every listener).", counter)
	fConnsOpen   = newFamily("cairn_connections_open", "Connections being served now.", gauge)
	fConnected   = newFamily("cairn_clients_connected", "Clients connected (CONNECT accepted) now.", gauge)
	fConnMax     = newFamily("cairn_clients_connected_max", "Most clients connected at once since start.", gauge)
	fSessions    = newFamily("cairn_sessions", "Sessions in memory by state (online, offline persistent).", gauge, "state")
	fSubs        = newFamily("cairn_subscriptions", "Subscriptions (shared ones included).", gauge)
	fRetained    = newFamily("cairn_retained_messages", "Retained messages ($SYS not counted).", gauge)
	fPktIn       = newFamily("cairn_packets_received_total", "MQTT packets received, by type.", counter, "type")
	fPktOut      = newFamily("cairn_packets_sent_total", "MQTT packets sent, by type.", counter, "type")
	fBytesIn     = newFamily("cairn_bytes_received_total", "Bytes read from client connections (MQTT bytes; WebSocket framing not counted).", counter)
	fBytesOut    = newFamily("cairn_bytes_sent_total", "Bytes written to client connections.", counter)
	fMsgIn       = newFamily("cairn_messages_received_total", "PUBLISH messages received from clients.", counter)
	fMsgOut      = newFamily("cairn_messages_delivered_total", "Messages delivered to subscribers (QoS 0 sent, QoS 1/2 acknowledged).", counter)
	fDropped     = newFamily("cairn_messages_dropped_total", "Deliveries dropped, by reason.", counter, "reason")
	fRefused     = newFamily("cairn_publish_refused_total", "PUBLISH messages refused, by reason.", counter, "reason")
	fQueued      = newFamily("cairn_queued_messages", "Messages queued in the store for persistent sessions.", gauge)
	fQueuedBytes = newFamily("cairn_queued_bytes", "Payload bytes of the queued messages.", gauge)
	fQueues      = newFamily("cairn_queues", "Persistent sessions with queued messages.", gauge)
	fDeepest     = newFamily("cairn_queue_deepest_messages", "Messages in the longest session queue.", gauge)
	fProto       = newFamily("cairn_protocol_errors_total", "Connections closed for a protocol violation or a malformed packet.", counter)
	fWills       = newFamily("cairn_wills_published_total", "Will messages published.", counter)
	fTakeovers   = newFamily("cairn_sessions_taken_over_total", "Sessions taken over by a new connection with the same client id.", counter)
	fExpired     = newFamily("cairn_sessions_expired_total", "Sessions expired.", counter)
	fCommitFail  = newFamily("cairn_commit_failures_total", "Store commits that failed.", counter)
	fCommits     = newFamily("cairn_store_commits_total", "Store commits (Pebble batches).", counter)
	fEvents      = newFamily("cairn_store_events_total", "Events committed to the store.", counter)
	fSyncs       = newFamily("cairn_store_fsyncs_total", "WAL fsyncs of the commit pipeline.", counter)
	fCompRuns    = newFamily("cairn_compaction_runs_total", "Compaction task passes completed.", counter)
	fCompFail    = newFamily("cairn_compaction_failures_total", "Compaction task passes that failed.", counter)
	fCompSecs    = newFamily("cairn_compaction_seconds_total", "Wall time of the compaction task's passes.", counter)
	fCompPause   = newFamily("cairn_compaction_pause_seconds_total", "Time the compaction task held up the broker's commits.", counter)
	fCompMax     = newFamily("cairn_compaction_pause_max_seconds", "Longest single hold-up of the broker's commits by the compaction task.", gauge)
	fMaint       = newFamily("cairn_maintenance_deleted_total", "What the compaction task deleted, by kind.", counter, "kind")
	fPDisk       = newFamily("cairn_pebble_disk_bytes", "Bytes Pebble uses on disk (sstables, WAL, manifest).", gauge)
	fPWALFiles   = newFamily("cairn_pebble_wal_files", "Live WAL files.", gauge)
	fPWALBytes   = newFamily("cairn_pebble_wal_bytes", "Live WAL bytes (logical).", gauge)
	fPMemBytes   = newFamily("cairn_pebble_memtable_bytes", "Bytes in memtables.", gauge)
	fPMemCount   = newFamily("cairn_pebble_memtables", "Memtables (the mutable one and those waiting to be flushed).", gauge)
	fPDebt       = newFamily("cairn_pebble_compaction_debt_bytes", "Bytes Pebble estimates it must compact to reach a stable LSM shape.", gauge)
	fPCompacts   = newFamily("cairn_pebble_compactions_total", "Pebble compactions.", counter)
	fPFlushes    = newFamily("cairn_pebble_flushes_total", "Pebble memtable flushes.", counter)
	fPReadAmp    = newFamily("cairn_pebble_read_amplification", "Sublevels and levels a read may have to look into.", gauge)
	fPLevelFiles = newFamily("cairn_pebble_level_files", "Sstables per LSM level.", gauge, "level")
	fPLevelBytes = newFamily("cairn_pebble_level_bytes", "Sstable bytes per LSM level.", gauge, "level")
	fPCacheHits  = newFamily("cairn_pebble_block_cache_hits_total", "Block cache hits.", counter)
	fPCacheMiss  = newFamily("cairn_pebble_block_cache_misses_total", "Block cache misses.", counter)
	fPCacheBytes = newFamily("cairn_pebble_block_cache_bytes", "Bytes in the block cache.", gauge)
	fSecurity    = newFamily("cairn_security_events_total", "Connections, logins, packets and subscriptions refused by the security settings and limits, and other limit events, by event.", counter, "event")
	fStoreFull   = newFamily("cairn_store_full_refusals_total", "Work refused because the store's volume is below its free-space reserve.", counter)
	fSpaceFree   = newFamily("cairn_store_free_bytes", "Free space of the store's volume at the last measurement (0 when not measured).", gauge)
	fSpaceRes    = newFamily("cairn_store_free_space_reserve_bytes", "The free-space reserve below which new durable work is refused (0: no guard).", gauge)
	fSpaceLow    = newFamily("cairn_store_space_low", "1 while the store refuses growth for lack of free space.", gauge)
	fWaiting     = newFamily("cairn_store_commits_waiting", "Commits whose completion (mostly an fsync) is pending now.", gauge)
	fWSUpgrades  = newFamily("cairn_websocket_upgrades_total", "WebSocket connections upgraded and handed to the broker.", counter, "listener")
	fWSRefused   = newFamily("cairn_websocket_refused_total", "WebSocket requests refused, by reason.", counter, "listener", "reason")
)

var families = []family{
	fBuild, fStart, fConnsTotal, fConnsOpen, fConnected, fConnMax, fSessions, fSubs, fRetained,
	fPktIn, fPktOut, fBytesIn, fBytesOut, fMsgIn, fMsgOut, fDropped, fRefused,
	fQueued, fQueuedBytes, fQueues, fDeepest, fProto, fWills, fTakeovers, fExpired, fCommitFail,
	fCommits, fEvents, fSyncs, fCompRuns, fCompFail, fCompSecs, fCompPause, fCompMax, fMaint,
	fPDisk, fPWALFiles, fPWALBytes, fPMemBytes, fPMemCount, fPDebt, fPCompacts, fPFlushes, fPReadAmp,
	fPLevelFiles, fPLevelBytes, fPCacheHits, fPCacheMiss, fPCacheBytes,
	fSecurity, fStoreFull, fSpaceFree, fSpaceRes, fSpaceLow, fWaiting, fWSUpgrades, fWSRefused,
}

// packetTypes are the labels of the packet families.
var packetTypes = []wire.PacketType{
	wire.CONNECT, wire.CONNACK, wire.PUBLISH, wire.PUBACK, wire.PUBREC, wire.PUBREL, wire.PUBCOMP,
	wire.SUBSCRIBE, wire.SUBACK, wire.UNSUBSCRIBE, wire.UNSUBACK, wire.PINGREQ, wire.PINGRESP, wire.DISCONNECT, wire.AUTH,
}

// collector reads the broker, the store and the listeners at scrape time.
type collector Metrics

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range families {
		ch <- f.desc
	}
	for _, f := range bridgeFamilies {
		ch <- f.desc
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(c)
	emit := func(f family, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(f.desc, f.kind, v, labels...)
	}
	emit(fBuild, 1, m.version, runtime.Version())
	emit(fStart, float64(m.start.UnixNano())/1e9)
	m.mu.Lock()
	b, st, ws, bridges := m.b, m.st, append([]wsSource(nil), m.ws...), m.bridges
	m.mu.Unlock()
	if bridges != nil {
		collectBridges(bridges, emit)
	}
	if b != nil {
		collectBroker(b, emit)
	}
	if st != nil {
		collectStore(st, emit)
	}
	for _, w := range ws {
		s := w.l.Stats()
		emit(fWSUpgrades, float64(s.Upgraded), w.name)
		emit(fWSRefused, float64(s.RefusedProtocol), w.name, "no_mqtt_subprotocol")
		emit(fWSRefused, float64(s.RefusedOrigin), w.name, "origin")
		emit(fWSRefused, float64(s.RefusedHandshake), w.name, "bad_handshake")
		emit(fWSRefused, float64(s.RefusedNotFound), w.name, "not_found")
		emit(fWSRefused, float64(s.HandshakeFailures), w.name, "tls_handshake")
		emit(fWSRefused, float64(s.BinaryViolations), w.name, "text_message")
		emit(fWSRefused, float64(s.HeaderTimeouts), w.name, "header_timeout")
	}
}

type emitter func(f family, v float64, labels ...string)

func collectBroker(b *engine.Broker, emit emitter) {
	s := b.Stats()
	g := b.Gauges()
	emit(fConnsTotal, float64(s.ConnectionsTotal.Load()))
	emit(fConnsOpen, float64(g.Conns))
	emit(fConnected, float64(g.Connected))
	emit(fConnMax, float64(s.Traffic.ConnectedMax.Load()))
	emit(fSessions, float64(g.Connected), "online")
	emit(fSessions, float64(max(g.Sessions-g.Connected, 0)), "offline")
	emit(fSubs, float64(g.Subscriptions))
	emit(fRetained, float64(g.Retained))
	for _, pt := range packetTypes {
		name := pt.String()
		emit(fPktIn, float64(s.Traffic.PacketsReceived[pt].Load()), name)
		emit(fPktOut, float64(s.Traffic.PacketsSent[pt].Load()), name)
	}
	emit(fBytesIn, float64(s.Traffic.BytesReceived.Load()))
	emit(fBytesOut, float64(s.Traffic.BytesSent.Load()))
	emit(fMsgIn, float64(s.MessagesReceived.Load()))
	emit(fMsgOut, float64(s.MessagesSent.Load()))
	for r := engine.DropReason(0); r < engine.NumDropReasons; r++ {
		emit(fDropped, float64(s.Traffic.Drops[r].Load()), r.String())
	}
	mt := &s.Maint
	emit(fRefused, float64(mt.QueueFullRejected.Load()), "queue_full")
	emit(fRefused, float64(mt.RetainedFullRejected.Load()), "retained_full")
	emit(fRefused, float64(s.Traffic.SysPublishRefused.Load()), "sys_topic")
	emit(fProto, float64(s.ProtocolErrors.Load()))
	emit(fWills, float64(s.WillsPublished.Load()))
	emit(fTakeovers, float64(s.SessionsTakenOver.Load()))
	emit(fExpired, float64(s.SessionsExpired.Load()))
	emit(fCommitFail, float64(s.CommitFailures.Load()))
	emit(fCompRuns, float64(mt.CompactRuns.Load()))
	emit(fCompFail, float64(mt.CompactFailures.Load()))
	emit(fCompSecs, float64(mt.CompactNanos.Load())/1e9)
	emit(fCompPause, float64(mt.CompactPauseNanos.Load())/1e9)
	emit(fCompMax, float64(mt.CompactMaxPauseNanos.Load())/1e9)
	emit(fMaint, float64(mt.RetainedExpired.Load()), "retained_expired")
	emit(fMaint, float64(mt.QueuedExpired.Load()), "queued_expired")
	emit(fMaint, float64(mt.BodiesCollected.Load()), "orphan_bodies")
	emit(fMaint, float64(mt.EventsTruncated.Load()), "events_truncated")
	for _, sc := range b.SecurityCounters() {
		emit(fSecurity, float64(sc.Value), sc.Name)
	}
	emit(fStoreFull, float64(s.StoreFullRefusals.Load()))
}

func collectStore(st *store.Store, emit emitter) {
	cs := st.CommitStats()
	emit(fCommits, float64(cs.Commits))
	emit(fEvents, float64(cs.Events))
	emit(fSyncs, float64(cs.Syncs))
	emit(fWaiting, float64(cs.Waiting))
	sp := st.Space()
	low := 0.0
	if sp.Low {
		low = 1
	}
	reserve := float64(sp.Reserve)
	if !sp.Guarded {
		reserve = 0
	}
	emit(fSpaceFree, float64(sp.Avail))
	emit(fSpaceRes, reserve)
	emit(fSpaceLow, low)
	qt := st.QueueTotals()
	emit(fQueued, float64(qt.Messages))
	emit(fQueuedBytes, float64(qt.Bytes))
	emit(fQueues, float64(qt.Queues))
	emit(fDeepest, float64(qt.Deepest))
	pm := st.Metrics()
	if pm == nil {
		return // closed
	}
	emit(fPDisk, float64(pm.DiskSpaceUsage()))
	emit(fPWALFiles, float64(pm.WAL.Files))
	emit(fPWALBytes, float64(pm.WAL.Size))
	emit(fPMemBytes, float64(pm.MemTable.Size))
	emit(fPMemCount, float64(pm.MemTable.Count))
	emit(fPDebt, float64(pm.Compact.EstimatedDebt))
	emit(fPCompacts, float64(pm.Compact.Count))
	emit(fPFlushes, float64(pm.Flush.Count))
	emit(fPReadAmp, float64(pm.ReadAmp()))
	for i := range pm.Levels {
		l := strconv.Itoa(i)
		emit(fPLevelFiles, float64(pm.Levels[i].TablesCount), l)
		emit(fPLevelBytes, float64(pm.Levels[i].TablesSize), l)
	}
	emit(fPCacheHits, float64(pm.BlockCache.Hits))
	emit(fPCacheMiss, float64(pm.BlockCache.Misses))
	emit(fPCacheBytes, float64(pm.BlockCache.Size))
}

// Names lists every family the registry exposes besides the Go and
// process collectors' (for the README and its test).
func Names() []string {
	out := []string{"cairn_publish_ack_latency_seconds", "cairn_store_fsync_seconds", "cairn_store_commit_batch_events", "cairn_store_fsync_batch_commits"}
	for _, f := range families {
		out = append(out, f.name)
	}
	return out
}
