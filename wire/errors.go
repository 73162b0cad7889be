package wire

import (
	"errors"
	"fmt"
)

// Error is a protocol violation found while decoding or validating. Code is
// the MQTT 5.0 reason code that applies (MalformedPacket, ProtocolError,
// PacketTooLarge, UnsupportedProtocolVersion, TopicNameInvalid, ...). A 5.0
// connection answers it with CONNACK or DISCONNECT carrying Code; a 3.x
// connection is closed (with CONNACK 0x01 first when Code is
// UnsupportedProtocolVersion on a CONNECT).
type Error struct {
	Code   ReasonCode
	Packet PacketType // the packet being decoded, 0 if not yet known
	Msg    string
	// Version is, for an error in a CONNECT, the protocol version the
	// CONNECT announced, once the decoder got that far (0 before): the
	// version a refusing CONNACK is written in (MQTT 5.0 §4.13.1: the
	// server MAY send CONNACK with the reason code before it closes).
	Version Version
}

func (e *Error) Error() string {
	if e.Packet != 0 {
		return fmt.Sprintf("wire: %s: %s (reason 0x%02X)", e.Packet, e.Msg, byte(e.Code))
	}
	return fmt.Sprintf("wire: %s (reason 0x%02X)", e.Msg, byte(e.Code))
}

// AsError returns the *Error in err's chain, or nil.
func AsError(err error) *Error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	return nil
}

func malformed(t PacketType, format string, args ...any) *Error {
	return &Error{Code: MalformedPacket, Packet: t, Msg: fmt.Sprintf(format, args...)}
}

func protocolErr(t PacketType, format string, args ...any) *Error {
	return &Error{Code: ProtocolError, Packet: t, Msg: fmt.Sprintf(format, args...)}
}

// withConnectVersion stamps err, an error found in a CONNECT announcing version v,
// with that version (see Error.Version).
func withConnectVersion(err error, v Version) error {
	if e, ok := err.(*Error); ok && e.Version == 0 {
		e.Version = v
	}
	return err
}

// connectVersion reads the protocol version from the start of a CONNECT
// body (protocol name and level), 0 if b is too short or names no version
// this package speaks. For a CONNECT refused before its body is read (too
// large), from the bytes that arrived with its header.
func connectVersion(b []byte) Version {
	if len(b) < 2 {
		return 0
	}
	n := int(b[0])<<8 | int(b[1])
	if n > 6 || len(b) < 2+n+1 {
		return 0
	}
	if v, _, ok := protocolVersion(b[2:2+n], b[2+n]); ok {
		return v
	}
	return 0
}
