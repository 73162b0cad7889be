package engine_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/listen"
	"github.com/cairn-mqtt/cairn/engine/listen/testpki"
	"github.com/cairn-mqtt/cairn/wire"
)

// tlsEnv is a broker with a TLS listener whose server certificate is from
// ca and whose client certificates are verified against clientCA.
type tlsEnv struct {
	tb       *testBroker
	addr     string
	ca       *testpki.CA // signs the server certificate
	clientCA *testpki.CA
}

func newTLSEnv(t *testing.T, opts engine.Options, require bool, field listen.IdentityField, anonymous bool) *tlsEnv {
	t.Helper()
	e := &tlsEnv{ca: testpki.NewCA(t, "server ca"), clientCA: testpki.NewCA(t, "client ca")}
	dir := t.TempDir()
	cert, key := e.ca.Issue(t, "broker", true)
	tl, err := listen.NewTLS(listen.TLSOptions{
		CertFile:          writeFile(t, dir, "cert.pem", string(cert)),
		KeyFile:           writeFile(t, dir, "key.pem", string(key)),
		ClientCAFile:      writeFile(t, dir, "ca.pem", string(e.clientCA.PEM)),
		RequireClientCert: require,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.tb = startBroker(t, opts)
	e.addr = serveExtra(t, e.tb, engine.Listener{Name: "tls", TLS: tl.Config(), CertUsername: field, AllowAnonymous: anonymous})
	return e
}

func (e *tlsEnv) config(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: e.ca.Pool(), ServerName: "127.0.0.1", Certificates: certs}
}

// TestMutualTLS: a verified client certificate's CN is the user name (no
// password needed) and the ACL's %u sees it; a certificate from another CA,
// or none, fails the handshake, counted, without disturbing anyone.
func TestMutualTLS(t *testing.T) {
	p, _, _ := policy(t, "", "pattern readwrite devices/%u/#\n", 0)
	e := newTLSEnv(t, engine.Options{Auth: p}, true, listen.IdentityCN, false)

	dev, err := dialTLS(t, e.addr, e.config(e.clientCA.ClientCert(t, "dev42")), wire.V5)
	if err != nil {
		t.Fatalf("handshake with a good client certificate: %v", err)
	}
	// The CONNECT's own user name is not what counts.
	if ack := dev.Connect(t, &wire.Connect{ClientID: "d42", CleanStart: true, UsernameFlag: true, Username: "root"}); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	if c := dev.subscribeCodes(t, 1, "devices/dev42/#", "devices/dev43/#"); c[0] != 1 || c[1] != wire.NotAuthorized {
		t.Fatalf("SUBACK %v: the certificate's CN is not the user", c)
	}
	dev.Send(&wire.Publish{Topic: "devices/dev42/t", QoS: 1, PacketID: 5, Payload: []byte("21")})
	// The PUBACK and the delivery of its own message, in either order.
	for gotAck, gotPub := false, false; !gotAck || !gotPub; {
		switch p := dev.Expect(t, 5*time.Second).(type) {
		case *wire.Ack:
			if p.Kind != wire.PUBACK || p.PacketID != 5 || p.ReasonCode.IsError() {
				t.Fatalf("ack %+v", p)
			}
			gotAck = true
		case *wire.Publish:
			if p.Topic != "devices/dev42/t" {
				t.Fatalf("got %s", p.Topic)
			}
			gotPub = true
		default:
			t.Fatalf("got %s", p.Type())
		}
	}

	rogue := testpki.NewCA(t, "rogue ca")
	if !tlsRefused(t, e.addr, e.config(rogue.ClientCert(t, "dev42"))) {
		t.Fatal("a certificate from an unknown CA was accepted")
	}
	if !tlsRefused(t, e.addr, e.config()) {
		t.Fatal("a client without a certificate was accepted")
	}
	// Plain MQTT on the TLS port.
	raw := dialRaw(t, e.addr)
	raw.Send(&wire.Connect{Version: wire.V311, ClientID: "plain", CleanStart: true})
	raw.expectClosed(t, 5*time.Second)
	waitCounter(t, "TLSHandshakeFailed", 3, e.tb.b.Stats().Security.TLSHandshakeFailed.Load)
	dev.ping(t)
}

// TestTLSMinimumVersion: TLS 1.0 and 1.1 are refused.
func TestTLSMinimumVersion(t *testing.T) {
	e := newTLSEnv(t, engine.Options{}, false, "", true)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		cfg := e.config()
		cfg.MinVersion, cfg.MaxVersion = v, v
		if !tlsRefused(t, e.addr, cfg) {
			t.Fatalf("%s accepted", tls.VersionName(v))
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := e.config()
		cfg.MinVersion, cfg.MaxVersion = v, v
		r, err := dialTLS(t, e.addr, cfg, wire.V311)
		if err != nil {
			t.Fatalf("%s: %v", tls.VersionName(v), err)
		}
		r.connect(t, "v", true, 30, nil)
		r.ping(t)
	}
}

// TestOptionalClientCert: with client certificates optional, a client
// without one falls back to the password file; one with a verified
// certificate needs no password.
func TestOptionalClientCert(t *testing.T) {
	p, _, _ := policy(t, passwordFile(t, "alice", "pw"), "", 0)
	e := newTLSEnv(t, engine.Options{Auth: p}, false, listen.IdentityDNS, false)
	r, err := dialTLS(t, e.addr, e.config(), wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	if ack := r.Connect(t, &wire.Connect{ClientID: "p", CleanStart: true}); ack.ReasonCode != wire.ConnRefusedNotAuthorized {
		t.Fatalf("no certificate, no password: 0x%02X", byte(ack.ReasonCode))
	}
	r, err = dialTLS(t, e.addr, e.config(), wire.V5)
	if err != nil {
		t.Fatal(err)
	}
	if ack := r.Connect(t, &wire.Connect{ClientID: "p", CleanStart: true, UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("pw")}); ack.ReasonCode != 0 {
		t.Fatalf("password over TLS: 0x%02X", byte(ack.ReasonCode))
	}
	r, err = dialTLS(t, e.addr, e.config(e.clientCA.ClientCert(t, "sensor")), wire.V5)
	if err != nil {
		t.Fatal(err)
	}
	if ack := r.Connect(t, &wire.Connect{ClientID: "c", CleanStart: true}); ack.ReasonCode != 0 {
		t.Fatalf("certificate: 0x%02X", byte(ack.ReasonCode))
	}
}

// TestTLSHandshakeDeadline: a peer that opens a TLS connection and never
// completes the handshake is closed at the CONNECT deadline.
func TestTLSHandshakeDeadline(t *testing.T) {
	e := newTLSEnv(t, engine.Options{ConnectTimeout: 300 * time.Millisecond}, false, "", true)
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, _ = nc.Write([]byte{0x16, 0x03, 0x01}) // the start of a ClientHello
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server sent something to half a ClientHello")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
	waitCounter(t, "TLSHandshakeFailed", 1, e.tb.b.Stats().Security.TLSHandshakeFailed.Load)
}
