// Package engine is the MQTT broker: connections, sessions, routing, the
// QoS state machines, retained messages and wills, on top of the durable
// store.
//
// The durability contract (see DESIGN.md) is kept by one mechanism, the
// per-connection pipeline (pipeline.go): every packet that changes durable
// state becomes a step whose events are committed to the store; the step's
// acknowledgement and its deliveries to subscribers run only when the store
// reports the commit synced, and always in the order the packets arrived.
// Security has three files of its own: listener.go (listeners, TLS
// handshake, connection limits), authz.go (the Authorizer hook: CONNECT,
// PUBLISH, SUBSCRIBE, deliveries, wills; reload) and limits.go (every
// per-client limit and its answer, and the counters).
// Subpackages: topics (subscription trie, retained index), session
// (outbound window and packet identifiers), auth (password and ACL files,
// failed-login limiter, Policy) and listen (TLS configuration, connection
// limiter).
package engine
