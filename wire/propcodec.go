package wire

// MQTT 5.0 property block codec (section 2.2.2): which property may appear
// in which packet, how each is encoded, and the value rules.
//
// Invariants:
//   - Properties are written in identifier order; User properties and
//     Subscription Identifiers keep their order and repetitions.
//   - An identifier not allowed in the packet (or unknown) is a Malformed
//     Packet; a repeated identifier that may appear once is a Protocol Error;
//     a forbidden value (Topic Alias 0, Receive Maximum 0, a boolean other
//     than 0/1, ...) is a Protocol Error. The decoder and the encoder apply
//     the same value rules (checkPropValues), so an encoded block always
//     decodes.
//   - An empty block, or one holding only empty strings, decodes to nil
//     Properties. A present but empty binary
//     property decodes to a non-nil empty slice; a present but empty string
//     property decodes to "" (absent), except Response Topic, which must be a
//     valid topic name.
//   - A decoded Properties and all its scalar values are one allocation
//     (propBlock); strings and slices are separate.

import "fmt"

// Property contexts: a packet type (1..15), will properties, or a stored
// record (any property, no value rules).
const (
	ctxWill   uint8 = 16
	ctxStored uint8 = 17
)

type propKind uint8

const (
	kByte propKind = iota + 1
	kU16
	kU32
	kVarint
	kStr
	kBin
	kPair
)

// Bit masks of the contexts a property may appear in.
const (
	inConnect     = 1 << CONNECT
	inConnack     = 1 << CONNACK
	inPublish     = 1 << PUBLISH
	inAcks        = 1<<PUBACK | 1<<PUBREC | 1<<PUBREL | 1<<PUBCOMP
	inSubscribe   = 1 << SUBSCRIBE
	inSuback      = 1 << SUBACK
	inUnsubscribe = 1 << UNSUBSCRIBE
	inUnsuback    = 1 << UNSUBACK
	inDisconnect  = 1 << DISCONNECT
	inAuth        = 1 << AUTH
	inWill        = 1 << ctxWill
	inStored      = 1 << ctxStored
	inAll         = inConnect | inConnack | inPublish | inAcks | inSubscribe | inSuback | inUnsubscribe |
		inUnsuback | inDisconnect | inAuth | inWill | inStored
)

type propDesc struct {
	name string
	kind propKind
	mask uint32
}

// propTable is indexed by property identifier (table 2-4 of the 5.0 spec).
var propTable = [...]propDesc{
	PropPayloadFormat:        {"Payload Format Indicator", kByte, inPublish | inWill | inStored},
	PropMessageExpiry:        {"Message Expiry Interval", kU32, inPublish | inWill | inStored},
	PropContentType:          {"Content Type", kStr, inPublish | inWill | inStored},
	PropResponseTopic:        {"Response Topic", kStr, inPublish | inWill | inStored},
	PropCorrelationData:      {"Correlation Data", kBin, inPublish | inWill | inStored},
	PropSubscriptionID:       {"Subscription Identifier", kVarint, inPublish | inSubscribe | inStored},
	PropSessionExpiry:        {"Session Expiry Interval", kU32, inConnect | inConnack | inDisconnect | inStored},
	PropAssignedClientID:     {"Assigned Client Identifier", kStr, inConnack | inStored},
	PropServerKeepAlive:      {"Server Keep Alive", kU16, inConnack | inStored},
	PropAuthMethod:           {"Authentication Method", kStr, inConnect | inConnack | inAuth | inStored},
	PropAuthData:             {"Authentication Data", kBin, inConnect | inConnack | inAuth | inStored},
	PropRequestProblemInfo:   {"Request Problem Information", kByte, inConnect | inStored},
	PropWillDelay:            {"Will Delay Interval", kU32, inWill | inStored},
	PropRequestResponseInfo:  {"Request Response Information", kByte, inConnect | inStored},
	PropResponseInfo:         {"Response Information", kStr, inConnack | inStored},
	PropServerReference:      {"Server Reference", kStr, inConnack | inDisconnect | inStored},
	PropReasonString:         {"Reason String", kStr, inConnack | inAcks | inSuback | inUnsuback | inDisconnect | inAuth | inStored},
	PropReceiveMaximum:       {"Receive Maximum", kU16, inConnect | inConnack | inStored},
	PropTopicAliasMaximum:    {"Topic Alias Maximum", kU16, inConnect | inConnack | inStored},
	PropTopicAlias:           {"Topic Alias", kU16, inPublish | inStored},
	PropMaximumQoS:           {"Maximum QoS", kByte, inConnack | inStored},
	PropRetainAvailable:      {"Retain Available", kByte, inConnack | inStored},
	PropUserProperty:         {"User Property", kPair, inAll},
	PropMaximumPacketSize:    {"Maximum Packet Size", kU32, inConnect | inConnack | inStored},
	PropWildcardSubAvailable: {"Wildcard Subscription Available", kByte, inConnack | inStored},
	PropSubIDAvailable:       {"Subscription Identifier Available", kByte, inConnack | inStored},
	PropSharedSubAvailable:   {"Shared Subscription Available", kByte, inConnack | inStored},
}

func ctxName(ctx uint8) string {
	switch ctx {
	case ctxWill:
		return "will properties"
	case ctxStored:
		return "stored properties"
	}
	return PacketType(ctx).String()
}

// propBlock is a Properties together with the storage its scalar pointers
// point into, so that decoding a block allocates once for all scalars.
type propBlock struct {
	Properties
	b [8]byte
	h [4]uint16
	w [4]uint32
	s [2]string
}

func (d *dec) pbyte(slot *byte, what string) (*byte, error) {
	v, err := d.u8(what)
	*slot = v
	return slot, err
}

func (d *dec) pstr(slot *string, what string) (*string, error) {
	v, err := d.str(what)
	*slot = v
	return slot, err
}

func (d *dec) pu16(slot *uint16, what string) (*uint16, error) {
	v, err := d.u16(what)
	*slot = v
	return slot, err
}

func (d *dec) pu32(slot *uint32, what string) (*uint32, error) {
	v, err := d.u32(what)
	*slot = v
	return slot, err
}

// props reads a property block (length + properties) for context ctx.
func (d *dec) props(ctx uint8) (*Properties, error) {
	n, err := d.varint("property length")
	if err != nil {
		return nil, err
	}
	if int(n) > d.left() {
		return nil, malformed(d.t, "property length %d exceeds the %d bytes left", n, d.left())
	}
	if n == 0 {
		return nil, nil
	}
	end := d.off + int(n)
	s := dec{b: d.b[d.off:end:end], t: d.t, own: d.own}
	d.off = end
	return s.propList(ctx)
}

// propList decodes every property in d.b.
func (d *dec) propList(ctx uint8) (*Properties, error) {
	blk := new(propBlock)
	p := &blk.Properties
	var seen uint64
	for d.off < len(d.b) {
		id := d.b[d.off]
		d.off++
		var desc propDesc
		if int(id) < len(propTable) {
			desc = propTable[id]
		}
		if desc.mask&(1<<ctx) == 0 {
			if desc.name == "" {
				return nil, malformed(d.t, "unknown property identifier 0x%02X", id)
			}
			return nil, malformed(d.t, "property %s not allowed in %s", desc.name, ctxName(ctx))
		}
		repeatable := id == PropUserProperty ||
			id == PropSubscriptionID && (ctx == uint8(PUBLISH) || ctx == ctxStored)
		if seen&(1<<id) != 0 && !repeatable {
			return nil, protocolErr(d.t, "property %s included more than once", desc.name)
		}
		seen |= 1 << id
		var err error
		what := desc.name
		switch id {
		case PropPayloadFormat:
			p.PayloadFormat, err = d.pbyte(&blk.b[0], what)
		case PropMessageExpiry:
			p.MessageExpiry, err = d.pu32(&blk.w[0], what)
		case PropContentType:
			p.ContentType, err = d.pstr(&blk.s[0], what)
		case PropResponseTopic:
			p.ResponseTopic, err = d.str(what)
			if err == nil && p.ResponseTopic == "" && ctx != ctxStored {
				err = protocolErr(d.t, "empty Response Topic")
			}
		case PropCorrelationData:
			p.CorrelationData, err = d.bin(what, true)
		case PropSubscriptionID:
			var v uint32
			v, err = d.varint(what)
			p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		case PropSessionExpiry:
			p.SessionExpiry, err = d.pu32(&blk.w[1], what)
		case PropAssignedClientID:
			p.AssignedClientID, err = d.str(what)
		case PropServerKeepAlive:
			p.ServerKeepAlive, err = d.pu16(&blk.h[0], what)
		case PropAuthMethod:
			p.AuthMethod, err = d.pstr(&blk.s[1], what)
		case PropAuthData:
			p.AuthData, err = d.bin(what, true)
		case PropRequestProblemInfo:
			p.RequestProblemInfo, err = d.pbyte(&blk.b[1], what)
		case PropWillDelay:
			p.WillDelay, err = d.pu32(&blk.w[2], what)
		case PropRequestResponseInfo:
			p.RequestResponseInfo, err = d.pbyte(&blk.b[2], what)
		case PropResponseInfo:
			p.ResponseInfo, err = d.str(what)
		case PropServerReference:
			p.ServerReference, err = d.str(what)
		case PropReasonString:
			p.ReasonString, err = d.str(what)
		case PropReceiveMaximum:
			p.ReceiveMaximum, err = d.pu16(&blk.h[1], what)
		case PropTopicAliasMaximum:
			p.TopicAliasMaximum, err = d.pu16(&blk.h[2], what)
		case PropTopicAlias:
			p.TopicAlias, err = d.pu16(&blk.h[3], what)
		case PropMaximumQoS:
			p.MaximumQoS, err = d.pbyte(&blk.b[3], what)
		case PropRetainAvailable:
			p.RetainAvailable, err = d.pbyte(&blk.b[4], what)
		case PropUserProperty:
			var u UserProperty
			if u.Key, err = d.str("User Property name"); err == nil {
				u.Value, err = d.str("User Property value")
			}
			p.User = append(p.User, u)
		case PropMaximumPacketSize:
			p.MaximumPacketSize, err = d.pu32(&blk.w[3], what)
		case PropWildcardSubAvailable:
			p.WildcardSubAvailable, err = d.pbyte(&blk.b[5], what)
		case PropSubIDAvailable:
			p.SubIDAvailable, err = d.pbyte(&blk.b[6], what)
		case PropSharedSubAvailable:
			p.SharedSubAvailable, err = d.pbyte(&blk.b[7], what)
		}
		if err != nil {
			return nil, err
		}
	}
	if ctx != ctxStored {
		if err := checkPropValues(p, ctx, d.t); err != nil {
			return nil, err
		}
	}
	if propsLen(p) == 0 {
		return nil, nil // only empty strings: the same as no properties
	}
	return p, nil
}

// checkPropValues applies the 5.0 value rules to p in context ctx. Both the
// decoder and the encoder call it.
func checkPropValues(p *Properties, ctx uint8, t PacketType) error {
	flags := [...]struct {
		v    *byte
		name string
	}{
		{p.PayloadFormat, "Payload Format Indicator"},
		{p.RequestProblemInfo, "Request Problem Information"},
		{p.RequestResponseInfo, "Request Response Information"},
		{p.MaximumQoS, "Maximum QoS"},
		{p.RetainAvailable, "Retain Available"},
		{p.WildcardSubAvailable, "Wildcard Subscription Available"},
		{p.SubIDAvailable, "Subscription Identifier Available"},
		{p.SharedSubAvailable, "Shared Subscription Available"},
	}
	for _, f := range flags {
		if f.v != nil && *f.v > 1 {
			return protocolErr(t, "%s must be 0 or 1, not %d", f.name, *f.v)
		}
	}
	switch {
	case p.ReceiveMaximum != nil && *p.ReceiveMaximum == 0:
		return protocolErr(t, "Receive Maximum of 0")
	case p.MaximumPacketSize != nil && *p.MaximumPacketSize == 0:
		return protocolErr(t, "Maximum Packet Size of 0")
	case p.TopicAlias != nil && *p.TopicAlias == 0:
		// 0x94 rather than a bare Protocol Error: the value is outside the
		// 1..Topic Alias Maximum range the receiver announced (MQTT-3.3.2-8).
		e := protocolErr(t, "Topic Alias of 0")
		e.Code = TopicAliasInvalid
		return e
	case ctx == uint8(SUBSCRIBE) && len(p.SubscriptionIDs) > 1:
		return protocolErr(t, "more than one Subscription Identifier")
	case p.AuthData != nil && p.AuthMethod == nil:
		return protocolErr(t, "Authentication Data without Authentication Method")
	}
	for _, id := range p.SubscriptionIDs {
		if id == 0 {
			return protocolErr(t, "Subscription Identifier of 0")
		}
	}
	if p.ResponseTopic != "" {
		if err := checkTopicName(p.ResponseTopic, t); err != nil {
			return protocolErr(t, "Response Topic: %s", AsError(err).Msg)
		}
	}
	return nil
}

// present returns the bit set (by identifier) of the properties p carries.
func (p *Properties) present() uint64 {
	var m uint64
	set := func(ok bool, id byte) {
		if ok {
			m |= 1 << id
		}
	}
	set(p.PayloadFormat != nil, PropPayloadFormat)
	set(p.MessageExpiry != nil, PropMessageExpiry)
	set(p.ContentType != nil, PropContentType)
	set(p.ResponseTopic != "", PropResponseTopic)
	set(p.CorrelationData != nil, PropCorrelationData)
	set(len(p.SubscriptionIDs) > 0, PropSubscriptionID)
	set(p.SessionExpiry != nil, PropSessionExpiry)
	set(p.AssignedClientID != "", PropAssignedClientID)
	set(p.ServerKeepAlive != nil, PropServerKeepAlive)
	set(p.AuthMethod != nil, PropAuthMethod)
	set(p.AuthData != nil, PropAuthData)
	set(p.RequestProblemInfo != nil, PropRequestProblemInfo)
	set(p.WillDelay != nil, PropWillDelay)
	set(p.RequestResponseInfo != nil, PropRequestResponseInfo)
	set(p.ResponseInfo != "", PropResponseInfo)
	set(p.ServerReference != "", PropServerReference)
	set(p.ReasonString != "", PropReasonString)
	set(p.ReceiveMaximum != nil, PropReceiveMaximum)
	set(p.TopicAliasMaximum != nil, PropTopicAliasMaximum)
	set(p.TopicAlias != nil, PropTopicAlias)
	set(p.MaximumQoS != nil, PropMaximumQoS)
	set(p.RetainAvailable != nil, PropRetainAvailable)
	set(len(p.User) > 0, PropUserProperty)
	set(p.MaximumPacketSize != nil, PropMaximumPacketSize)
	set(p.WildcardSubAvailable != nil, PropWildcardSubAvailable)
	set(p.SubIDAvailable != nil, PropSubIDAvailable)
	set(p.SharedSubAvailable != nil, PropSharedSubAvailable)
	return m
}

// checkProps validates p for encoding in context ctx: allowed identifiers,
// field limits, and the value rules.
func checkProps(p *Properties, ctx uint8, t PacketType) error {
	if p == nil {
		return nil
	}
	m := p.present()
	for id := range propTable {
		if m&(1<<id) != 0 && propTable[id].mask&(1<<ctx) == 0 {
			return malformed(t, "property %s not allowed in %s", propTable[id].name, ctxName(ctx))
		}
	}
	if err := checkLimits(p, t); err != nil {
		return err
	}
	return checkPropValues(p, ctx, t)
}

// checkLimits checks what any encodable block needs: strings of at most
// 65,535 bytes of valid UTF-8, binary data of at most 65,535 bytes, and
// Subscription Identifiers that fit a Variable Byte Integer.
func checkLimits(p *Properties, t PacketType) error {
	strs := [...]struct{ s, name string }{
		{deref(p.ContentType), "Content Type"},
		{p.ResponseTopic, "Response Topic"},
		{p.AssignedClientID, "Assigned Client Identifier"},
		{deref(p.AuthMethod), "Authentication Method"},
		{p.ResponseInfo, "Response Information"},
		{p.ServerReference, "Server Reference"},
		{p.ReasonString, "Reason String"},
	}
	for _, s := range strs {
		if err := checkStr(t, s.name, s.s); err != nil {
			return err
		}
	}
	for _, u := range p.User {
		if err := checkStr(t, "User Property name", u.Key); err != nil {
			return err
		}
		if err := checkStr(t, "User Property value", u.Value); err != nil {
			return err
		}
	}
	if err := checkBin(t, "Correlation Data", p.CorrelationData); err != nil {
		return err
	}
	if err := checkBin(t, "Authentication Data", p.AuthData); err != nil {
		return err
	}
	for _, id := range p.SubscriptionIDs {
		if id > MaxRemainingLength {
			return malformed(t, "Subscription Identifier %d exceeds 268435455", id)
		}
	}
	return nil
}

// propsLen returns the encoded length of p's properties, excluding the
// property length prefix.
func propsLen(p *Properties) int {
	if p == nil {
		return 0
	}
	n := 0
	if p.PayloadFormat != nil {
		n += 2
	}
	if p.MessageExpiry != nil {
		n += 5
	}
	if p.ContentType != nil {
		n += 3 + len(*p.ContentType)
	}
	if p.ResponseTopic != "" {
		n += 3 + len(p.ResponseTopic)
	}
	if p.CorrelationData != nil {
		n += 3 + len(p.CorrelationData)
	}
	for _, id := range p.SubscriptionIDs {
		n += 1 + varintLen(id)
	}
	if p.SessionExpiry != nil {
		n += 5
	}
	if p.AssignedClientID != "" {
		n += 3 + len(p.AssignedClientID)
	}
	if p.ServerKeepAlive != nil {
		n += 3
	}
	if p.AuthMethod != nil {
		n += 3 + len(*p.AuthMethod)
	}
	if p.AuthData != nil {
		n += 3 + len(p.AuthData)
	}
	if p.RequestProblemInfo != nil {
		n += 2
	}
	if p.WillDelay != nil {
		n += 5
	}
	if p.RequestResponseInfo != nil {
		n += 2
	}
	if p.ResponseInfo != "" {
		n += 3 + len(p.ResponseInfo)
	}
	if p.ServerReference != "" {
		n += 3 + len(p.ServerReference)
	}
	if p.ReasonString != "" {
		n += 3 + len(p.ReasonString)
	}
	if p.ReceiveMaximum != nil {
		n += 3
	}
	if p.TopicAliasMaximum != nil {
		n += 3
	}
	if p.TopicAlias != nil {
		n += 3
	}
	if p.MaximumQoS != nil {
		n += 2
	}
	if p.RetainAvailable != nil {
		n += 2
	}
	for _, u := range p.User {
		n += 5 + len(u.Key) + len(u.Value)
	}
	if p.MaximumPacketSize != nil {
		n += 5
	}
	if p.WildcardSubAvailable != nil {
		n += 2
	}
	if p.SubIDAvailable != nil {
		n += 2
	}
	if p.SharedSubAvailable != nil {
		n += 2
	}
	return n
}

// blockLen returns the encoded length of p's block including its prefix.
func blockLen(p *Properties) int {
	n := propsLen(p)
	return varintLen(uint32(n)) + n
}

// appendProps appends p's block (length prefix, then properties in
// identifier order). p must have passed checkProps.
func appendProps(dst []byte, p *Properties) []byte {
	dst = appendVarint(dst, uint32(propsLen(p)))
	if p == nil {
		return dst
	}
	pb := func(id byte, v *byte) {
		if v != nil {
			dst = append(dst, id, *v)
		}
	}
	ph := func(id byte, v *uint16) {
		if v != nil {
			dst = appendU16(append(dst, id), *v)
		}
	}
	pw := func(id byte, v *uint32) {
		if v != nil {
			dst = appendU32(append(dst, id), *v)
		}
	}
	ps := func(id byte, s string) {
		if s != "" {
			dst = appendStr(append(dst, id), s)
		}
	}
	pps := func(id byte, s *string) { // present even when empty
		if s != nil {
			dst = appendStr(append(dst, id), *s)
		}
	}
	pd := func(id byte, b []byte) {
		if b != nil {
			dst = appendBin(append(dst, id), b)
		}
	}
	pb(PropPayloadFormat, p.PayloadFormat)
	pw(PropMessageExpiry, p.MessageExpiry)
	pps(PropContentType, p.ContentType)
	ps(PropResponseTopic, p.ResponseTopic)
	pd(PropCorrelationData, p.CorrelationData)
	for _, id := range p.SubscriptionIDs {
		dst = appendVarint(append(dst, PropSubscriptionID), id)
	}
	pw(PropSessionExpiry, p.SessionExpiry)
	ps(PropAssignedClientID, p.AssignedClientID)
	ph(PropServerKeepAlive, p.ServerKeepAlive)
	pps(PropAuthMethod, p.AuthMethod)
	pd(PropAuthData, p.AuthData)
	pb(PropRequestProblemInfo, p.RequestProblemInfo)
	pw(PropWillDelay, p.WillDelay)
	pb(PropRequestResponseInfo, p.RequestResponseInfo)
	ps(PropResponseInfo, p.ResponseInfo)
	ps(PropServerReference, p.ServerReference)
	ps(PropReasonString, p.ReasonString)
	ph(PropReceiveMaximum, p.ReceiveMaximum)
	ph(PropTopicAliasMaximum, p.TopicAliasMaximum)
	ph(PropTopicAlias, p.TopicAlias)
	pb(PropMaximumQoS, p.MaximumQoS)
	pb(PropRetainAvailable, p.RetainAvailable)
	for _, u := range p.User {
		dst = appendStr(appendStr(append(dst, PropUserProperty), u.Key), u.Value)
	}
	pw(PropMaximumPacketSize, p.MaximumPacketSize)
	pb(PropWildcardSubAvailable, p.WildcardSubAvailable)
	pb(PropSubIDAvailable, p.SubIDAvailable)
	pb(PropSharedSubAvailable, p.SharedSubAvailable)
	return dst
}

// AppendProperties appends the 5.0 property block of p (the Variable Byte
// Integer length, then the properties) with no packet-type check, for stored
// records. A nil p appends a zero-length block. p must respect the field
// limits that every decoded Properties respects (strings and binary data at
// most 65,535 bytes of valid UTF-8 / data, Subscription Identifiers at most
// 268,435,455, block at most 268,435,455 bytes); AppendProperties panics
// otherwise rather than write a block DecodeProperties cannot read.
func AppendProperties(dst []byte, p *Properties) []byte {
	if p != nil {
		if err := checkLimits(p, 0); err != nil {
			panic(fmt.Sprintf("wire.AppendProperties: %v", err))
		}
		if propsLen(p) > MaxRemainingLength {
			panic("wire.AppendProperties: property block exceeds 268435455 bytes")
		}
	}
	return appendProps(dst, p)
}

// DecodeProperties decodes a block written by AppendProperties: b must hold
// exactly one block. Any property may appear (Subscription Identifier may
// repeat) and no value rule is applied. An empty block gives nil.
func DecodeProperties(b []byte) (*Properties, error) {
	d := dec{b: b}
	p, err := d.props(ctxStored)
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return p, nil
}

// deref is *s, or "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
