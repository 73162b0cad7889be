package wire

import "fmt"

// Version is the protocol level byte of CONNECT.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1, protocol name "MQTT"
	V5   Version = 5 // MQTT 5.0, protocol name "MQTT"
)

func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return fmt.Sprintf("level(%d)", byte(v))
}

// PacketType is the control packet type in the high nibble of the first byte.
type PacketType byte

// Control packet types.
const (
	CONNECT     PacketType = 1
	CONNACK     PacketType = 2
	PUBLISH     PacketType = 3
	PUBACK      PacketType = 4
	PUBREC      PacketType = 5
	PUBREL      PacketType = 6
	PUBCOMP     PacketType = 7
	SUBSCRIBE   PacketType = 8
	SUBACK      PacketType = 9
	UNSUBSCRIBE PacketType = 10
	UNSUBACK    PacketType = 11
	PINGREQ     PacketType = 12
	PINGRESP    PacketType = 13
	DISCONNECT  PacketType = 14
	AUTH        PacketType = 15
)

var packetTypeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

func (t PacketType) String() string {
	if int(t) < len(packetTypeNames) {
		return packetTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// Packet is any MQTT control packet.
type Packet interface {
	Type() PacketType
}

// Connect is the CONNECT packet. ProtocolName and Version are as received;
// the encoder writes "MQIsdp" for V31 and "MQTT" otherwise when ProtocolName
// is empty.
type Connect struct {
	ProtocolName string
	Version      Version
	// Bridge is the high bit of a 3.1 / 3.1.1 protocol level (0x83, 0x84):
	// the client is another broker's bridge (mosquitto's convention, not
	// in the specification), which asks not to get its own publications
	// back and to see the retain flag as published. Never set for 5.0,
	// whose bridges use the No Local and Retain As Published options.
	Bridge     bool
	CleanStart bool // "clean session" in 3.x
	KeepAlive  uint16
	ClientID   string
	Props      *Properties // 5.0 only; nil when absent

	Will *Will // nil when the will flag is 0

	UsernameFlag bool
	Username     string
	PasswordFlag bool
	Password     []byte
}

// Will is the will message carried by CONNECT.
type Will struct {
	QoS     byte
	Retain  bool
	Topic   string
	Payload []byte
	Props   *Properties // 5.0 will properties; nil when absent
}

// Connack is the CONNACK packet. ReasonCode is the 3.x return code (0..5) or
// the 5.0 reason code.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Props          *Properties
}

// Publish is the PUBLISH packet. PacketID is 0 for QoS 0.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    string
	PacketID uint16
	Props    *Properties
	Payload  []byte
}

// Ack is PUBACK, PUBREC, PUBREL or PUBCOMP, told apart by Kind. ReasonCode
// and Props are 5.0 only (0 = success).
type Ack struct {
	Kind       PacketType
	PacketID   uint16
	ReasonCode ReasonCode
	Props      *Properties
}

// Subscription is one topic filter of a SUBSCRIBE with its options. In 3.x
// only Filter and QoS are carried.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte // 0 send retained, 1 only if new, 2 never
}

// Subscribe is the SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Props         *Properties
	Subscriptions []Subscription
}

// Suback is the SUBACK packet: one reason code (granted QoS or failure) per
// subscription, in order.
type Suback struct {
	PacketID    uint16
	Props       *Properties
	ReasonCodes []ReasonCode
}

// Unsubscribe is the UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Props    *Properties
	Filters  []string
}

// Unsuback is the UNSUBACK packet. ReasonCodes are 5.0 only (3.x carries none).
type Unsuback struct {
	PacketID    uint16
	Props       *Properties
	ReasonCodes []ReasonCode
}

// Pingreq is the PINGREQ packet.
type Pingreq struct{}

// Pingresp is the PINGRESP packet.
type Pingresp struct{}

// Disconnect is the DISCONNECT packet; ReasonCode and Props are 5.0 only.
type Disconnect struct {
	ReasonCode ReasonCode
	Props      *Properties
}

// Auth is the 5.0 AUTH packet.
type Auth struct {
	ReasonCode ReasonCode
	Props      *Properties
}

func (*Connect) Type() PacketType     { return CONNECT }
func (*Connack) Type() PacketType     { return CONNACK }
func (*Publish) Type() PacketType     { return PUBLISH }
func (a *Ack) Type() PacketType       { return a.Kind }
func (*Subscribe) Type() PacketType   { return SUBSCRIBE }
func (*Suback) Type() PacketType      { return SUBACK }
func (*Unsubscribe) Type() PacketType { return UNSUBSCRIBE }
func (*Unsuback) Type() PacketType    { return UNSUBACK }
func (*Pingreq) Type() PacketType     { return PINGREQ }
func (*Pingresp) Type() PacketType    { return PINGRESP }
func (*Disconnect) Type() PacketType  { return DISCONNECT }
func (*Auth) Type() PacketType        { return AUTH }
