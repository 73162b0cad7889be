package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine/auth"
	"github.com/cairn-mqtt/cairn/engine/listen/testpki"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

func writeTestFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// connectCode sends CONNECT over nc and returns the CONNACK code.
func connectCode(t *testing.T, nc net.Conn, v wire.Version, id, user, pw string) (*wiretest.Conn, wire.ReasonCode) {
	t.Helper()
	c := wiretest.NewConn(t, nc, v)
	p := &wire.Connect{Version: v, ClientID: id, CleanStart: true, KeepAlive: 30}
	if user != "" {
		p.UsernameFlag, p.Username = true, user
	}
	if pw != "" {
		p.PasswordFlag, p.Password = true, []byte(pw)
	}
	return c, c.Connect(t, p).ReasonCode
}

func tcpCode(t *testing.T, addr string, v wire.Version, id, user, pw string) (*wiretest.Conn, wire.ReasonCode) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return connectCode(t, nc, v, id, user, pw)
}

// subCode subscribes to filter and returns the SUBACK code.
func subCode(t *testing.T, c *wiretest.Conn, pid uint16, filter string) wire.ReasonCode {
	t.Helper()
	c.Send(&wire.Subscribe{PacketID: pid, Subscriptions: []wire.Subscription{{Filter: filter, QoS: 1}}})
	p := c.Expect(t, 5*time.Second)
	sa, ok := p.(*wire.Suback)
	if !ok || len(sa.ReasonCodes) != 1 {
		t.Fatalf("want SUBACK, got %+v", p)
	}
	return sa.ReasonCodes[0]
}

// TestServeSecurity runs `cairn serve` with a password file, an ACL file
// and a mutual-TLS listener whose certificates name users; checks the
// startup log, the answers, and a SIGHUP reload (good, then bad files).
func TestServeSecurity(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	if _, err := auth.AddUser(pwFile, "alice", []byte("wonderland")); err != nil {
		t.Fatal(err)
	}
	aclFile := writeTestFile(t, dir, "acl", []byte("user alice\ntopic readwrite alice/#\npattern readwrite devices/%u/#\n"))
	serverCA, clientCA := testpki.NewCA(t, "server ca"), testpki.NewCA(t, "client ca")
	cert, key := serverCA.Issue(t, "broker", true)
	b := startBroker(t, "--password-file", pwFile, "--acl-file", aclFile,
		"--listen-tls", "127.0.0.1:0",
		"--tls-cert", writeTestFile(t, dir, "cert.pem", cert), "--tls-key", writeTestFile(t, dir, "key.pem", key),
		"--tls-client-ca", writeTestFile(t, dir, "ca.pem", clientCA.PEM), "--tls-cert-username", "cn")

	waitLog(t, b, "cairn ready", 1)
	tcpLog := b.logs.listening(1, "tcp")
	tlsLog := b.logs.listening(1, "tls")
	wsLog := b.logs.listening(1, "ws") // the WebSocket listener follows the same rule (ops.go)
	if tcpLog == nil || tlsLog == nil || wsLog == nil {
		t.Fatalf("startup log: %v / %v / %v", tcpLog, tlsLog, wsLog)
	}
	if tcpLog["anonymous"] != false || !strings.Contains(tcpLog["anonymous_why"].(string), "password file") || tlsLog["client_certificates"] != "required" ||
		wsLog["anonymous"] != false {
		t.Fatalf("startup log does not say who may connect: %v / %v / %v", tcpLog, tlsLog, wsLog)
	}
	tlsAddr := tlsLog["addr"].(string)

	if _, code := tcpCode(t, b.addr, wire.V311, "x", "", ""); code != wire.ConnRefusedNotAuthorized {
		t.Fatalf("anonymous: 0x%02X", byte(code))
	}
	if _, code := tcpCode(t, b.addr, wire.V5, "x", "alice", "guess"); code != wire.BadUsernameOrPassword {
		t.Fatalf("wrong password: 0x%02X", byte(code))
	}
	alice, code := tcpCode(t, b.addr, wire.V5, "al", "alice", "wonderland")
	if code != 0 {
		t.Fatalf("alice: 0x%02X", byte(code))
	}
	if c := subCode(t, alice, 1, "bob/#"); c != wire.NotAuthorized {
		t.Fatalf("ACL: 0x%02X", byte(c))
	}

	// Mutual TLS: the certificate's CN is the user.
	tc, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: serverCA.Pool(), ServerName: "127.0.0.1",
		Certificates: []tls.Certificate{clientCA.ClientCert(t, "sensor7")}})
	if err != nil {
		t.Fatal(err)
	}
	dev, code := connectCode(t, tc, wire.V5, "s7", "", "")
	if code != 0 {
		t.Fatalf("certificate client: 0x%02X", byte(code))
	}
	if c := subCode(t, dev, 1, "devices/sensor7/#"); c != 1 {
		t.Fatalf("certificate user's ACL: 0x%02X", byte(c))
	}
	rogue, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: serverCA.Pool(), ServerName: "127.0.0.1",
		Certificates: []tls.Certificate{testpki.NewCA(t, "rogue").ClientCert(t, "sensor7")}})
	if err == nil {
		// TLS 1.3: the server's refusal arrives with the first read.
		_ = rogue.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = rogue.Read(make([]byte, 1))
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a certificate from an unknown CA was accepted: %v", err)
		}
		rogue.Close()
	}

	// SIGHUP: bob is added and alice may read bob/#.
	if _, err := auth.AddUser(pwFile, "bob", []byte("builder")); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, dir, "acl", []byte("user alice\ntopic readwrite alice/#\ntopic read bob/#\npattern readwrite devices/%u/#\n"))
	hup(t, b)
	waitLog(t, b, "authentication and ACL files reloaded", 1)
	if _, code := tcpCode(t, b.addr, wire.V311, "b", "bob", "builder"); code != 0 {
		t.Fatalf("bob after reload: 0x%02X", byte(code))
	}
	if c := subCode(t, alice, 2, "bob/#"); c != 1 {
		t.Fatalf("alice's new right on her old connection: 0x%02X", byte(c))
	}
	// A broken ACL: logged, old rules kept, connections untouched.
	writeTestFile(t, dir, "acl", []byte("bogus line\n"))
	hup(t, b)
	waitLog(t, b, "reload failed; the previous configuration stays in force where it failed", 1)
	if c := subCode(t, alice, 3, "bob/#"); c != 1 {
		t.Fatalf("after a failed reload: 0x%02X", byte(c))
	}
	dev.Send(&wire.Pingreq{})
	if _, ok := dev.Expect(t, 5*time.Second).(*wire.Pingresp); !ok {
		t.Fatal("TLS client lost")
	}
}

// TestServeDefaultsAnonymous: without configuration the loopback listener
// admits anonymous clients and says so.
func TestServeDefaultsAnonymous(t *testing.T) {
	b := startBroker(t)
	waitLog(t, b, "cairn ready", 1)
	l := b.logs.listening(1, "tcp")
	if l == nil || l["anonymous"] != true || !strings.Contains(l["anonymous_why"].(string), "loopback") {
		t.Fatalf("startup log %v", l)
	}
	if _, code := tcpCode(t, b.addr, wire.V311, "a", "", ""); code != 0 {
		t.Fatalf("anonymous on loopback: 0x%02X", byte(code))
	}
}

func hup(t *testing.T, b *broker) {
	t.Helper()
	if err := b.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits until the current run logged msg n times.
func waitLog(t *testing.T, b *broker, msg string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(b.logs.allJSON(b.starts, msg)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("log %q not seen %d times", msg, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// allJSON returns the JSON log lines of run whose msg is msg, in order.
func (s *logSink) allJSON(run int, msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	prefix := []byte(runPrefix(run))
	for _, line := range bytes.Split(s.buf.Bytes(), []byte("\n")) {
		l, ok := bytes.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		j := bytes.IndexByte(l, '{')
		if j < 0 {
			continue
		}
		var rec map[string]any
		if json.Unmarshal(l[j:], &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// listening is run's "listening" log line of the given transport, or nil.
func (s *logSink) listening(run int, transport string) map[string]any {
	for _, l := range s.allJSON(run, "listening") {
		if l["transport"] == transport {
			return l
		}
	}
	return nil
}
