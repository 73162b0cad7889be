// Package engine is the MQTT broker: connections, sessions, routing, the
// QoS state machines, retained messages and wills, on top of the durable
// store.
//
// The durability contract (see DESIGN.md) is kept by one mechanism, the
// per-connection pipeline (pipeline.go): every packet that changes durable
// state becomes a step whose events are committed to the store; the step's
// acknowledgement and its deliveries to subscribers run only when the store
// reports the commit synced, and always in the order the packets arrived.
//
// MQTT 5.0 beyond the 3.1.1 core lives in files of its own: features.go (the
// capabilities announced in CONNACK and enforced), connect5.go (what CONNECT
// negotiates), inbound5.go (topic aliases, receive-maximum quota and checks
// of a client's PUBLISH), outbound5.go (the client's limits on what the
// writer sends, outbound topic aliases), enhauth.go (the AUTH exchange),
// expiry.go and deadlines.go (session expiry and delayed wills, as absolute
// times in the store, with one timer).
// Per-read commit batching (batch.go) and back-pressure from subscribers
// that fall behind on deliveries held in memory (backpressure.go) are the
// throughput mechanisms next to the pipeline.
// Retained TTLs (retainttl.go), per-session queue limits (queuelimit.go)
// and the broker's side of the compaction task (compact.go) each live in
// their own file, and so do the answers to storage faults: storefull.go
// (the store is low on free space: new durable work is refused with the
// protocol's "not now") and storefail.go (the store failed: the broker
// acknowledges nothing more and stops).
//
// Security has files of its own too: listener.go (listeners, TLS handshake,
// connection limits), authz.go (the Authorizer hook: CONNECT, PUBLISH,
// SUBSCRIBE, deliveries, wills; reload) and limits.go (every per-client
// limit and its answer, and the counters).
//
// What operators watch: $SYS topics (sys.go: in-memory retained values,
// never stored), the traffic counters and latency observer (counters.go)
// and the broker's sizes (gauges.go).
//
// Subpackages: topics (subscription trie, retained index), session
// (outbound window and packet identifiers), auth (password and ACL files,
// failed-login limiter, Policy), listen (TLS configuration, connection
// limiter, WebSocket transport), metrics (the Prometheus registry) and
// admin (the admin HTTP endpoint).
package engine
