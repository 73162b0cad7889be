package engine

import (
	"errors"
	"net"

	"github.com/cairn-mqtt/cairn/wire"
)

// Enhanced authentication (MQTT 5.0 §4.12): a client names an
// authentication method in CONNECT; the broker and the client then exchange
// AUTH packets (reason 0x18 Continue authentication) until the method's
// handler accepts — CONNACK 0x00 carrying the method and the last server
// data — or refuses — CONNACK with the handler's reason code. Later the
// client may re-authenticate on the open connection with AUTH 0x19; success
// is AUTH 0x00, failure a DISCONNECT.
//
// Invariants:
//   - A method with no handler in Options.EnhancedAuth is answered with
//     CONNACK 0x8C Bad authentication method and the connection closed.
//   - Before CONNACK nothing but AUTH 0x18 (same method) or DISCONNECT is
//     accepted from the client (§4.12: anything else is a Protocol Error,
//     CONNACK 0x82); the whole exchange is bounded by the connect timeout
//     and by maxAuthRounds.
//   - The handler runs on the connection's reader goroutine: a handler that
//     blocks holds up only its own connection.
//   - Re-authentication must use the method of the CONNECT; a different one,
//     AUTH on a connection that did not use enhanced authentication, or AUTH
//     0x18 with no exchange in progress is a Protocol Error (DISCONNECT 0x82).

// EnhancedAuth is one enhanced authentication method.
type EnhancedAuth interface {
	// Start begins an exchange with one client (at CONNECT, or for a
	// re-authentication when c.Reauth is set).
	Start(c AuthClient) AuthExchange
}

// AuthClient describes the client being authenticated.
type AuthClient struct {
	ClientID string
	Username string
	Password []byte
	Remote   net.Addr
	Reauth   bool
}

// AuthExchange is one exchange in progress.
type AuthExchange interface {
	// Step takes the client's Authentication Data (from CONNECT or AUTH) and
	// returns the server's. done reports that the client is authenticated
	// (the reply goes in CONNACK or AUTH 0x00); otherwise the reply goes in
	// AUTH 0x18 and Step is called again with the client's answer. An error
	// refuses the client: an *AuthError says with which reason code, any
	// other error means 0x87 Not authorized.
	Step(data []byte) (reply []byte, done bool, err error)
}

// AuthError refuses a client with a specific reason code (0x86 Bad user
// name or password, 0x87 Not authorized, 0x8A Banned, ...).
type AuthError struct {
	Code   wire.ReasonCode
	Reason string // sent as the Reason String
}

func (e *AuthError) Error() string { return "authentication refused: " + e.Reason }

// maxAuthRounds bounds the AUTH round trips of one exchange.
const maxAuthRounds = 16

// authRefusal is the reason code and reason string for a handler's error,
// in a packet of type t (CONNACK or DISCONNECT): a code that packet cannot
// carry (0x86 in DISCONNECT, say) becomes 0x87 Not authorized.
func authRefusal(err error, t wire.PacketType) (wire.ReasonCode, string) {
	var ae *AuthError
	if errors.As(err, &ae) {
		code := ae.Code
		if !code.IsError() || !wire.ValidReasonCode(t, code, wire.V5) {
			code = wire.NotAuthorized
		}
		return code, ae.Reason
	}
	return wire.NotAuthorized, "authentication failed"
}

// connectAuth runs the exchange of a CONNECT that names a method. It
// returns false when the connection was refused (CONNACK written).
func (c *conn) connectAuth(p *wire.Connect) bool {
	method := *p.Props.AuthMethod
	h := c.b.opts.EnhancedAuth[method]
	if h == nil || method == "" { // an empty method is present, and no method we know
		return c.refuse(wire.ConnRefusedNotAuthorized, wire.BadAuthenticationMethod,
			"unsupported authentication method", "method", method)
	}
	ex := h.Start(AuthClient{ClientID: p.ClientID, Username: p.Username, Password: p.Password, Remote: c.nc.RemoteAddr()})
	data := p.Props.AuthData
	for round := 0; ; round++ {
		reply, done, err := ex.Step(data)
		if err != nil {
			code, reason := authRefusal(err, wire.CONNACK)
			return c.refuse(wire.ConnRefusedNotAuthorized, code, reason, "method", method, "err", err)
		}
		if done {
			c.v5.authMethod, c.v5.authHandler, c.v5.authReply = method, h, reply
			return true
		}
		if round >= maxAuthRounds {
			return c.refuse(wire.ConnRefusedNotAuthorized, wire.NotAuthorized, "too many authentication rounds", "method", method)
		}
		c.writeNow(&wire.Auth{ReasonCode: wire.ContinueAuthentication,
			Props: &wire.Properties{AuthMethod: &method, AuthData: reply}}, wire.V5)
		pkt, err := c.r.ReadPacket(wire.V5)
		if err != nil {
			if we := wire.AsError(err); we != nil {
				return c.refuse(wire.ConnRefusedNotAuthorized, we.Code, "bad packet during authentication", "err", err)
			}
			c.b.stats.ProtocolErrors.Add(1)
			c.log.Info("closing connection during authentication", "method", method, "err", err)
			return false
		}
		switch a := pkt.(type) {
		case *wire.Auth:
			if a.ReasonCode != wire.ContinueAuthentication || a.Props == nil || a.Props.AuthMethod == nil || *a.Props.AuthMethod != method {
				return c.refuse(wire.ConnRefusedNotAuthorized, wire.ProtocolError,
					"AUTH with another reason code or method during authentication", "reason", a.ReasonCode)
			}
			data = a.Props.AuthData
		case *wire.Disconnect:
			c.log.Info("client gave up authentication", "method", method)
			return false
		default:
			return c.refuse(wire.ConnRefusedNotAuthorized, wire.ProtocolError,
				"packet other than AUTH before CONNACK", "packet", pkt.Type())
		}
	}
}

// onAuth handles AUTH after CONNACK: re-authentication.
func (c *conn) onAuth(a *wire.Auth) bool {
	st := &c.v5
	if st.authMethod == "" {
		return c.protocolError(wire.ProtocolError, "AUTH on a connection without enhanced authentication")
	}
	if a.Props == nil || a.Props.AuthMethod == nil || *a.Props.AuthMethod != st.authMethod {
		return c.protocolError(wire.ProtocolError, "AUTH with a method other than the CONNECT's")
	}
	switch {
	case a.ReasonCode == wire.ReAuthenticate && st.authEx == nil:
		st.authEx = st.authHandler.Start(AuthClient{ClientID: c.clientID, Username: c.v5.username, Remote: c.nc.RemoteAddr(), Reauth: true})
	case a.ReasonCode == wire.ContinueAuthentication && st.authEx != nil:
	default:
		return c.protocolError(wire.ProtocolError, "unexpected AUTH", "reason", a.ReasonCode)
	}
	reply, done, err := st.authEx.Step(a.Props.AuthData)
	if err != nil {
		code, reason := authRefusal(err, wire.DISCONNECT)
		c.b.stats.ProtocolErrors.Add(1)
		c.log.Warn("closing connection: re-authentication failed", "method", st.authMethod, "err", err)
		c.disconnectWith(code, reason)
		c.closeWith(endProtocol)
		return false
	}
	st.rounds++
	if !done && st.rounds > maxAuthRounds {
		return c.protocolError(wire.NotAuthorized, "too many re-authentication rounds")
	}
	code := wire.ContinueAuthentication
	if done {
		code, st.authEx, st.rounds = wire.Success, nil, 0
		c.log.Debug("client re-authenticated", "method", st.authMethod)
	}
	c.send(&wire.Auth{ReasonCode: code, Props: &wire.Properties{AuthMethod: &st.authMethod, AuthData: reply}})
	return true
}
