package metrics_test

import (
	"testing"

	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/engine/metrics"
)

// TestBridgeFamilies: with bridges attached, every bridge family has a
// series per bridge (and direction) carrying the bridge's status; without
// them none of these families has a series.
func TestBridgeFamilies(t *testing.T) {
	m := metrics.New("v-test")
	none := scrape(t, m)
	for _, name := range metrics.BridgeNames() {
		if len(none[name]) != 0 {
			t.Errorf("%s has series without bridges: %v", name, none[name])
		}
	}
	st := []bridge.Status{
		{Name: "cloud", State: bridge.StateConnected, QueueDepth: 7, QueueBytes: 700, InflightOut: 3, InflightIn: 1,
			OutForwarded: 100, OutBytes: 1000, OutDropped: 2, QueueRejected: 4, InForwarded: 50, InBytes: 500, InDropped: 1,
			Connects: 2, Failures: 5},
		{Name: "backup", State: "waiting", QueueDepth: 9},
	}
	m.SetBridges(func() []bridge.Status { return st })
	got := scrape(t, m)
	for _, name := range metrics.BridgeNames() {
		if len(got[name]) == 0 {
			t.Errorf("%s: no series with two bridges", name)
		}
	}
	for _, c := range []struct {
		family, labels string
		want           float64
	}{
		{"cairn_bridge_up", "bridge=cloud", 1},
		{"cairn_bridge_up", "bridge=backup", 0},
		{"cairn_bridge_queue_messages", "bridge=cloud", 7},
		{"cairn_bridge_queue_messages", "bridge=backup", 9},
		{"cairn_bridge_queue_bytes", "bridge=cloud", 700},
		{"cairn_bridge_inflight_messages", "bridge=cloud,direction=out", 3},
		{"cairn_bridge_inflight_messages", "bridge=cloud,direction=in", 1},
		{"cairn_bridge_forwarded_total", "bridge=cloud,direction=out", 100},
		{"cairn_bridge_forwarded_total", "bridge=cloud,direction=in", 50},
		{"cairn_bridge_forwarded_bytes_total", "bridge=cloud,direction=out", 1000},
		{"cairn_bridge_dropped_total", "bridge=cloud,direction=out", 2},
		{"cairn_bridge_dropped_total", "bridge=cloud,direction=in", 1},
		{"cairn_bridge_queue_rejected_total", "bridge=cloud", 4},
		{"cairn_bridge_connects_total", "bridge=cloud", 2},
		{"cairn_bridge_connect_failures_total", "bridge=cloud", 5},
	} {
		if v, ok := got[c.family][c.labels]; !ok || v != c.want {
			t.Errorf("%s{%s} = %v (present %v), want %v", c.family, c.labels, v, ok, c.want)
		}
	}
}
