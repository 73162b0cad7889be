package wire

// Semantic rules of each packet struct: the checks that do not depend on the
// byte layout (packet identifiers, QoS values, reason codes, topic rules,
// which properties may appear).
//
// Invariants:
//   - validate is the single definition of "encodable": AppendPacket refuses
//     exactly what validate refuses, and the decoder runs validate on every
//     packet it builds, so whatever decodes also encodes (and, because the
//     encoder writes only what the decoder's byte-level checks accept,
//     whatever encodes also decodes).
//   - Fields that a version cannot carry (properties, 5.0 reason codes and
//     subscription options in 3.x) are not checked for that version; the
//     encoder ignores them.
//   - The Code of each error is the one a 5.0 receiver answers with:
//     ProtocolError for packet identifier 0, a reason code not allowed for the
//     packet, or a missing topic or subscription; TopicNameInvalid and
//     TopicFilterInvalid for bad topics; MalformedPacket otherwise.

import "strings"

// Packet-type masks of the 5.0 reason code table (section 2.4).
const (
	rcConnack    = 1 << CONNACK
	rcPuback     = 1 << PUBACK
	rcPubrec     = 1 << PUBREC
	rcPubrel     = 1 << PUBREL
	rcPubcomp    = 1 << PUBCOMP
	rcSuback     = 1 << SUBACK
	rcUnsuback   = 1 << UNSUBACK
	rcDisconnect = 1 << DISCONNECT
	rcAuth       = 1 << AUTH

	rcPubErr = rcPuback | rcPubrec // PUBACK and PUBREC share their failure codes
	rcCommon = rcConnack | rcPubErr | rcSuback | rcUnsuback | rcDisconnect
)

var reasonTypes5 = [256]uint16{
	Success:                     rcConnack | rcPubErr | rcPubrel | rcPubcomp | rcSuback | rcUnsuback | rcDisconnect | rcAuth,
	GrantedQoS1:                 rcSuback,
	GrantedQoS2:                 rcSuback,
	DisconnectWithWill:          rcDisconnect,
	NoMatchingSubscribers:       rcPubErr,
	NoSubscriptionExisted:       rcUnsuback,
	ContinueAuthentication:      rcAuth,
	ReAuthenticate:              rcAuth,
	UnspecifiedError:            rcCommon,
	MalformedPacket:             rcConnack | rcDisconnect,
	ProtocolError:               rcConnack | rcDisconnect,
	ImplementationSpecificError: rcCommon,
	UnsupportedProtocolVersion:  rcConnack,
	ClientIDNotValid:            rcConnack,
	BadUsernameOrPassword:       rcConnack,
	NotAuthorized:               rcCommon,
	ServerUnavailable:           rcConnack,
	ServerBusy:                  rcConnack | rcDisconnect,
	Banned:                      rcConnack,
	ServerShuttingDown:          rcDisconnect,
	BadAuthenticationMethod:     rcConnack | rcDisconnect,
	KeepAliveTimeout:            rcDisconnect,
	SessionTakenOver:            rcDisconnect,
	TopicFilterInvalid:          rcSuback | rcUnsuback | rcDisconnect,
	TopicNameInvalid:            rcConnack | rcPubErr | rcDisconnect,
	PacketIDInUse:               rcPubErr | rcSuback | rcUnsuback,
	PacketIDNotFound:            rcPubrel | rcPubcomp,
	ReceiveMaximumExceeded:      rcDisconnect,
	TopicAliasInvalid:           rcDisconnect,
	PacketTooLarge:              rcConnack | rcDisconnect,
	MessageRateTooHigh:          rcDisconnect,
	QuotaExceeded:               rcConnack | rcPubErr | rcSuback | rcDisconnect,
	AdministrativeAction:        rcDisconnect,
	PayloadFormatInvalid:        rcConnack | rcPubErr | rcDisconnect,
	RetainNotSupported:          rcConnack | rcDisconnect,
	QoSNotSupported:             rcConnack | rcDisconnect,
	UseAnotherServer:            rcConnack | rcDisconnect,
	ServerMoved:                 rcConnack | rcDisconnect,
	SharedSubNotSupported:       rcSuback | rcDisconnect,
	ConnectionRateExceeded:      rcConnack | rcDisconnect,
	MaximumConnectTime:          rcDisconnect,
	SubIDsNotSupported:          rcSuback | rcDisconnect,
	WildcardSubsNotSupported:    rcSuback | rcDisconnect,
}

// ValidReasonCode reports whether c may be carried by a packet of type t in
// version v: for 5.0 the reason code table of section 2.4; for 3.x the
// CONNACK return codes 0..5 and the SUBACK codes 0, 1, 2 and 0x80 (other
// 3.x packets carry no code, so only 0 is valid).
func ValidReasonCode(t PacketType, c ReasonCode, v Version) bool {
	if v == V5 {
		return t < 16 && reasonTypes5[c]&(1<<t) != 0
	}
	switch t {
	case CONNACK:
		return c <= ConnRefusedNotAuthorized
	case SUBACK:
		return c <= GrantedQoS2 || c == SubackFailure3
	}
	return c == Success
}

func checkReason(t PacketType, c ReasonCode, v Version) error {
	if !ValidReasonCode(t, c, v) {
		return protocolErr(t, "reason code 0x%02X not allowed in %s %s", byte(c), v, t)
	}
	return nil
}

func checkPacketID(t PacketType, id uint16) error {
	if id == 0 {
		return protocolErr(t, "packet identifier 0")
	}
	return nil
}

// noProps reports whether p encodes to an empty property block.
func noProps(p *Properties) bool { return p == nil || propsLen(p) == 0 }

// connectVersion returns the protocol level c is encoded and checked with.
func (c *Connect) connectVersion(v Version) Version {
	if c.Version != 0 {
		return c.Version
	}
	return v
}

func (c *Connect) validate(v Version) error {
	v = c.connectVersion(v)
	var name string
	switch v {
	case V31:
		name = "MQIsdp"
	case V311, V5:
		name = "MQTT"
	default:
		return &Error{Code: UnsupportedProtocolVersion, Packet: CONNECT, Msg: "unsupported protocol level " + v.String()}
	}
	if c.Bridge && v == V5 {
		return &Error{Code: UnsupportedProtocolVersion, Packet: CONNECT, Msg: "the bridge flag of the protocol level is not defined for 5.0"}
	}
	if c.ProtocolName != "" && c.ProtocolName != name {
		return &Error{Code: UnsupportedProtocolVersion, Packet: CONNECT,
			Msg: "protocol name " + c.ProtocolName + " with level " + v.String()}
	}
	if err := checkStr(CONNECT, "client identifier", c.ClientID); err != nil {
		return err
	}
	if w := c.Will; w != nil {
		if w.QoS > 2 {
			return malformed(CONNECT, "will QoS %d", w.QoS)
		}
		if err := checkTopicName(w.Topic, CONNECT); err != nil {
			return err
		}
		if err := checkBin(CONNECT, "will payload", w.Payload); err != nil {
			return err
		}
		if v == V5 {
			if err := checkProps(w.Props, ctxWill, CONNECT); err != nil {
				return err
			}
		}
	}
	if !c.UsernameFlag && c.Username != "" {
		return malformed(CONNECT, "username set without the username flag")
	}
	if !c.PasswordFlag && len(c.Password) > 0 {
		return malformed(CONNECT, "password set without the password flag")
	}
	if err := checkStr(CONNECT, "username", c.Username); err != nil {
		return err
	}
	if err := checkBin(CONNECT, "password", c.Password); err != nil {
		return err
	}
	if c.PasswordFlag && !c.UsernameFlag && v != V5 {
		return malformed(CONNECT, "password flag without username flag")
	}
	if v == V5 {
		return checkProps(c.Props, uint8(CONNECT), CONNECT)
	}
	return nil
}

func (c *Connack) validate(v Version) error {
	if err := checkReason(CONNACK, c.ReasonCode, v); err != nil {
		return err
	}
	if c.SessionPresent && c.ReasonCode != Success {
		return protocolErr(CONNACK, "session present with reason code 0x%02X", byte(c.ReasonCode))
	}
	if v == V5 {
		return checkProps(c.Props, uint8(CONNACK), CONNACK)
	}
	return nil
}

func (p *Publish) validate(v Version) error {
	switch {
	case p.QoS > 2:
		return malformed(PUBLISH, "QoS %d", p.QoS)
	case p.Dup && p.QoS == 0:
		return malformed(PUBLISH, "DUP set on a QoS 0 message")
	case p.QoS > 0 && p.PacketID == 0:
		return checkPacketID(PUBLISH, 0)
	}
	if v != V5 {
		return checkTopicName(p.Topic, PUBLISH)
	}
	if p.Topic != "" {
		if err := checkTopicName(p.Topic, PUBLISH); err != nil {
			return err
		}
	} else if p.Props == nil || p.Props.TopicAlias == nil {
		return protocolErr(PUBLISH, "empty topic name without a Topic Alias")
	}
	return checkProps(p.Props, uint8(PUBLISH), PUBLISH)
}

func (a *Ack) validate(v Version) error {
	switch a.Kind {
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
	default:
		return malformed(a.Kind, "Ack of kind %s", a.Kind)
	}
	if err := checkPacketID(a.Kind, a.PacketID); err != nil {
		return err
	}
	if v != V5 {
		return nil
	}
	if err := checkReason(a.Kind, a.ReasonCode, v); err != nil {
		return err
	}
	return checkProps(a.Props, uint8(a.Kind), a.Kind)
}

func (s *Subscribe) validate(v Version) error {
	if err := checkPacketID(SUBSCRIBE, s.PacketID); err != nil {
		return err
	}
	if len(s.Subscriptions) == 0 {
		return protocolErr(SUBSCRIBE, "no topic filter")
	}
	for i := range s.Subscriptions {
		if err := s.Subscriptions[i].validate(v); err != nil {
			return err
		}
	}
	if v == V5 {
		return checkProps(s.Props, uint8(SUBSCRIBE), SUBSCRIBE)
	}
	return nil
}

// checkFilterFor checks a SUBSCRIBE or UNSUBSCRIBE topic filter by the
// rules of version v. Shared subscriptions are a 5.0 feature: in 3.x
// "$share//a" is an ordinary, well-formed filter, so a 3.x packet carrying
// it is not malformed (a broker that gives 3.x clients shared subscriptions
// refuses a bad one with SUBACK 0x80 instead of closing the connection).
func checkFilterFor(v Version, s string, t PacketType) error {
	return checkFilter(s, t, v == V5)
}

func (s *Subscription) validate(v Version) error {
	if err := checkFilterFor(v, s.Filter, SUBSCRIBE); err != nil {
		return err
	}
	if v != V5 {
		if s.QoS > 2 {
			return malformed(SUBSCRIBE, "requested QoS %d", s.QoS)
		}
		return nil
	}
	switch {
	case s.QoS > 2:
		return protocolErr(SUBSCRIBE, "maximum QoS %d", s.QoS)
	case s.RetainHandling > 2:
		return protocolErr(SUBSCRIBE, "retain handling %d", s.RetainHandling)
	case s.NoLocal && strings.HasPrefix(s.Filter, sharePrefix):
		return protocolErr(SUBSCRIBE, "no local on shared subscription %q", s.Filter)
	}
	return nil
}

func (s *Suback) validate(v Version) error {
	if err := checkPacketID(SUBACK, s.PacketID); err != nil {
		return err
	}
	if len(s.ReasonCodes) == 0 {
		return protocolErr(SUBACK, "no reason code")
	}
	for _, c := range s.ReasonCodes {
		if err := checkReason(SUBACK, c, v); err != nil {
			return err
		}
	}
	if v == V5 {
		return checkProps(s.Props, uint8(SUBACK), SUBACK)
	}
	return nil
}

func (u *Unsubscribe) validate(v Version) error {
	if err := checkPacketID(UNSUBSCRIBE, u.PacketID); err != nil {
		return err
	}
	if len(u.Filters) == 0 {
		return protocolErr(UNSUBSCRIBE, "no topic filter")
	}
	for _, f := range u.Filters {
		if err := checkFilterFor(v, f, UNSUBSCRIBE); err != nil {
			return err
		}
	}
	if v == V5 {
		return checkProps(u.Props, uint8(UNSUBSCRIBE), UNSUBSCRIBE)
	}
	return nil
}

func (u *Unsuback) validate(v Version) error {
	if err := checkPacketID(UNSUBACK, u.PacketID); err != nil {
		return err
	}
	if v != V5 {
		return nil
	}
	if len(u.ReasonCodes) == 0 {
		return protocolErr(UNSUBACK, "no reason code")
	}
	for _, c := range u.ReasonCodes {
		if err := checkReason(UNSUBACK, c, v); err != nil {
			return err
		}
	}
	return checkProps(u.Props, uint8(UNSUBACK), UNSUBACK)
}

func (*Pingreq) validate(Version) error  { return nil }
func (*Pingresp) validate(Version) error { return nil }

func (d *Disconnect) validate(v Version) error {
	if v != V5 {
		return nil
	}
	if err := checkReason(DISCONNECT, d.ReasonCode, v); err != nil {
		return err
	}
	return checkProps(d.Props, uint8(DISCONNECT), DISCONNECT)
}

func (a *Auth) validate(v Version) error {
	if v != V5 {
		return malformed(AUTH, "AUTH in MQTT %s", v)
	}
	if err := checkReason(AUTH, a.ReasonCode, v); err != nil {
		return err
	}
	if err := checkProps(a.Props, uint8(AUTH), AUTH); err != nil {
		return err
	}
	// Only the short form (Success, no properties) may omit the method.
	if !(a.ReasonCode == Success && noProps(a.Props)) && (a.Props == nil || a.Props.AuthMethod == nil) {
		return protocolErr(AUTH, "no Authentication Method")
	}
	return nil
}
