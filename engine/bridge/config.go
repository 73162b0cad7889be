package bridge

// Bridge configuration: what the config file says about one bridge, its
// defaults, and the checks that run before the broker starts.
//
// Invariants:
//   - Validate is the only judge of a Config: every rule below is checked
//     there, each error names the bridge and the key at fault with the key
//     names of the config file (address, topics[2].qos, tls.cert-file, ...).
//   - A valid Config maps every topic it matches to a topic it can publish:
//     prefixes hold no wildcards, and local-prefix+pattern and
//     remote-prefix+pattern are valid filters (an empty pattern makes both
//     prefixes plain topics, renamed one to the other).

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairn-mqtt/cairn/wire"
)

// Direction says which way a topic rule forwards.
type Direction uint8

// Directions.
const (
	Out  Direction = 1 << iota // local → remote
	In                         // remote → local
	Both = Out | In
)

func (d Direction) String() string {
	switch d {
	case Out:
		return "out"
	case In:
		return "in"
	case Both:
		return "both"
	}
	return "direction(" + strconv.Itoa(int(d)) + ")"
}

// ParseDirection parses out, in or both.
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "out":
		return Out, nil
	case "in":
		return In, nil
	case "both":
		return Both, nil
	}
	return 0, fmt.Errorf("direction %q: want out, in or both", s)
}

// Rule is one topic rule, as mosquitto's
// `topic pattern direction qos local-prefix remote-prefix`: messages on
// LocalPrefix+Pattern are forwarded (Out) to RemotePrefix+Pattern, and (In)
// the other way, at most at QoS.
type Rule struct {
	Pattern      string
	Direction    Direction
	QoS          byte
	LocalPrefix  string
	RemotePrefix string
}

// DefaultQoS is a rule's QoS when none is given. mosquitto's default is 0;
// a durable bridge defaults to 1, since QoS 0 messages are never queued.
const DefaultQoS = 1

// ParseRule parses the one-line form of a rule,
// `pattern [direction [qos [local-prefix [remote-prefix]]]]`, with `""` for
// an empty field (mosquitto's syntax; a missing direction is out).
func ParseRule(s string) (Rule, error) {
	f := strings.Fields(s)
	r := Rule{Direction: Out, QoS: DefaultQoS}
	if len(f) == 0 {
		return r, errors.New("empty rule: want `pattern [out|in|both [qos [local-prefix [remote-prefix]]]]`")
	}
	if len(f) > 5 {
		return r, fmt.Errorf("%q: %d fields, want at most 5: pattern direction qos local-prefix remote-prefix", s, len(f))
	}
	for i := range f {
		if f[i] == `""` || f[i] == `''` {
			f[i] = ""
		}
	}
	r.Pattern = f[0]
	if len(f) > 1 {
		d, err := ParseDirection(f[1])
		if err != nil {
			return r, err
		}
		r.Direction = d
	}
	if len(f) > 2 {
		q, err := strconv.Atoi(f[2])
		if err != nil || q < 0 || q > 2 {
			return r, fmt.Errorf("qos %q: want 0, 1 or 2", f[2])
		}
		r.QoS = byte(q)
	}
	if len(f) > 3 {
		r.LocalPrefix = f[3]
	}
	if len(f) > 4 {
		r.RemotePrefix = f[4]
	}
	return r, nil
}

func (r Rule) String() string {
	q := func(s string) string {
		if s == "" {
			return `""`
		}
		return s
	}
	return fmt.Sprintf("%s %s %d %s %s", q(r.Pattern), r.Direction, r.QoS, q(r.LocalPrefix), q(r.RemotePrefix))
}

// LocalFilter is the filter the rule matches on the local broker.
func (r Rule) LocalFilter() string { return r.LocalPrefix + r.Pattern }

// RemoteFilter is the filter the rule matches on the remote broker.
func (r Rule) RemoteFilter() string { return r.RemotePrefix + r.Pattern }

// TLSConfig is the client side of a TLS connection to the remote broker.
type TLSConfig struct {
	// CAFile holds the PEM certificates of the authorities the remote's
	// certificate must chain to; empty: the system's.
	CAFile string
	// CertFile and KeyFile, if set, are the client certificate (PEM chain,
	// leaf first) and its key, for remotes that authenticate clients by
	// certificate.
	CertFile, KeyFile string
	// ServerName overrides the host name checked in the remote's
	// certificate (default: the host of Address).
	ServerName string
	// InsecureSkipVerify accepts any certificate (tests; never in
	// production).
	InsecureSkipVerify bool
}

// Config is one bridge.
type Config struct {
	// Name identifies the bridge (letters, digits, '.', '_', '-'); its
	// queue is the session InternalPrefix+Name of the local broker.
	Name string
	// Address is the remote broker, host[:port] (port 1883, or 8883 with
	// TLS).
	Address string
	// TLS, if set, makes the connection TLS.
	TLS *TLSConfig
	// Protocol is wire.V311 or wire.V5 (default 3.1.1, which every broker
	// speaks; 5.0 brings no-local, reason codes and flow control).
	Protocol wire.Version
	// ClientID is the client id on the remote (default hostname.name).
	ClientID string
	// Username and Password authenticate on the remote; PasswordFile, if
	// set, holds the password instead (trailing newline removed).
	Username     string
	Password     string
	PasswordFile string
	// KeepAlive toward the remote (default 60 s; a 5.0 remote may lower it).
	KeepAlive time.Duration
	// SessionExpiry is the 5.0 session expiry on the remote (default:
	// never). 3.1.1 sessions with clean session 0 do not expire.
	SessionExpiry time.Duration
	// Window bounds the QoS 1/2 messages in flight each way (default 64;
	// the local broker caps it at its max-inflight, a 5.0 remote at its
	// Receive Maximum).
	Window int
	// ReconnectMin and ReconnectMax bound the back-off between connection
	// attempts (defaults 1 s and 2 min); each wait is drawn at random from
	// the upper half of the current bound, which doubles after each failure.
	ReconnectMin, ReconnectMax time.Duration
	// TryPrivate, for 3.1.1, announces a bridge (protocol level 0x84):
	// brokers that know it (mosquitto) then send the bridge nothing it
	// published itself. A remote that refuses it is asked again without.
	// Default true.
	TryPrivate *bool
	// Rules are the topic rules, in order: the first rule that matches a
	// message decides how it is renamed.
	Rules []Rule
}

// Defaults.
const (
	DefaultKeepAlive    = 60 * time.Second
	DefaultWindow       = 64
	DefaultReconnectMin = time.Second
	DefaultReconnectMax = 2 * time.Minute
)

// ClientIDLocal is the client id of the bridge's session on the local broker.
func (c *Config) ClientIDLocal() string { return "$bridge/" + c.Name }

// tryPrivate reports whether a 3.1.1 CONNECT announces a bridge.
func (c *Config) tryPrivate() bool { return c.TryPrivate == nil || *c.TryPrivate }

// withDefaults fills in what was not given.
func (c Config) withDefaults() Config {
	if c.Protocol == 0 {
		c.Protocol = wire.V311
	}
	if c.ClientID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "cairn"
		}
		c.ClientID = host + "." + c.Name
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	return c
}

// Validate checks every bridge and returns them with their defaults filled
// in. The first problem is returned, naming the bridge and the key.
func Validate(cfgs []Config) ([]Config, error) {
	out := make([]Config, 0, len(cfgs))
	names := map[string]int{}
	for i, c := range cfgs {
		at := fmt.Sprintf("bridges[%d]", i)
		if c.Name != "" {
			at = fmt.Sprintf("bridges[%d] (%s)", i, c.Name)
		}
		if j, dup := names[c.Name]; dup && c.Name != "" {
			return nil, fmt.Errorf("%s: name: %q is also the name of bridges[%d]", at, c.Name, j)
		}
		names[c.Name] = i
		v, err := c.validate()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (c Config) validate() (Config, error) {
	if err := checkName(c.Name); err != nil {
		return c, fmt.Errorf("name: %w", err)
	}
	c = c.withDefaults()
	if c.Address == "" {
		return c, errors.New("address: the remote broker's host[:port] is required")
	}
	addr, err := c.dialAddress()
	if err != nil {
		return c, fmt.Errorf("address: %w", err)
	}
	c.Address = addr
	switch c.Protocol {
	case wire.V311, wire.V5:
	default:
		return c, fmt.Errorf("protocol: %v: want 3.1.1 or 5.0", c.Protocol)
	}
	if !utf8.ValidString(c.ClientID) || len(c.ClientID) > 65535 {
		return c, errors.New("client-id: not a valid UTF-8 string of at most 65535 bytes")
	}
	if c.Password != "" && c.PasswordFile != "" {
		return c, errors.New("password and password-file: give one of them")
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return c, fmt.Errorf("password-file: %w", err)
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
		c.PasswordFile = ""
	}
	if c.Password != "" && c.Username == "" && c.Protocol == wire.V311 {
		return c, errors.New("password: MQTT 3.1.1 sends a password only with a username")
	}
	switch {
	case c.KeepAlive < 0 || c.KeepAlive > 65535*time.Second:
		return c, fmt.Errorf("keepalive: %v is not in 0..65535s", c.KeepAlive)
	case c.KeepAlive%time.Second != 0:
		return c, fmt.Errorf("keepalive: %v is not a whole number of seconds", c.KeepAlive)
	case c.SessionExpiry < 0 || c.SessionExpiry > 0xFFFFFFFE*time.Second:
		return c, fmt.Errorf("session-expiry: %v is out of range", c.SessionExpiry)
	case c.Window < 1 || c.Window > 65535:
		return c, fmt.Errorf("window: %d is not in 1..65535", c.Window)
	case c.ReconnectMin < 0:
		return c, fmt.Errorf("reconnect-min: %v must not be negative", c.ReconnectMin)
	case c.ReconnectMax < c.ReconnectMin:
		return c, fmt.Errorf("reconnect-max: %v is less than reconnect-min %v", c.ReconnectMax, c.ReconnectMin)
	}
	if c.TLS != nil {
		if _, err := c.TLS.config(""); err != nil {
			return c, err
		}
	}
	if len(c.Rules) == 0 {
		return c, errors.New("topics: at least one topic rule is required")
	}
	for i, r := range c.Rules {
		if err := r.check(); err != nil {
			return c, fmt.Errorf("topics[%d] (%s): %w", i, r, err)
		}
	}
	return c, nil
}

// checkName accepts names that are safe in a client id, a log line and a
// metric label.
func checkName(n string) error {
	if n == "" {
		return errors.New("required")
	}
	if len(n) > 64 {
		return fmt.Errorf("%q: longer than 64 characters", n)
	}
	for _, r := range n {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return fmt.Errorf("%q: only letters, digits, '.', '_' and '-'", n)
		}
	}
	return nil
}

// dialAddress returns Address with the default port added.
func (c *Config) dialAddress() (string, error) {
	a := c.Address
	if strings.Contains(a, "://") {
		return "", fmt.Errorf("%q: give host:port (TLS is the tls key)", a)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		// No port.
		host, port = strings.Trim(a, "[]"), "1883"
		if c.TLS != nil {
			port = "8883"
		}
	}
	if host == "" {
		return "", fmt.Errorf("%q: no host", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: port %q is not in 1..65535", a, port)
	}
	return net.JoinHostPort(host, port), nil
}

func (r Rule) check() error {
	if r.Direction&Both == 0 || r.Direction&^Both != 0 {
		return errors.New("direction: want out, in or both")
	}
	if r.QoS > 2 {
		return fmt.Errorf("qos: %d is not 0, 1 or 2", r.QoS)
	}
	for _, p := range []struct{ key, v string }{{"local-prefix", r.LocalPrefix}, {"remote-prefix", r.RemotePrefix}} {
		if strings.ContainsAny(p.v, "+#") {
			return fmt.Errorf("%s: %q holds a wildcard; prefixes are plain topic levels", p.key, p.v)
		}
		if strings.HasPrefix(p.v, "$share/") {
			return fmt.Errorf("%s: %q: shared subscriptions cannot be bridged", p.key, p.v)
		}
	}
	if strings.HasPrefix(r.Pattern, "$share/") {
		return fmt.Errorf("pattern: %q: shared subscriptions cannot be bridged", r.Pattern)
	}
	if r.Pattern == "" {
		// mosquitto: with an empty pattern the prefixes are topics.
		if r.LocalPrefix == "" || r.RemotePrefix == "" {
			return errors.New("pattern: empty, so local-prefix and remote-prefix must both be topics")
		}
		if err := wire.ValidateTopicName(r.LocalPrefix); err != nil {
			return fmt.Errorf("local-prefix: %w", err)
		}
		if err := wire.ValidateTopicName(r.RemotePrefix); err != nil {
			return fmt.Errorf("remote-prefix: %w", err)
		}
		return nil
	}
	if err := wire.ValidateTopicFilter(r.LocalFilter()); err != nil {
		return fmt.Errorf("pattern: local filter %q: %w", r.LocalFilter(), err)
	}
	if err := wire.ValidateTopicFilter(r.RemoteFilter()); err != nil {
		return fmt.Errorf("pattern: remote filter %q: %w", r.RemoteFilter(), err)
	}
	return nil
}

// config builds the crypto/tls client configuration; host is the remote's
// host name, checked in its certificate unless ServerName overrides it.
func (t *TLSConfig) config(host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca-file: %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert-file / tls.key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case t.CertFile != "":
		return nil, errors.New("tls.key-file: needed with tls.cert-file")
	case t.KeyFile != "":
		return nil, errors.New("tls.cert-file: needed with tls.key-file")
	}
	return cfg, nil
}
