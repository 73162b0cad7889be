// Package store is Cairn's durable state: a Pebble LSM holding an event log
// and the projections derived from it (sessions, subscriptions, queues,
// message bodies, inbound QoS 2 packet ids, retained messages).
//
// The engine hands the store events; Commit appends them to the event log and
// applies them to the projections in one Pebble batch, so the two can never
// disagree. A durable commit's completion callback runs only after the WAL has
// been fsynced through that batch; completions run in commit order. See
// commit.go for the pipeline and README.md for the key schema.
//
// Nothing expires by itself (Pebble has no TTL): retained and queued
// messages are indexed by deadline (x/, y/) and removed by the compaction
// task (compact.go), which also truncates the log; queue limits are held in
// the commit (limit.go).
//
// The store knows nothing of sockets or MQTT sessions beyond these records.
package store
