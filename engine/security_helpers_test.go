package engine_test

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/auth"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// serveExtra serves one more listener of tb's broker, configured by lc, and
// returns its address. It stops when the test ends.
func serveExtra(t testing.TB, tb *testBroker, lc engine.Listener) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	b := tb.b
	go func() { defer close(done); _ = b.ServeListener(l, lc) }()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// writeFile writes a file in dir and returns its path.
func writeFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// passwordFile returns the text of a password file of user:password pairs,
// hashed with bcrypt at its minimum cost (fast tests; the file format
// accepts it like argon2id).
func passwordFile(t testing.TB, pairs ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(pairs[i+1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(pairs[i] + ":" + string(h) + "\n")
	}
	return b.String()
}

// policy builds an auth.Policy over files written to a temporary directory
// (pwText or aclText "" for none); it returns the policy and the paths.
func policy(t testing.TB, pwText, aclText string, failedPerMinute int) (p *auth.Policy, pwPath, aclPath string) {
	t.Helper()
	dir := t.TempDir()
	cfg := auth.PolicyConfig{FailedLoginsPerMinute: failedPerMinute}
	if pwText != "" {
		pwPath = writeFile(t, dir, "passwords", pwText)
		cfg.PasswordFile = pwPath
	}
	if aclText != "" {
		aclPath = writeFile(t, dir, "acl", aclText)
		cfg.ACLFile = aclPath
	}
	p, err := auth.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, pwPath, aclPath
}

// connectAs sends CONNECT with the given credentials (user "" and no
// password: none) and returns the CONNACK.
func connectAs(t testing.TB, addr string, v wire.Version, id, user, password string) (*rawConn, *wire.Connack) {
	t.Helper()
	r := dialRawV(t, addr, v)
	c := &wire.Connect{Version: v, CleanStart: true, KeepAlive: 30, ClientID: id}
	if user != "" {
		c.UsernameFlag, c.Username = true, user
	}
	if password != "" {
		c.PasswordFlag, c.Password = true, []byte(password)
	}
	return r, r.Connect(t, c)
}

// mustConnectAs is connectAs that wants the connection accepted.
func mustConnectAs(t testing.TB, addr string, v wire.Version, id, user, password string) *rawConn {
	t.Helper()
	r, ack := connectAs(t, addr, v, id, user, password)
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK for %s (user %q): 0x%02X, want accepted", id, user, byte(ack.ReasonCode))
	}
	return r
}

// expectNothing asserts that no packet arrives within d.
func (r *rawConn) expectNothing(t testing.TB, d time.Duration) {
	t.Helper()
	p, err := r.Recv(d)
	if err == nil {
		t.Fatalf("unexpected %s: %+v", p.Type(), p)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connection failed instead of staying quiet: %v", err)
	}
}

// ping checks that the connection is alive and served.
func (r *rawConn) ping(t testing.TB) {
	t.Helper()
	r.Send(&wire.Pingreq{})
	for {
		p := r.Expect(t, 5*time.Second)
		if _, ok := p.(*wire.Pingresp); ok {
			return
		}
		if _, ok := p.(*wire.Publish); !ok {
			t.Fatalf("waiting for PINGRESP got %s", p.Type())
		}
	}
}

// subscribeCodes subscribes to filters (QoS 1) in one SUBSCRIBE and returns
// the SUBACK codes.
func (r *rawConn) subscribeCodes(t testing.TB, pid uint16, filters ...string) []wire.ReasonCode {
	t.Helper()
	s := &wire.Subscribe{PacketID: pid}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, wire.Subscription{Filter: f, QoS: 1})
	}
	r.Send(s)
	for {
		p := r.Expect(t, 5*time.Second)
		if sa, ok := p.(*wire.Suback); ok {
			if sa.PacketID != pid || len(sa.ReasonCodes) != len(filters) {
				t.Fatalf("SUBACK %+v for %d filters", sa, len(filters))
			}
			return sa.ReasonCodes
		}
		if _, ok := p.(*wire.Publish); !ok {
			t.Fatalf("waiting for SUBACK got %s", p.Type())
		}
	}
}

// waitCounter waits until read() reaches want.
func waitCounter(t testing.TB, what string, want int64, read func() int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := read()
		if got >= want {
			if got != want {
				t.Fatalf("%s = %d, want %d", what, got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", what, got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fakeAuth is an Authorizer driven by functions, for the engine's hooks.
type fakeAuth struct {
	publish, subscribe, receive func(user, client, topic string) bool
	calls                       atomic.Int64
}

func (f *fakeAuth) Authenticate(l *auth.Login) auth.Verdict {
	f.calls.Add(1)
	return auth.Verdict{Outcome: auth.Accepted, User: l.Username}
}

func (f *fakeAuth) CanPublish(u, c, t string) bool { return f.publish == nil || f.publish(u, c, t) }
func (f *fakeAuth) CanSubscribe(u, c, t string) bool {
	return f.subscribe == nil || f.subscribe(u, c, t)
}
func (f *fakeAuth) CanReceive(u, c, t string) bool { return f.receive == nil || f.receive(u, c, t) }

// dialTLS opens a TLS connection to addr; the handshake error, if any, is
// returned (the connection is then closed).
func dialTLS(t testing.TB, addr string, cfg *tls.Config, v wire.Version) (*rawConn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	nc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	// TLS 1.3 reports a refused client certificate only on the first read.
	_ = nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := nc.Read(make([]byte, 1)); err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			nc.Close()
			return nil, err
		}
	}
	_ = nc.SetReadDeadline(time.Time{})
	return newRawOver(t, nc, v), nil
}

// tlsRefused reports whether the TLS listener at addr refuses a client
// with cfg. The handshake alone does not tell under TLS 1.3 (the server
// checks the client's certificate after the client has finished), so the
// client sends a CONNECT: a refused one reads the alert, an accepted one
// its CONNACK. This waits for the answer rather than a fixed time, which a
// loaded machine could exceed.
func tlsRefused(t testing.TB, addr string, cfg *tls.Config) bool {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	nc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return true
	}
	defer nc.Close()
	b, err := wire.AppendPacket(nil, &wire.Connect{Version: wire.V311, ClientID: "tls-probe", CleanStart: true}, wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(b); err != nil {
		return true
	}
	n, err := nc.Read(make([]byte, 1))
	return n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// newRawOver wraps an established connection (TLS, say) as a raw client.
func newRawOver(t testing.TB, nc net.Conn, v wire.Version) *rawConn {
	return &rawConn{Conn: wiretest.NewConn(t, nc, v), v: v}
}
