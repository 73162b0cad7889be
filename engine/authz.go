package engine

import (
	"errors"
	"fmt"

	"github.com/cairn-mqtt/cairn/engine/auth"
	"github.com/cairn-mqtt/cairn/engine/listen"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// Authentication and authorization hooks: where the broker asks
// Options.Auth, and what it answers the client.
//
//	CONNECT    Authenticate: 3.x CONNACK 0x05; 5.0 0x86 (bad user name or
//	           password), 0x87 (not authorized), 0x9F (failed-login limit)
//	will       CanPublish on its topic at CONNECT (CONNACK 0x05 / 0x87) and
//	           again when it is due (dropped, counted)
//	SUBSCRIBE  CanSubscribe per filter: SUBACK 0x80 (3.x) / 0x87 (5.0)
//	PUBLISH    CanPublish: dropped; 3.x gets its PUBACK / PUBREC as usual,
//	           5.0 PUBACK / PUBREC 0x87; nothing is stored or retained
//	delivery   CanReceive when a message is routed to a session and when a
//	           retained message is sent to a new subscription: withheld
//
// Invariants:
//   - A session belongs to the user that created it. A client of another
//     user asking for its client id is refused (CONNACK 0x05 / 0x87), so it
//     can neither take over the connection nor read the queue; a session
//     made by an anonymous client is replaced (clean start) when an
//     authenticated user takes its id.
//   - Every decision is made with the identity fixed at CONNECT: the
//     verified certificate identity or the checked user name, never a user
//     name the client merely claimed.
//   - ACL changes (Reload) apply to every decision made afterwards,
//     including deliveries on subscriptions made before; messages already
//     queued for a session when the rules changed are still delivered.

// Authorizer decides who may connect and what they may do. auth.Policy
// implements it over a password file and an ACL file. Its methods are called
// concurrently, from the connections' goroutines.
type Authorizer interface {
	// Authenticate decides on a CONNECT. It may block (a password hash).
	Authenticate(l *auth.Login) auth.Verdict
	// CanPublish reports whether the client may publish to topic (also
	// asked for will messages).
	CanPublish(user, clientID, topic string) bool
	// CanSubscribe reports whether the client may subscribe to filter.
	CanSubscribe(user, clientID, filter string) bool
	// CanReceive reports whether a message on topic may be delivered to
	// the client.
	CanReceive(user, clientID, topic string) bool
}

// Reloader is an Authorizer whose rules can be reloaded (auth.Policy).
type Reloader interface {
	Reload() error
}

// admitConnect runs after the CONNECT's client id is settled: the topic
// limits on the will, authentication, and the ACL on the will. It returns
// false if the connection was refused (CONNACK written).
func (c *conn) admitConnect(p *wire.Connect, id string) bool {
	b := c.b
	if p.Will != nil && !b.topicOK(p.Will.Topic) {
		b.stats.Security.TopicRejected.Add(1)
		return c.refuse(wire.ConnRefusedServerUnavailable, wire.TopicNameInvalid, "will topic over the length or level limit", "len", len(p.Will.Topic))
	}
	a := b.opts.Auth
	if a == nil || c.internal() { // internal.go: configured by the operator
		c.sec.user = p.Username
		return true
	}
	v := a.Authenticate(&auth.Login{
		ClientID:     id,
		Username:     p.Username,
		HasUsername:  p.UsernameFlag,
		Password:     p.Password,
		Remote:       listen.RemoteIP(c.nc.RemoteAddr()),
		CertIdentity: c.sec.certID,
		Anonymous:    c.sec.lis.AllowAnonymous,
		EnhancedAuth: c.v5.authMethod, // set when the AUTH exchange succeeded (enhauth.go)
	})
	switch v.Outcome {
	case auth.Accepted:
	case auth.BadCredentials:
		b.stats.Security.AuthBadCredentials.Add(1)
		return c.refuseAuth(wire.BadUsernameOrPassword, v.Why, p.Username)
	case auth.RateLimited:
		b.stats.Security.AuthRateLimited.Add(1)
		return c.refuseAuth(wire.ConnectionRateExceeded, v.Why, p.Username)
	default:
		b.stats.Security.AuthNotAuthorized.Add(1)
		return c.refuseAuth(wire.NotAuthorized, v.Why, p.Username)
	}
	c.sec.user = v.User
	if p.Will != nil && !a.CanPublish(v.User, id, p.Will.Topic) {
		b.stats.Security.WillDenied.Add(1)
		return c.refuseAuth(wire.NotAuthorized, "will topic "+p.Will.Topic+" not authorized", v.User)
	}
	c.log.Debug("client authenticated", "user", v.User, "how", v.Why)
	return true
}

// refuseAuth answers CONNACK "not authorized" (3.x 0x05) or code5 (5.0)
// and logs why; the connection then ends.
func (c *conn) refuseAuth(code5 wire.ReasonCode, why, user string) bool {
	c.log.Warn("refusing connection: not authenticated or not authorized", "why", why, "user", user,
		"certificate", c.sec.certID, "listener", c.sec.lis.Name)
	code := wire.ConnRefusedNotAuthorized
	if c.version == wire.V5 {
		code = code5
	}
	c.writeNow(&wire.Connack{ReasonCode: code}, c.version)
	return false
}

// mayTake reports whether the connection's user may have old, the existing
// session of its client id (see the ownership invariant above); it refuses
// (CONNACK written) when not.
func (c *conn) mayTake(old *Session) bool {
	if c.b.opts.Auth == nil || old.user == "" || old.user == c.sec.user {
		return true
	}
	c.b.stats.Security.AuthNotAuthorized.Add(1)
	return c.refuseAuth(wire.NotAuthorized, "the client id's session belongs to another user", c.sec.user)
}

// replaces reports whether the connection must start old afresh because
// old was made by another (anonymous) user.
func (c *conn) replaces(old *Session) bool {
	return c.b.opts.Auth != nil && old.user != c.sec.user
}

func (c *conn) mayPublish(topic string) bool {
	a := c.b.opts.Auth
	return a == nil || c.internal() || a.CanPublish(c.sec.user, c.clientID, topic)
}

func (c *conn) maySubscribe(filter string) bool {
	a := c.b.opts.Auth
	return a == nil || c.internal() || a.CanSubscribe(c.sec.user, c.clientID, filter)
}

// mayReceive reports whether a message on topic may be delivered to s.
func (b *Broker) mayReceive(s *Session, topic string) bool {
	a := b.opts.Auth
	if a == nil || IsInternalClientID(s.id) || a.CanReceive(s.user, s.id, topic) {
		return true
	}
	b.stats.Security.ReceiveDenied.Add(1)
	b.log.Debug("delivery withheld: not authorized", "client", s.id, "user", s.user, "topic", topic)
	return false
}

// willAllowed checks a will that is due against the rules in force now.
func (b *Broker) willAllowed(s *Session, w *store.Will) bool {
	a := b.opts.Auth
	if a == nil || a.CanPublish(s.user, s.id, w.Topic) {
		return true
	}
	b.stats.Security.WillDenied.Add(1)
	b.log.Warn("will not published: not authorized", "client", s.id, "user", s.user, "topic", w.Topic)
	return false
}

// OnReload registers f to be run by Reload (TLS certificates, say).
func (b *Broker) OnReload(name string, f func() error) {
	b.mu.Lock()
	b.sec.reloaders = append(b.sec.reloaders, reloader{name: name, f: f})
	b.mu.Unlock()
}

// Reload rereads the password and ACL files (when Options.Auth is a
// Reloader) and runs the functions registered with OnReload, without
// touching connections. What fails to load keeps its previous contents; the
// error says what and why. It is what SIGHUP does, and what an admin
// endpoint calls.
func (b *Broker) Reload() error {
	var errs []error
	if r, ok := b.opts.Auth.(Reloader); ok {
		if err := r.Reload(); err != nil {
			errs = append(errs, err)
		} else {
			b.log.Info("authentication and ACL files reloaded")
		}
	}
	b.mu.RLock()
	rs := append([]reloader(nil), b.sec.reloaders...)
	b.mu.RUnlock()
	for _, r := range rs {
		if err := r.f(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
		} else {
			b.log.Info("reloaded", "what", r.name)
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		b.log.Error("reload failed; the previous configuration stays in force where it failed", "err", err)
	}
	return err
}
