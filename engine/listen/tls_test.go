package listen

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// tlsEnv is a CA, a server certificate and a TLS listener on loopback whose
// accepted connections complete their handshake and report the outcome.
type tlsEnv struct {
	ca       *testCA
	dir      string
	certFile string
	keyFile  string
	caFile   string
	tls      *TLS
	addr     string
	results  chan handshake
}

type handshake struct {
	state tls.ConnectionState
	err   error
}

func newTLSEnv(t *testing.T, clientCA bool, require bool) *tlsEnv {
	t.Helper()
	e := &tlsEnv{ca: newCA(t, "server CA"), dir: t.TempDir(), results: make(chan handshake, 16)}
	cert, key := e.ca.server(t, "server one")
	e.certFile = writeTemp(t, e.dir, "server.crt", cert)
	e.keyFile = writeTemp(t, e.dir, "server.key", key)
	opts := TLSOptions{CertFile: e.certFile, KeyFile: e.keyFile, RequireClientCert: require}
	if clientCA {
		e.caFile = writeTemp(t, e.dir, "clients.crt", newCA(t, "client CA").PEM)
		opts.ClientCAFile = e.caFile
	}
	var err error
	if e.tls, err = NewTLS(opts); err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = tcp.Addr().String()
	l := tls.NewListener(tcp, e.tls.Config())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				err := tc.Handshake()
				if err == nil {
					_, err = tc.Write([]byte("ok"))
				}
				e.results <- handshake{tc.ConnectionState(), err}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return e
}

// clientCA makes a new client CA, installs it in e's CA file and reloads,
// returning the CA whose certificates the listener now accepts.
func (e *tlsEnv) clientCA(t *testing.T) *testCA {
	t.Helper()
	ca := newCA(t, "client CA")
	writeTemp(t, e.dir, "clients.crt", ca.PEM)
	if err := e.tls.Reload(); err != nil {
		t.Fatal(err)
	}
	return ca
}

// dial handshakes as a client and returns the client's error (reading the
// server's "ok" so that a refusal after a TLS 1.3 handshake shows up) and the
// server's outcome.
func (e *tlsEnv) dial(t *testing.T, cfg *tls.Config) (server handshake, clientErr error) {
	t.Helper()
	if cfg.RootCAs == nil {
		cfg.RootCAs = e.ca.Pool()
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, clientErr := tls.DialWithDialer(d, "tcp", e.addr, cfg)
	if clientErr == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2)
		_, clientErr = io.ReadFull(c, buf)
		c.Close()
	}
	select {
	case server = <-e.results:
	case <-time.After(5 * time.Second):
		t.Fatal("server handshake did not finish")
	}
	return server, clientErr
}

func clientCert(t *testing.T, ca *testCA, cn string) tls.Certificate {
	t.Helper()
	c, k := ca.client(t, cn)
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestTLSVersions(t *testing.T) {
	e := newTLSEnv(t, false, false)
	for _, tc := range []struct {
		name string
		max  uint16
		ok   bool
	}{
		{"TLS 1.0", tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, cerr := e.dial(t, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tc.max})
			if tc.ok && (cerr != nil || s.err != nil || s.state.Version != tc.max) {
				t.Fatalf("refused: client %v, server %v, version %x", cerr, s.err, s.state.Version)
			}
			if !tc.ok && (cerr == nil || s.err == nil) {
				t.Fatalf("accepted: client %v, server %v", cerr, s.err)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	for _, require := range []bool{true, false} {
		name := "optional"
		if require {
			name = "required"
		}
		t.Run(name, func(t *testing.T) {
			e := newTLSEnv(t, true, require)
			good := e.clientCA(t)
			other := newCA(t, "client CA") // same name, another key

			s, cerr := e.dial(t, &tls.Config{Certificates: []tls.Certificate{clientCert(t, good, "dev1")}})
			if cerr != nil || s.err != nil {
				t.Fatalf("good certificate refused: client %v, server %v", cerr, s.err)
			}
			for field, want := range map[IdentityField]string{
				IdentityCN:    "dev1",
				IdentityDNS:   "dev1.devices.example.org",
				IdentityEmail: "dev1@example.org",
				IdentityURI:   "spiffe://example.org/dev1",
			} {
				if id, ok := ClientIdentity(&s.state, field); !ok || id != want {
					t.Errorf("ClientIdentity(%s) = %q %v, want %q", field, id, ok, want)
				}
			}

			s, cerr = e.dial(t, &tls.Config{Certificates: []tls.Certificate{clientCert(t, other, "dev1")}})
			if cerr == nil || s.err == nil {
				t.Fatalf("certificate from another CA accepted: client %v, server %v", cerr, s.err)
			}

			s, cerr = e.dial(t, &tls.Config{MaxVersion: tls.VersionTLS12, Certificates: []tls.Certificate{clientCert(t, other, "dev1")}})
			if cerr == nil || s.err == nil {
				t.Fatalf("TLS 1.2: certificate from another CA accepted: client %v, server %v", cerr, s.err)
			}

			s, cerr = e.dial(t, &tls.Config{})
			if require && (cerr == nil || s.err == nil) {
				t.Fatalf("no certificate accepted: client %v, server %v", cerr, s.err)
			}
			if !require {
				if cerr != nil || s.err != nil {
					t.Fatalf("no certificate refused: client %v, server %v", cerr, s.err)
				}
				if id, ok := ClientIdentity(&s.state, IdentityCN); ok {
					t.Fatalf("identity %q without a certificate", id)
				}
			}
		})
	}
}

func TestClientIdentityUnverified(t *testing.T) {
	ca := newCA(t, "ca")
	c, k := ca.client(t, "dev1")
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	unverified := &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf}}
	if _, ok := ClientIdentity(unverified, IdentityCN); ok {
		t.Fatal("identity from an unverified certificate")
	}
	if _, ok := ClientIdentity(nil, IdentityCN); ok {
		t.Fatal("identity from nil")
	}
	verified := &tls.ConnectionState{HandshakeComplete: true, VerifiedChains: [][]*x509.Certificate{{leaf, ca.Cert}}}
	if id, ok := ClientIdentity(verified, IdentityCN); !ok || id != "dev1" {
		t.Fatalf("verified: %q %v", id, ok)
	}
	if _, ok := ClientIdentity(verified, "serial"); ok {
		t.Fatal("unknown field gave an identity")
	}
	leaf.Subject.CommonName = ""
	if _, ok := ClientIdentity(verified, IdentityCN); ok {
		t.Fatal("empty CN gave an identity")
	}
	leaf.Subject.CommonName = "a\x00b"
	if _, ok := ClientIdentity(verified, IdentityCN); ok {
		t.Fatal("CN with NUL gave an identity")
	}
	leaf.DNSNames = nil
	if _, ok := ClientIdentity(verified, IdentityDNS); ok {
		t.Fatal("missing SAN gave an identity")
	}
}

func TestParseIdentityField(t *testing.T) {
	for _, s := range []string{"cn", "CN", "dns", "email", "uri"} {
		if _, err := ParseIdentityField(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParseIdentityField("serial"); err == nil {
		t.Error("serial accepted")
	}
}

func TestTLSReload(t *testing.T) {
	e := newTLSEnv(t, false, false)
	peerCN := func() string {
		t.Helper()
		var cn string
		cfg := &tls.Config{RootCAs: e.ca.Pool(), VerifyConnection: func(cs tls.ConnectionState) error {
			cn = cs.PeerCertificates[0].Subject.CommonName
			return nil
		}}
		if s, cerr := e.dial(t, cfg); cerr != nil || s.err != nil {
			t.Fatalf("handshake: %v %v", cerr, s.err)
		}
		return cn
	}
	if cn := peerCN(); cn != "server one" {
		t.Fatalf("served %q", cn)
	}
	before := e.tls.NotAfter()

	// A half-written rotation (new certificate, old key) is refused and the
	// old pair stays in use.
	cert, key := e.ca.server(t, "server two")
	writeTemp(t, e.dir, "server.crt", cert)
	if err := e.tls.Reload(); err == nil || !strings.Contains(err.Error(), e.certFile) {
		t.Fatalf("mismatched pair: %v", err)
	}
	if cn := peerCN(); cn != "server one" {
		t.Fatalf("after a failed reload served %q", cn)
	}
	writeTemp(t, e.dir, "server.key", key)
	if err := e.tls.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(); cn != "server two" {
		t.Fatalf("after reload served %q", cn)
	}
	if e.tls.cur.Load().leaf.Subject.CommonName != "server two" || e.tls.NotAfter().Before(before) {
		t.Fatal("NotAfter does not follow the new certificate")
	}
}

func TestClientCAReload(t *testing.T) {
	e := newTLSEnv(t, true, true)
	ca1 := e.clientCA(t)
	c1 := clientCert(t, ca1, "dev1")
	if s, cerr := e.dial(t, &tls.Config{Certificates: []tls.Certificate{c1}}); cerr != nil || s.err != nil {
		t.Fatalf("refused: %v %v", cerr, s.err)
	}
	// A bad CA file keeps the old CAs.
	writeTemp(t, e.dir, "clients.crt", []byte("not PEM"))
	if err := e.tls.Reload(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("bad CA file: %v", err)
	}
	if s, cerr := e.dial(t, &tls.Config{Certificates: []tls.Certificate{c1}}); cerr != nil || s.err != nil {
		t.Fatalf("refused after a failed reload: %v %v", cerr, s.err)
	}
	ca2 := e.clientCA(t) // rotates to a new CA
	if s, cerr := e.dial(t, &tls.Config{Certificates: []tls.Certificate{c1}}); cerr == nil || s.err == nil {
		t.Fatal("certificate of the removed CA accepted")
	}
	if s, cerr := e.dial(t, &tls.Config{Certificates: []tls.Certificate{clientCert(t, ca2, "dev2")}}); cerr != nil || s.err != nil {
		t.Fatalf("certificate of the new CA refused: %v %v", cerr, s.err)
	}
}

func TestNewTLSErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "ca")
	cert, key := ca.server(t, "s")
	_, otherKey := ca.server(t, "s2")
	certFile := writeTemp(t, dir, "s.crt", cert)
	keyFile := writeTemp(t, dir, "s.key", key)
	otherKeyFile := writeTemp(t, dir, "o.key", otherKey)
	caFile := writeTemp(t, dir, "ca.crt", ca.PEM)
	badCA := writeTemp(t, dir, "bad.crt", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	for _, tc := range []struct {
		name string
		o    TLSOptions
		want string
	}{
		{"no key", TLSOptions{CertFile: certFile}, "a certificate file and a key file"},
		{"require without CA", TLSOptions{CertFile: certFile, KeyFile: keyFile, RequireClientCert: true}, "needs a client CA file"},
		{"missing cert", TLSOptions{CertFile: dir + "/none", KeyFile: keyFile}, dir + "/none"},
		{"mismatched key", TLSOptions{CertFile: certFile, KeyFile: otherKeyFile}, "private key does not match"},
		{"missing CA", TLSOptions{CertFile: certFile, KeyFile: keyFile, ClientCAFile: dir + "/none"}, "client CA file"},
		{"bad CA", TLSOptions{CertFile: certFile, KeyFile: keyFile, ClientCAFile: badCA}, badCA + ": certificate 1"},
		{"key as CA", TLSOptions{CertFile: certFile, KeyFile: keyFile, ClientCAFile: keyFile}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewTLS(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	tl, err := NewTLS(TLSOptions{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if tl.Config().MinVersion != tls.VersionTLS12 {
		t.Fatal("MinVersion")
	}
	cfg, _ := tl.Config().GetConfigForClient(nil)
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.VerifyClientCertIfGiven || len(cfg.NextProtos) != 0 {
		t.Fatalf("per-handshake config: %+v", cfg)
	}
	_ = os.Remove(keyFile)
	if err := tl.Reload(); err == nil {
		t.Fatal("reload with a missing key succeeded")
	}
}
