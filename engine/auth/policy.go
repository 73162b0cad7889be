package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// Policy puts a password file, an ACL file and a failed-login limiter
// together into the decisions the broker asks for: may this client connect,
// and as whom; may it publish here, subscribe there, receive that.
//
// Invariants:
//   - A client is authenticated by a verified client certificate (when the
//     listener maps certificates to user names), by a completed MQTT 5.0
//     enhanced authentication (its user name is the CONNECT's), or by a
//     user name and password found in the password file. Nothing else makes a user: a user
//     name sent without a password file to check it against is ignored, and
//     the client is anonymous (user ""), so that an ACL's per-user rules
//     cannot be had by claiming a name.
//   - An anonymous client connects only where the listener admits anonymous
//     clients (Login.Anonymous).
//   - A source address whose failed logins used up its bucket is refused
//     before any password is checked (no hash work for a guesser).
//   - Without an ACL file everything is allowed; with one, everything it
//     does not grant is denied.
//   - Reload keeps the rules of a file that fails to load; the other file is
//     still reloaded.
type Policy struct {
	pw      *Passwords // nil: no password file
	acl     *ACL       // nil: no ACL file
	limiter *FailedLoginLimiter
	mu      sync.Mutex // serialises Reload
}

// PolicyConfig configures a Policy.
type PolicyConfig struct {
	PasswordFile string // "" for none
	ACLFile      string // "" for none
	// FailedLoginsPerMinute bounds failed logins per source address (<= 0:
	// no bound).
	FailedLoginsPerMinute int
	// LimiterEntries bounds the addresses the limiter tracks (<= 0:
	// DefaultLimiterEntries).
	LimiterEntries int
}

// NewPolicy loads the files of cfg. Errors name the file (and line).
func NewPolicy(cfg PolicyConfig) (*Policy, error) {
	p := &Policy{limiter: NewFailedLoginLimiter(cfg.FailedLoginsPerMinute, cfg.LimiterEntries)}
	if cfg.PasswordFile != "" {
		pw, err := LoadPasswords(cfg.PasswordFile)
		if err != nil {
			return nil, err
		}
		p.pw = pw
	}
	if cfg.ACLFile != "" {
		acl, err := LoadACL(cfg.ACLFile)
		if err != nil {
			return nil, err
		}
		p.acl = acl
	}
	return p, nil
}

// Passwords returns the password file, or nil.
func (p *Policy) Passwords() *Passwords { return p.pw }

// ACL returns the ACL file, or nil.
func (p *Policy) ACL() *ACL { return p.acl }

// Login is what a client presents when it connects.
type Login struct {
	ClientID    string
	Username    string
	HasUsername bool
	Password    []byte
	Remote      netip.Addr // source address (zero for none)
	// CertIdentity is the identity of the client's verified certificate
	// when the listener maps certificates to user names, else "".
	CertIdentity string
	// Anonymous says whether the listener admits anonymous clients.
	Anonymous bool
	// EnhancedAuth names the MQTT 5.0 enhanced authentication method the
	// client completed before (the engine's EnhancedAuth handler vouched
	// for its user name), or "".
	EnhancedAuth string
}

// Outcome is the result of an authentication.
type Outcome uint8

// Outcomes.
const (
	Accepted       Outcome = iota
	BadCredentials         // unknown user or wrong password
	NotAuthorized          // anonymous where anonymous clients are refused
	RateLimited            // too many failed logins from the source address
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case BadCredentials:
		return "bad user name or password"
	case NotAuthorized:
		return "not authorized"
	case RateLimited:
		return "too many failed logins"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Verdict is an authentication decision.
type Verdict struct {
	Outcome Outcome
	// User is the identity authorization uses ("" for anonymous).
	User string
	// Why says, for the log, how the decision was reached.
	Why string
}

// Authenticate decides on a login. It may take the time of one password
// hash (and wait for a free hashing slot); call it off any shared lock.
func (p *Policy) Authenticate(l *Login) Verdict {
	if l.CertIdentity != "" {
		return Verdict{Outcome: Accepted, User: l.CertIdentity, Why: "client certificate"}
	}
	if l.EnhancedAuth != "" {
		return Verdict{Outcome: Accepted, User: l.Username, Why: "enhanced authentication " + l.EnhancedAuth}
	}
	if l.HasUsername && p.pw != nil {
		if !p.limiter.Allow(l.Remote) {
			return Verdict{Outcome: RateLimited, Why: "failed-login limit of the source address reached; password not checked"}
		}
		if !p.pw.Check(l.Username, l.Password) {
			p.limiter.Failed(l.Remote)
			return Verdict{Outcome: BadCredentials, Why: "unknown user or wrong password"}
		}
		return Verdict{Outcome: Accepted, User: l.Username, Why: "password"}
	}
	why := "no credentials"
	if l.HasUsername {
		why = "user name ignored: no password file to check it against"
	}
	if !l.Anonymous {
		return Verdict{Outcome: NotAuthorized, Why: why + "; anonymous clients are refused on this listener"}
	}
	return Verdict{Outcome: Accepted, Why: "anonymous: " + why}
}

// CanPublish reports whether the client may publish to topic.
func (p *Policy) CanPublish(user, clientID, topic string) bool {
	return p.acl == nil || p.acl.CanPublish(user, clientID, topic)
}

// CanSubscribe reports whether the client may subscribe to filter.
func (p *Policy) CanSubscribe(user, clientID, filter string) bool {
	return p.acl == nil || p.acl.CanSubscribe(user, clientID, filter)
}

// CanReceive reports whether a message on topic may be delivered to the
// client.
func (p *Policy) CanReceive(user, clientID, topic string) bool {
	return p.acl == nil || p.acl.CanReceive(user, clientID, topic)
}

// Reload rereads the password and ACL files. A file that fails to load keeps
// its previous contents in force; the error names it. Connections are not
// touched: the new rules apply to what they do next.
func (p *Policy) Reload() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if p.pw != nil {
		if err := p.pw.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("password file %s not reloaded, previous users kept: %w", p.pw.Path(), err))
		}
	}
	if p.acl != nil {
		if err := p.acl.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("ACL file %s not reloaded, previous rules kept: %w", p.acl.Path(), err))
		}
	}
	return errors.Join(errs...)
}
