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
