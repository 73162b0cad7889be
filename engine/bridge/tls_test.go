package bridge_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/auth"
	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/engine/listen"
	"github.com/cairn-mqtt/cairn/engine/listen/testpki"
	"github.com/cairn-mqtt/cairn/wire"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate (CN "edge") into dir and returns their paths.
func testPKI(t *testing.T, dir string) (caFile, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	ca := testpki.NewCA(t, "test ca")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(cn string, server bool) (string, string) {
		c, k := ca.Issue(t, cn, server)
		return write(cn+".pem", c), write(cn+".key", k)
	}
	caFile = write("ca.pem", ca.PEM)
	srvCert, srvKey = issue("broker", true)
	cliCert, cliKey = issue("edge", false)
	return
}

// TestTLSClientCertificateAndCredentials: the remote requires a client
// certificate from its CA and a user name and password; the bridge
// presents both and forwards; with a wrong password it stays
// disconnected and says why.
func TestTLSClientCertificateAndCredentials(t *testing.T) {
	dir := t.TempDir()
	caFile, srvCert, srvKey, cliCert, cliKey := testPKI(t, dir)
	pwFile := filepath.Join(dir, "passwords")
	if _, err := auth.AddUser(pwFile, "edge-user", []byte("s3cret")); err != nil {
		t.Fatal(err)
	}
	policy, err := auth.NewPolicy(auth.PolicyConfig{PasswordFile: pwFile})
	if err != nil {
		t.Fatal(err)
	}
	remote := &node{t: t, opts: engine.Options{Logger: testLogger(), Auth: policy}}
	remote.fs, remote.dir = nil, dir+"/remote"
	remote.start()
	t.Cleanup(remote.stop)
	tl, err := listen.NewTLS(listen.TLSOptions{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: caFile, RequireClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = remote.b.ServeListener(l, engine.Listener{Name: "tls", TLS: tl.Config()})
	}()
	t.Cleanup(func() { l.Close(); <-served })

	good := fastRetry(bridge.Config{Name: "tls", Address: l.Addr().String(), Protocol: wire.V5,
		TLS:      &bridge.TLSConfig{CAFile: caFile, CertFile: cliCert, KeyFile: cliKey},
		Username: "edge-user", Password: "s3cret", Rules: rules(t, `t/# out 1`)})
	bad := good
	bad.Name, bad.ClientID, bad.Password = "badpw", "edge-badpw", "wrong"
	nocert := good
	nocert.Name, nocert.ClientID, nocert.TLS = "nocert", "edge-nocert", &bridge.TLSConfig{CAFile: caFile}
	local := newNode(t, "", good, bad, nocert)

	sub := dial(t, remote.addr, "sink", wire.V5, false) // the plain listener admits anonymous clients
	sub.subscribe(wire.Subscription{Filter: "t/#", QoS: 1})
	if !waitFor(10*time.Second, func() bool { return local.status("tls").State == bridge.StateConnected }) {
		t.Fatalf("not connected over TLS: %+v", local.status("tls"))
	}
	pub := dial(t, local.addr, "pub", wire.V5, false)
	pub.publish(1, 1, seqTopic("t/x"), seqPayload)
	if got := sub.collect(3, 2*time.Second); len(got) != 1 {
		// One bridge forwards it; the two others are not connected.
		t.Fatalf("remote subscriber got %d messages, want 1", len(got))
	}
	if !waitFor(10*time.Second, func() bool {
		b, c := local.status("badpw"), local.status("nocert")
		return b.LastError != "" && c.LastError != ""
	}) {
		t.Fatalf("no errors for the bad bridges: %+v %+v", local.status("badpw"), local.status("nocert"))
	}
	if s := local.status("badpw"); s.State == bridge.StateConnected || !strings.Contains(s.LastError, "CONNACK 0x86") {
		t.Fatalf("wrong password: %+v", s)
	}
	if s := local.status("nocert"); s.State == bridge.StateConnected || s.Connects != 0 {
		t.Fatalf("no client certificate: %+v", s)
	}
}

// TestBridgeSessionOutsideAuthAndACL: on a broker that requires a login
// and whose ACL names only the application's topics, the bridge's
// internal session needs neither: it subscribes, receives and republishes
// (the operator configured it), while a network client with its id is
// still refused.
func TestBridgeSessionOutsideAuthAndACL(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwords")
	if _, err := auth.AddUser(pwFile, "app", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	acl := filepath.Join(dir, "acl")
	if err := os.WriteFile(acl, []byte("user app\ntopic write data/#\ntopic read cmd/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policy, err := auth.NewPolicy(auth.PolicyConfig{PasswordFile: pwFile, ACLFile: acl})
	if err != nil {
		t.Fatal(err)
	}
	remote := newNode(t, "")
	rsub := dial(t, remote.addr, "rsub", wire.V5, false)
	rsub.subscribe(wire.Subscription{Filter: "data/#", QoS: 1})
	local := &node{t: t, dir: dir + "/local", opts: engine.Options{Logger: testLogger(), Auth: policy},
		bridges: []bridge.Config{fastRetry(bridge.Config{Name: "acl", Address: remote.addr, Protocol: wire.V5,
			Rules: rules(t, `data/# out 1`, `cmd/# in 1`)})}}
	local.start()
	t.Cleanup(local.stop)
	if !waitFor(10*time.Second, func() bool {
		return local.status("acl").State == bridge.StateConnected && len(remote.b.SessionFilters("edge-acl")) == 1
	}) {
		t.Fatalf("not connected: %+v", local.status("acl"))
	}
	app := dialAs(t, local.addr, "app-1", "app", "pw")
	app.subscribe(wire.Subscription{Filter: "cmd/#", QoS: 1})
	app.publish(1, 1, seqTopic("data/x"), seqPayload)
	if got := rsub.collect(1, 5*time.Second); len(got) != 1 {
		t.Fatalf("out: remote got %d messages", len(got))
	}
	rpub := dial(t, remote.addr, "rpub", wire.V5, false)
	rpub.publish(1, 1, seqTopic("cmd/y"), seqPayload)
	if got := app.collect(1, 5*time.Second); len(got) != 1 {
		t.Fatalf("in: local app got %d messages", len(got))
	}
}

// dialAs connects a clean 5.0 session with credentials.
func dialAs(t testing.TB, addr, id, user, password string) *client {
	t.Helper()
	c := &client{t: t, v: wire.V5}
	c.c = wiretestDial(t, addr)
	p := &wire.Connect{ClientID: id, CleanStart: true, KeepAlive: 60, UsernameFlag: true, Username: user,
		PasswordFlag: true, Password: []byte(password)}
	if ack := c.c.Connect(t, p); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02X for %s", byte(ack.ReasonCode), id)
	}
	return c
}
