package engine

import (
	"strings"

	"github.com/cairn-mqtt/cairn/wire"
)

// Features are the protocol capabilities and limits the broker announces to
// MQTT 5.0 clients in CONNACK and enforces on every client. The zero value
// is the full protocol with the defaults below.
//
// A 5.0 client that breaks an announced limit gets the reason code the
// specification gives (DISCONNECT 0x93, 0x94, 0x9A, 0x9B, 0xA1; SUBACK 0x9E,
// 0xA2; CONNACK 0x9A, 0x9B); a 3.x client, which was told nothing, is
// refused the same way with the codes 3.x has (SUBACK 0x80, CONNACK 0x05, a
// closed connection).
type Features struct {
	// ReceiveMaximum is how many QoS 1/2 PUBLISHes a 5.0 client may have
	// unacknowledged toward the broker (CONNACK Receive Maximum). One more
	// is answered with DISCONNECT 0x93. 0 means 64.
	ReceiveMaximum uint16
	// TopicAliasMaximum is the highest topic alias a 5.0 client may use
	// toward the broker (CONNACK Topic Alias Maximum). 0 means 64; see
	// NoTopicAliases.
	TopicAliasMaximum uint16
	// NoTopicAliases announces Topic Alias Maximum 0: a client alias is
	// then answered with DISCONNECT 0x94.
	NoTopicAliases bool
	// OutboundTopicAliases makes the broker replace repeated topic names by
	// topic aliases toward 5.0 clients that accept them (their CONNECT
	// Topic Alias Maximum).
	OutboundTopicAliases bool
	// MaxKeepAlive caps the keep alive, in seconds: a 5.0 client asking for
	// more, or for none (0), is told Server Keep Alive = MaxKeepAlive and
	// held to it. 0 means no cap.
	MaxKeepAlive uint16
	// MaxSessionExpiry caps the session expiry interval of 5.0 clients, in
	// seconds (CONNACK Session Expiry Interval when it applies). 0 means
	// no cap.
	MaxSessionExpiry uint32
	// MaximumQoS is the highest QoS the broker accepts in PUBLISH and
	// grants in SUBACK (nil means 2).
	MaximumQoS *byte
	// NoRetain announces Retain Available 0 and refuses retained messages.
	NoRetain bool
	// NoWildcardSubs, NoSubscriptionIDs and NoSharedSubs announce the
	// corresponding "... Available" property as 0 and refuse the feature.
	NoWildcardSubs    bool
	NoSubscriptionIDs bool
	NoSharedSubs      bool
	// ResponseInfo, when set, is sent as Response Information (followed by
	// the client id) to a 5.0 client that asks for it: the topic prefix it
	// may use for the response topics of its requests.
	ResponseInfo string
}

const (
	defaultReceiveMaximum    = 64
	defaultTopicAliasMaximum = 64
)

func (f Features) withDefaults() Features {
	if f.ReceiveMaximum == 0 {
		f.ReceiveMaximum = defaultReceiveMaximum
	}
	if f.TopicAliasMaximum == 0 {
		f.TopicAliasMaximum = defaultTopicAliasMaximum
	}
	if f.NoTopicAliases {
		f.TopicAliasMaximum = 0
	}
	if f.MaximumQoS != nil && *f.MaximumQoS > 2 {
		q := byte(2)
		f.MaximumQoS = &q
	}
	return f
}

// maxQoS is the highest QoS the broker accepts.
func (f *Features) maxQoS() byte {
	if f.MaximumQoS == nil {
		return 2
	}
	return *f.MaximumQoS
}

// connackProps fills in what the broker supports, for every 5.0 CONNACK.
// Properties whose absence already means "supported" are sent anyway (with
// value 1) so that a client or an operator reading a capture need not know
// the defaults.
func (f *Features) connackProps(p *wire.Properties) {
	p.ReceiveMaximum = &f.ReceiveMaximum
	if f.TopicAliasMaximum > 0 {
		p.TopicAliasMaximum = &f.TopicAliasMaximum
	}
	if q := f.maxQoS(); q < 2 {
		p.MaximumQoS = &q // a value of 2 may not be sent (§3.2.2.3.4)
	}
	// The four capabilities are announced only when off: absent means
	// available (§3.2.2.3.5, .11, .12, .13), and eight bytes fewer keep the
	// CONNACK within a small client Maximum Packet Size.
	if f.NoRetain {
		p.RetainAvailable = flag(false)
	}
	if f.NoWildcardSubs {
		p.WildcardSubAvailable = flag(false)
	}
	if f.NoSubscriptionIDs {
		p.SubIDAvailable = flag(false)
	}
	if f.NoSharedSubs {
		p.SharedSubAvailable = flag(false)
	}
}

var flagValues = [2]byte{0, 1}

// flag returns a pointer to a shared 0 or 1 byte (no allocation).
func flag(b bool) *byte {
	if b {
		return &flagValues[1]
	}
	return &flagValues[0]
}

// subscriptionRefusal is the SUBACK failure code for a filter the broker's
// capabilities exclude (shared or wildcard subscriptions turned off), or 0.
func (f *Features) subscriptionRefusal(filter string) (wire.ReasonCode, string) {
	_, inner, shared, _ := wire.ParseSharedFilter(filter)
	if shared && f.NoSharedSubs {
		return wire.SharedSubNotSupported, "shared subscriptions are not available"
	}
	if f.NoWildcardSubs && strings.ContainsAny(inner, "+#") {
		return wire.WildcardSubsNotSupported, "wildcard subscriptions are not available"
	}
	return 0, ""
}
