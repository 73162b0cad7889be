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
//
// Decoding: Reader.ReadPacket reads packets from a stream (a CONNECT by its
// own protocol level, everything else as the version the caller passes);
// Decode decodes one packet from a byte slice. Every decoded packet has
// passed the same checks AppendPacket applies, so it can be re-encoded.
//
// Encoding: AppendPacket appends a packet's canonical encoding to a buffer
// (no allocation when the buffer has room) and Size predicts its length.
// Fields a version cannot carry (properties and 5.0 reason codes in 3.x) are
// ignored rather than refused, so a 5.0 message can be forwarded to a 3.x
// subscriber as is.
//
// Errors: every protocol violation is an *Error whose Code is the 5.0 reason
// code a receiver answers with: MalformedPacket (bad flags, truncation,
// trailing bytes, invalid UTF-8, a property not allowed on the packet, ...),
// ProtocolError (packet identifier 0, a repeated property, a forbidden
// property value or reason code, no topic in SUBSCRIBE, ...),
// TopicNameInvalid, TopicFilterInvalid, PacketTooLarge, and
// UnsupportedProtocolVersion for a CONNECT with an unknown protocol name or
// level. A 3.x connection has no way to report these and is closed (after a
// CONNACK 0x01 for UnsupportedProtocolVersion).
//
// Canonical forms: absent and empty are the same for Properties (nil), for
// optional strings (""), and for payloads and passwords (nil). A present but
// empty binary property (Correlation Data, Authentication Data) is a non-nil
// empty slice.
package wire
