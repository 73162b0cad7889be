// Package bridge forwards messages between the local broker and other MQTT
// brokers (mosquitto's "bridge"), durably.
//
// Each configured bridge is an internal persistent MQTT 5.0 session of the
// local broker (client id "$bridge/NAME", engine.DialInternal), subscribed
// with No Local to the local filters of its `out` rules. Its outbound queue
// is therefore the ordinary session queue: on disk, under the broker's
// durability contract (a local publisher's PUBACK means the message is in
// the bridge's queue, fsynced), bounded by the queue limits (drops
// counted). The bridge connects to the remote broker as a client (TCP or
// TLS, 3.1.1 or 5.0, clean session 0) and passes every QoS exchange through
// with the same packet identifier on both sides (route.go), acknowledging a
// local delivery only after the remote acknowledged it: a crash anywhere
// redelivers, nothing is lost, and QoS 2 stays exactly once as long as both
// sessions survive. `in` rules subscribe on the remote and republish
// through the same internal session, acknowledged to the remote only after
// the local broker's acknowledgement (after its fsync).
//
// Files: config.go (the config and its checks), rules.go (topic renaming),
// mconn.go (one client connection over the wire codec), dial.go (connecting
// both sides), route.go (the packet router), bridge.go (one bridge: setup,
// reconnection with back-off), status.go (live state and rates),
// manager.go (all bridges of a broker).
package bridge
