package engine

import (
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cairn-mqtt/cairn/wire"
)

// What a connection negotiates in CONNECT / CONNACK beyond 3.1.1: the
// client's limits the broker must respect (Receive Maximum, Maximum Packet
// Size, Topic Alias Maximum, Request Problem / Response Information), the
// broker's answers (Server Keep Alive, capped Session Expiry Interval,
// Assigned Client Identifier, Response Information, enhanced
// authentication), and the capability checks that apply to the will.
//
// Invariants:
//   - negotiate runs on the reader goroutine before the session is touched:
//     a refused CONNECT changes nothing (no take-over, no store write).
//   - Every 5.0 CONNACK announces the broker's limits (Features.connackProps)
//     and the Maximum Packet Size; what the broker changed from the
//     client's request (keep alive, session expiry) is announced too, and the
//     broker holds the client to the announced values.

// v5state is the per-connection state of the 5.0 mechanisms. For a 3.x
// connection it stays at its zero value except problemInfo and username.
type v5state struct {
	username     string
	problemInfo  bool // false: no Reason String / User Property on acks (Request Problem Information 0)
	respInfo     bool // the client asked for Response Information
	keepAliveSet bool // the keep alive was capped: announce Server Keep Alive
	expiryCapped bool // the session expiry was capped: announce it

	// enhanced authentication (enhauth.go)
	authMethod  string
	authHandler EnhancedAuth
	authReply   []byte
	authEx      AuthExchange // re-authentication in progress
	rounds      int

	// inbound flow control (inbound5.go): QoS 1 PUBLISHes not yet answered
	// with PUBACK (decremented by the pipeline step that sends it) and QoS 2
	// packet ids received on this connection not yet released.
	inQoS1 atomic.Int32
	inMu   sync.Mutex // guards inQoS2: a refused PUBREC releases from the completion goroutine
	inQoS2 map[uint16]struct{}

	// topic aliases (alias.go)
	aliasIn     map[uint16]string // inbound alias → topic, reader only
	aliasOutMax uint16            // the client's Topic Alias Maximum (0: no outbound aliases)
	aliasOut    map[string]uint16 // writer only
	aliasSlots  []string          // alias-1 → topic, writer only
	aliasVals   []uint16          // alias-1 → alias, so Properties can point at it
	aliasNext   uint16            // next slot to (re)assign, round robin
}

// negotiate applies CONNECT's 5.0 properties and the broker's capability
// limits to the connection. It returns the outbound in-flight window, and
// false when the connection was refused (the CONNACK written). expiry is the
// requested session expiry interval, capped in place.
func (c *conn) negotiate(p *wire.Connect, expiry *uint32) (window int, ok bool) {
	b := c.b
	f := &b.opts.Features
	window = b.opts.MaxInflight
	c.v5.username = p.Username
	c.v5.problemInfo = true
	if w := p.Will; w != nil {
		switch {
		case w.QoS > f.maxQoS():
			return 0, c.refuse(wire.ConnRefusedNotAuthorized, wire.QoSNotSupported, "will QoS above the maximum QoS", "qos", w.QoS)
		case w.Retain && f.NoRetain:
			return 0, c.refuse(wire.ConnRefusedNotAuthorized, wire.RetainNotSupported, "retained will but retain is not available")
		case p.Version == wire.V5 && w.Props != nil && w.Props.PayloadFormat != nil && *w.Props.PayloadFormat == 1 && !utf8.Valid(w.Payload):
			return 0, c.refuse(wire.ConnRefusedNotAuthorized, wire.PayloadFormatInvalid, "will payload is not UTF-8 as its payload format says")
		}
	}
	if p.Version != wire.V5 {
		return window, true
	}
	if pp := p.Props; pp != nil {
		if pp.ReceiveMaximum != nil && int(*pp.ReceiveMaximum) < window {
			window = int(*pp.ReceiveMaximum)
		}
		if pp.MaximumPacketSize != nil {
			c.maxOut = *pp.MaximumPacketSize
		}
		if pp.TopicAliasMaximum != nil && f.OutboundTopicAliases {
			c.v5.aliasOutMax = *pp.TopicAliasMaximum
		}
		if pp.RequestProblemInfo != nil && *pp.RequestProblemInfo == 0 {
			c.v5.problemInfo = false
		}
		c.v5.respInfo = pp.RequestResponseInfo != nil && *pp.RequestResponseInfo == 1
	}
	if max := f.MaxKeepAlive; max > 0 && (p.KeepAlive == 0 || p.KeepAlive > max) && !c.internal() {
		c.keepAlive = time.Duration(max) * time.Second
		c.v5.keepAliveSet = true
	}
	if max := f.MaxSessionExpiry; max > 0 && *expiry > max && !c.internal() {
		*expiry = max
		c.v5.expiryCapped = true
	}
	if p.Props != nil && p.Props.AuthMethod != nil && !c.connectAuth(p) {
		return 0, false
	}
	return window, true
}

// connackProps are the properties of an accepting 5.0 CONNACK.
func (c *conn) connackProps(assigned bool, id string, expiry uint32) *wire.Properties {
	b := c.b
	f := &b.opts.Features
	p := &wire.Properties{MaximumPacketSize: &b.opts.MaxPacketSize}
	f.connackProps(p)
	if assigned {
		p.AssignedClientID = id
	}
	if c.v5.keepAliveSet {
		p.ServerKeepAlive = &f.MaxKeepAlive
	}
	if c.v5.expiryCapped {
		p.SessionExpiry = &expiry
	}
	if c.v5.respInfo && f.ResponseInfo != "" {
		p.ResponseInfo = f.ResponseInfo + id
	}
	if c.v5.authMethod != "" {
		p.AuthMethod, p.AuthData = &c.v5.authMethod, c.v5.authReply
		c.v5.authReply = nil
	}
	return p
}
