package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/listen"
)

func TestSecurityConfigDefaults(t *testing.T) {
	cfg, err := runServeConfig(t)
	if err != nil {
		t.Fatal(err)
	}
	d := engine.DefaultLimits()
	l := cfg.Engine.Limits
	if l.MaxConnections != d.MaxConnections || l.MaxConnectionsPerIP != d.MaxConnectionsPerIP || l.MaxTopicLength != 65535 ||
		l.MaxTopicLevels != d.MaxTopicLevels || l.MaxSubscriptions != d.MaxSubscriptions || l.MaxQueuedBytes != d.MaxQueuedBytes ||
		l.MaxInboundBytes != d.MaxInboundBytes || l.PublishRate != 0 {
		t.Fatalf("limits %+v, want the engine defaults %+v", l, d)
	}
	s := cfg.Sec
	if s.AllowAnonymous || s.PasswordFile != "" || s.ACLFile != "" || s.ListenTLS != "" || s.AuthFailRate != 10 || cfg.Engine.MaxClientIDLen != 256 {
		t.Fatalf("security defaults %+v", s)
	}
}

func TestSecurityConfigSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cairn.yaml")
	yaml := `password-file: /etc/cairn/passwd
acl-file: /etc/cairn/acl
allow-anonymous: true
listen-tls: 0.0.0.0
tls-cert: /c.pem
tls-key: /k.pem
tls-client-ca: /ca.pem
tls-require-client-cert: false
tls-cert-username: DNS
max-subscriptions: 5
max-topic-levels: 0
publish-rate: 50
max-client-id-len: 23
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAIRN_MAX_CONNECTIONS", "7")
	cfg, err := runServeConfig(t, "--config", file, "--max-connections-per-ip", "3")
	if err != nil {
		t.Fatal(err)
	}
	s, l := cfg.Sec, cfg.Engine.Limits
	switch {
	case s.PasswordFile != "/etc/cairn/passwd" || s.ACLFile != "/etc/cairn/acl" || !s.AllowAnonymous:
		t.Fatalf("auth from file: %+v", s)
	case s.ListenTLS != "0.0.0.0:8883":
		t.Fatalf("listen-tls %q, want the default port added", s.ListenTLS)
	case s.TLS.CertFile != "/c.pem" || s.TLS.KeyFile != "/k.pem" || s.TLS.ClientCAFile != "/ca.pem" || s.TLS.RequireClientCert:
		t.Fatalf("TLS from file: %+v", s.TLS)
	case s.CertUsername != listen.IdentityDNS:
		t.Fatalf("cert username %q", s.CertUsername)
	case l.MaxSubscriptions != 5 || l.MaxTopicLevels != -1 || l.PublishRate != 50 || cfg.Engine.MaxClientIDLen != 23:
		t.Fatalf("limits from file: %+v", l)
	case l.MaxConnections != 7 || l.MaxConnectionsPerIP != 3:
		t.Fatalf("limits from env and flag: %+v", l)
	}
	// With a client CA, client certificates are required by default.
	cfg, err = runServeConfig(t, "--listen-tls", "[::1]", "--tls-cert", "c", "--tls-key", "k", "--tls-client-ca", "ca")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Sec.TLS.RequireClientCert || cfg.Sec.ListenTLS != "[::1]:8883" {
		t.Fatalf("%+v", cfg.Sec)
	}
}

func TestSecurityConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen-tls", ":8883"}, "tls-cert"},
		{[]string{"--tls-cert", "c"}, "listen-tls"},
		{[]string{"--listen-tls", ":8883", "--tls-cert", "c", "--tls-key", "k", "--tls-cert-username", "serial"}, "tls-cert-username"},
		{[]string{"--listen-tls", ":8883", "--tls-cert", "c", "--tls-key", "k", "--tls-cert-username", "cn"}, "tls-client-ca"},
		{[]string{"--max-connections", "-1"}, "max-connections"},
		{[]string{"--max-topic-length", "0"}, "max-topic-length"},
		{[]string{"--max-client-id-len", "70000"}, "max-client-id-len"},
		{[]string{"--publish-rate", "-5"}, "publish-rate"},
		{[]string{"--auth-fail-rate", "-1"}, "auth-fail-rate"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := runServeConfig(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestAnonymousPolicy(t *testing.T) {
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1883}
	wild := &net.TCPAddr{IP: net.IPv4zero, Port: 1883}
	for _, tc := range []struct {
		sec      securityConfig
		addr     net.Addr
		want     bool
		whyMatch string
	}{
		{securityConfig{}, lo, true, "loopback"},
		{securityConfig{}, wild, false, "loopback"},
		{securityConfig{PasswordFile: "p"}, lo, false, "password file"},
		{securityConfig{AllowAnonymous: true}, wild, true, "allow-anonymous"},
		{securityConfig{AllowAnonymous: true, PasswordFile: "p"}, wild, true, "allow-anonymous"},
	} {
		got, why := tc.sec.anonymousOn(tc.addr)
		if got != tc.want || !strings.Contains(why, tc.whyMatch) {
			t.Errorf("%+v on %v: %v (%s)", tc.sec, tc.addr, got, why)
		}
	}
}
