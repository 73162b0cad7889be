package wire

// Property identifiers of MQTT 5.0 (section 2.2.2.2).
const (
	PropPayloadFormat        byte = 0x01
	PropMessageExpiry        byte = 0x02
	PropContentType          byte = 0x03
	PropResponseTopic        byte = 0x08
	PropCorrelationData      byte = 0x09
	PropSubscriptionID       byte = 0x0B
	PropSessionExpiry        byte = 0x11
	PropAssignedClientID     byte = 0x12
	PropServerKeepAlive      byte = 0x13
	PropAuthMethod           byte = 0x15
	PropAuthData             byte = 0x16
	PropRequestProblemInfo   byte = 0x17
	PropWillDelay            byte = 0x18
	PropRequestResponseInfo  byte = 0x19
	PropResponseInfo         byte = 0x1A
	PropServerReference      byte = 0x1C
	PropReasonString         byte = 0x1F
	PropReceiveMaximum       byte = 0x21
	PropTopicAliasMaximum    byte = 0x22
	PropTopicAlias           byte = 0x23
	PropMaximumQoS           byte = 0x24
	PropRetainAvailable      byte = 0x25
	PropUserProperty         byte = 0x26
	PropMaximumPacketSize    byte = 0x27
	PropWildcardSubAvailable byte = 0x28
	PropSubIDAvailable       byte = 0x29
	PropSharedSubAvailable   byte = 0x2A
)

// UserProperty is one name/value pair; order and repetition are preserved.
type UserProperty struct {
	Key, Value string
}

// Properties holds the MQTT 5.0 properties of a packet. A nil pointer, nil
// slice or empty string means "absent" (Content Type and Authentication
// Method are pointers, as an empty value of theirs means something). Which properties a packet type may
// carry is checked by the decoder (and by Validate before encoding).
type Properties struct {
	PayloadFormat        *byte
	MessageExpiry        *uint32
	ContentType          *string // a pointer: an empty Content Type is a value to forward (MQTT-3.3.2-20)
	ResponseTopic        string
	CorrelationData      []byte
	SubscriptionIDs      []uint32 // repeatable in PUBLISH; at most one in SUBSCRIBE
	SessionExpiry        *uint32
	AssignedClientID     string
	ServerKeepAlive      *uint16
	AuthMethod           *string // a pointer: an empty method is a method (one the server does not support)
	AuthData             []byte
	RequestProblemInfo   *byte
	WillDelay            *uint32
	RequestResponseInfo  *byte
	ResponseInfo         string
	ServerReference      string
	ReasonString         string
	ReceiveMaximum       *uint16
	TopicAliasMaximum    *uint16
	TopicAlias           *uint16
	MaximumQoS           *byte
	RetainAvailable      *byte
	User                 []UserProperty
	MaximumPacketSize    *uint32
	WildcardSubAvailable *byte
	SubIDAvailable       *byte
	SharedSubAvailable   *byte
}
