// Package engine is the MQTT broker: connections, sessions, routing, the
// QoS state machines, retained messages and wills, on top of the durable
// store.
//
// The durability contract (see DESIGN.md) is kept by one mechanism, the
// per-connection pipeline (pipeline.go): every packet that changes durable
// state becomes a step whose events are committed to the store; the step's
// acknowledgement and its deliveries to subscribers run only when the store
// reports the commit synced, and always in the order the packets arrived.
// Retained TTLs (retainttl.go), per-session queue limits (queuelimit.go)
// and the broker's side of the compaction task (compact.go) each live in
// their own file.
//
// Subpackages: topics (subscription trie, retained index) and session
// (outbound window and packet identifiers).
package engine
