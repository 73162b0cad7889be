package metrics

// Bridge families: one series per configured bridge (label bridge), read
// from bridge.Status at scrape time like every other family. They are the
// exception to "every family is always present": a broker without bridges
// has no series to show, so these families appear with the first bridge.

import "github.com/cairn-mqtt/cairn/engine/bridge"

var (
	fBridgeUp       = newFamily("cairn_bridge_up", "1 while the bridge is connected to its remote broker.", gauge, "bridge")
	fBridgeQueue    = newFamily("cairn_bridge_queue_messages", "Messages waiting to go to the remote (on disk, in flight included).", gauge, "bridge")
	fBridgeQBytes   = newFamily("cairn_bridge_queue_bytes", "Payload bytes waiting to go to the remote.", gauge, "bridge")
	fBridgeInflight = newFamily("cairn_bridge_inflight_messages", "Messages in flight, by direction (out: to the remote, in: from it).", gauge, "bridge", "direction")
	fBridgeFwd      = newFamily("cairn_bridge_forwarded_total", "Messages forwarded and acknowledged, by direction.", counter, "bridge", "direction")
	fBridgeBytes    = newFamily("cairn_bridge_forwarded_bytes_total", "Payload bytes forwarded, by direction.", counter, "bridge", "direction")
	fBridgeDropped  = newFamily("cairn_bridge_dropped_total", "Messages dropped (queue limits, unmappable topics, refusals), by direction.", counter, "bridge", "direction")
	fBridgeRejected = newFamily("cairn_bridge_queue_rejected_total", "Local publishes refused because the bridge's queue was full (reject policy).", counter, "bridge")
	fBridgeConnects = newFamily("cairn_bridge_connects_total", "Successful connections to the remote.", counter, "bridge")
	fBridgeFailures = newFamily("cairn_bridge_connect_failures_total", "Failed connection attempts and lost links.", counter, "bridge")
)

var bridgeFamilies = []family{
	fBridgeUp, fBridgeQueue, fBridgeQBytes, fBridgeInflight, fBridgeFwd, fBridgeBytes,
	fBridgeDropped, fBridgeRejected, fBridgeConnects, fBridgeFailures,
}

// SetBridges makes the scrapes read the bridges' status from status (nil:
// no bridges), e.g. (*bridge.Manager).Status.
func (m *Metrics) SetBridges(status func() []bridge.Status) {
	m.mu.Lock()
	m.bridges = status
	m.mu.Unlock()
}

// BridgeNames lists the bridge families (for the README and its test).
func BridgeNames() []string {
	out := make([]string, len(bridgeFamilies))
	for i, f := range bridgeFamilies {
		out[i] = f.name
	}
	return out
}

func collectBridges(status func() []bridge.Status, emit emitter) {
	for _, s := range status() {
		up := 0.0
		if s.State == bridge.StateConnected {
			up = 1
		}
		emit(fBridgeUp, up, s.Name)
		emit(fBridgeQueue, float64(s.QueueDepth), s.Name)
		emit(fBridgeQBytes, float64(s.QueueBytes), s.Name)
		emit(fBridgeInflight, float64(s.InflightOut), s.Name, "out")
		emit(fBridgeInflight, float64(s.InflightIn), s.Name, "in")
		emit(fBridgeFwd, float64(s.OutForwarded), s.Name, "out")
		emit(fBridgeFwd, float64(s.InForwarded), s.Name, "in")
		emit(fBridgeBytes, float64(s.OutBytes), s.Name, "out")
		emit(fBridgeBytes, float64(s.InBytes), s.Name, "in")
		emit(fBridgeDropped, float64(s.OutDropped), s.Name, "out")
		emit(fBridgeDropped, float64(s.InDropped), s.Name, "in")
		emit(fBridgeRejected, float64(s.QueueRejected), s.Name)
		emit(fBridgeConnects, float64(s.Connects), s.Name)
		emit(fBridgeFailures, float64(s.Failures), s.Name)
	}
}
