package metrics_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/goleak"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/listen"
	"github.com/cairn-mqtt/cairn/engine/metrics"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a broker on TCP and WebSocket with its metrics.
type env struct {
	m      *metrics.Metrics
	b      *engine.Broker
	st     *store.Store
	tcp    string
	ws     *listen.WSListener
	served chan struct{}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{m: metrics.New("v-test"), served: make(chan struct{}, 2)}
	var err error
	e.st, err = store.Open(t.TempDir(), store.Options{Observer: e.m})
	if err != nil {
		t.Fatal(err)
	}
	e.b = engine.New(e.st, engine.Options{Observer: e.m})
	e.m.Attach(e.b, e.st)
	if _, err := recovery.Restore(e.st, e.b); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.tcp = l.Addr().String()
	if e.ws, err = listen.ListenWS("127.0.0.1:0", listen.WSOptions{}); err != nil {
		t.Fatal(err)
	}
	e.m.AddWebSocket("ws", e.ws)
	go func() { _ = e.b.Serve(l); e.served <- struct{}{} }()
	go func() { _ = e.b.Serve(e.ws); e.served <- struct{}{} }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.b.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		<-e.served
		<-e.served
		if err := e.st.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// scrape gathers every family as sample values by label set.
func scrape(t *testing.T, m *metrics.Metrics) map[string]map[string]float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]map[string]float64{}
	for _, f := range fams {
		vals := map[string]float64{}
		for _, mt := range f.GetMetric() {
			var key []string
			for _, l := range mt.GetLabel() {
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			vals[strings.Join(key, ",")] = value(f.GetType(), mt)
		}
		out[f.GetName()] = vals
	}
	return out
}

func value(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func sum(vals map[string]float64) float64 {
	var s float64
	for _, v := range vals {
		s += v
	}
	return s
}

// TestMetricsFamiliesMove: every family is present from the first scrape,
// and the ones traffic drives move under traffic over TCP and WebSocket:
// connections, packets and bytes by type, publishes and deliveries, the ack
// latency, fsync and batch histograms, queue depths, drops by reason,
// refusals, wills, take-overs, expiries, protocol errors, security events,
// compaction, WebSocket upgrades and refusals; the Pebble and free-space
// families report the store.
func TestMetricsFamiliesMove(t *testing.T) {
	e := newEnv(t)
	before := scrape(t, e.m)
	for _, name := range metrics.Names() {
		if _, ok := before[name]; !ok {
			t.Errorf("family %s missing from the first scrape", name)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := before[name]; !ok {
			t.Errorf("runtime family %s missing", name)
		}
	}

	// A persistent subscriber that goes offline (queued messages), over
	// WebSocket.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wc, _, err := websocket.Dial(ctx, e.ws.URL(), &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	sub := wiretest.NewConn(t, websocket.NetConn(context.Background(), wc, websocket.MessageBinary), wire.V5)
	sub.Connect(t, &wire.Connect{ClientID: "away", CleanStart: true, Props: &wire.Properties{SessionExpiry: u32(3600), MaximumPacketSize: u32(300)}})
	sub.Send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "m/#", QoS: 1}}})
	sub.Expect(t, wiretest.Timeout)
	// An online subscriber over TCP: deliveries.
	live := wiretest.Dial(t, e.tcp, wire.V311)
	live.Connect(t, &wire.Connect{ClientID: "live", CleanStart: true})
	live.Send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "m/x", QoS: 0}}})
	live.Expect(t, wiretest.Timeout)
	// Too large for it: dropped (too_large) while it is online.
	pub := wiretest.Dial(t, e.tcp, wire.V311)
	pub.Connect(t, &wire.Connect{ClientID: "pub", CleanStart: true})
	pub.Send(&wire.Publish{Topic: "m/big", QoS: 0, Payload: []byte(strings.Repeat("b", 500))})
	pub.Send(&wire.Pingreq{})
	pub.Expect(t, wiretest.Timeout)
	// The drop happens in the subscriber's writer, after the routing that
	// PINGRESP waits for: let it happen before the subscriber leaves.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if scrape(t, e.m)["cairn_messages_dropped_total"]["reason=too_large"] > 0 {
			break
		}
	}
	sub.Send(&wire.Disconnect{})
	sub.ExpectClosed(t, wiretest.Timeout)

	for i := range 10 {
		pub.Send(&wire.Publish{Topic: "m/x", QoS: 1, PacketID: uint16(i + 1), Payload: []byte("payload"), Retain: i == 0})
		pub.Expect(t, wiretest.Timeout)
	}
	pub.Send(&wire.Publish{Topic: "$SYS/nope", QoS: 1, PacketID: 99, Payload: []byte("x")})
	pub.Expect(t, wiretest.Timeout)

	// A will (the connection drops), a take-over, a protocol error.
	w := wiretest.Dial(t, e.tcp, wire.V311)
	w.Connect(t, &wire.Connect{ClientID: "willer", CleanStart: true, Will: &wire.Will{Topic: "m/will", Payload: []byte("gone")}})
	w.Close()
	t1 := wiretest.Dial(t, e.tcp, wire.V311)
	t1.Connect(t, &wire.Connect{ClientID: "twin", CleanStart: true})
	t2 := wiretest.Dial(t, e.tcp, wire.V311)
	t2.Connect(t, &wire.Connect{ClientID: "twin", CleanStart: true})
	bad := wiretest.Dial(t, e.tcp, wire.V311)
	bad.Connect(t, &wire.Connect{ClientID: "bad", CleanStart: true})
	bad.SendRaw([]byte{0xF0, 0x00}) // reserved packet type
	bad.ExpectClosed(t, wiretest.Timeout)
	// A session that expires a second after it leaves.
	exp := wiretest.Dial(t, e.tcp, wire.V5)
	exp.Connect(t, &wire.Connect{ClientID: "brief", CleanStart: true, Props: &wire.Properties{SessionExpiry: u32(1)}})
	exp.Send(&wire.Disconnect{})
	exp.ExpectClosed(t, wiretest.Timeout)
	// A client id over the limit (a security event), a WebSocket upgrade
	// without the MQTT subprotocol (refused).
	long := wiretest.Dial(t, e.tcp, wire.V311)
	long.Send(&wire.Connect{ClientID: strings.Repeat("i", 300), CleanStart: true})
	long.ExpectClosed(t, wiretest.Timeout)
	if c, _, err := websocket.Dial(ctx, e.ws.URL(), nil); err == nil {
		c.CloseNow()
		t.Fatal("a WebSocket without the mqtt subprotocol was upgraded")
	}
	if _, err := e.b.Compact(context.Background(), true); err != nil {
		t.Fatal(err)
	}

	var after map[string]map[string]float64
	moved := func(name, label string) bool {
		if label == "" {
			return sum(after[name]) > sum(before[name])
		}
		return after[name][label] > before[name][label]
	}
	must := []struct{ name, label string }{
		{"cairn_connections_total", ""},
		{"cairn_connections_open", ""},
		{"cairn_clients_connected", ""},
		{"cairn_messages_delivered_total", ""},
		{"cairn_sessions_expired_total", ""},
		{"cairn_security_events_total", "event=client_id_rejected"},
		{"cairn_websocket_refused_total", "listener=ws,reason=no_mqtt_subprotocol"},
		{"cairn_sessions", "state=online"},
		{"cairn_packets_received_total", "type=PUBLISH"},
		{"cairn_packets_received_total", "type=CONNECT"},
		{"cairn_packets_received_total", "type=PINGREQ"},
		{"cairn_packets_sent_total", "type=PUBACK"},
		{"cairn_packets_sent_total", "type=SUBACK"},
		{"cairn_bytes_received_total", ""},
		{"cairn_bytes_sent_total", ""},
		{"cairn_messages_received_total", ""},
		{"cairn_messages_dropped_total", "reason=too_large"},
		{"cairn_publish_refused_total", "reason=sys_topic"},
		{"cairn_queued_messages", ""},
		{"cairn_queued_bytes", ""},
		{"cairn_queues", ""},
		{"cairn_queue_deepest_messages", ""},
		{"cairn_sessions", "state=offline"},
		{"cairn_subscriptions", ""},
		{"cairn_retained_messages", ""},
		{"cairn_clients_connected_max", ""},
		{"cairn_wills_published_total", ""},
		{"cairn_sessions_taken_over_total", ""},
		{"cairn_protocol_errors_total", ""},
		{"cairn_publish_ack_latency_seconds", ""},
		{"cairn_store_fsync_seconds", ""},
		{"cairn_store_commit_batch_events", ""},
		{"cairn_store_fsync_batch_commits", ""},
		{"cairn_store_commits_total", ""},
		{"cairn_store_events_total", ""},
		{"cairn_store_fsyncs_total", ""},
		{"cairn_compaction_runs_total", ""},
		{"cairn_compaction_seconds_total", ""},
		{"cairn_websocket_upgrades_total", "listener=ws"},
		{"cairn_pebble_wal_bytes", ""},
	}
	ok := false
	deadline := time.Now().Add(5 * time.Second)
	for !ok && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		after = scrape(t, e.m)
		ok = true
		for _, f := range must {
			ok = ok && moved(f.name, f.label)
		}
	}
	for _, f := range must {
		if !moved(f.name, f.label) {
			t.Errorf("%s{%s}: %v before, %v after traffic: did not move", f.name, f.label, before[f.name], after[f.name])
		}
	}
	// Present, with values that say something, though this traffic does not
	// move them: the start time, the free space and its reserve (the
	// temporary directory is on a real volume), the space guard at rest.
	if after["cairn_start_time_seconds"][""] < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("cairn_start_time_seconds = %v", after["cairn_start_time_seconds"])
	}
	if after["cairn_store_free_bytes"][""] <= 0 || after["cairn_store_free_space_reserve_bytes"][""] <= 0 || after["cairn_store_space_low"][""] != 0 {
		t.Errorf("free space %v, reserve %v, low %v", after["cairn_store_free_bytes"], after["cairn_store_free_space_reserve_bytes"], after["cairn_store_space_low"])
	}
	if after["cairn_pebble_disk_bytes"][""] <= 0 {
		t.Errorf("cairn_pebble_disk_bytes = %v", after["cairn_pebble_disk_bytes"])
	}
	if after["cairn_build_info"]["goversion="+goVersion(after)+",version=v-test"] != 1 {
		t.Errorf("cairn_build_info = %v", after["cairn_build_info"])
	}
	if len(after["cairn_pebble_level_files"]) != 7 {
		t.Errorf("cairn_pebble_level_files has %d levels", len(after["cairn_pebble_level_files"]))
	}
}

func goVersion(s map[string]map[string]float64) string {
	for k := range s["cairn_build_info"] {
		for _, kv := range strings.Split(k, ",") {
			if v, ok := strings.CutPrefix(kv, "goversion="); ok {
				return v
			}
		}
	}
	return ""
}

// TestMetricsHandler: the handler answers the Prometheus text format, which
// parses, with HELP and TYPE for the families.
func TestMetricsHandler(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("not the text format: %v\n%s", err, body)
	}
	for _, name := range metrics.Names() {
		f := fams[name]
		if f == nil || f.GetHelp() == "" {
			t.Errorf("%s: missing or without HELP", name)
		}
	}
	if !strings.Contains(string(body), "# TYPE cairn_publish_ack_latency_seconds histogram") {
		t.Error("the ack latency is not a histogram")
	}
}

func u32(v uint32) *uint32 { return &v }
