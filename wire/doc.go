// Package wire reads and writes MQTT control packets of protocol versions
// 3.1 (MQIsdp, level 3), 3.1.1 (level 4) and 5.0 (level 5).
//
// It knows nothing of sessions, stores or sockets: it turns bytes into the
// packet structs of packet.go and back, validates topic names and filters,
// and reports every malformed input as an *Error that tells the caller which
// MQTT 5.0 reason code applies (a 3.x connection is simply closed).
//
// Invariants:
//   - The decoder checks the remaining length against the caller's maximum
//     packet size from the fixed header, before any of the body is read or
//     allocated.
//   - The encoder never produces a packet the decoder rejects.
//   - Decoded packets never alias the reader's internal buffers: a caller may
//     keep a Publish (topic, payload, properties) after the next ReadPacket.
package wire
