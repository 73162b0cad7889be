// Package session holds the per-client outbound delivery state of an MQTT
// session: the in-flight window, packet identifiers, and the messages waiting
// to be sent. It is a pure state machine: it does no I/O and takes no locks;
// the engine owns the lock, the socket and the store.
//
// Every QoS 1/2 delivery has a queue sequence number: the store's per-client
// queue sequence for persistent sessions, an in-memory counter for clean ones.
// The packet identifier is derived from it (pidFor), so a message redelivered
// after a reconnect or a broker restart carries the same packet identifier
// without that choice ever having been written down. That is what keeps QoS 2
// exactly-once across a crash: a receiver that already holds the packet id
// acknowledges the redelivery instead of delivering it again.
package session
