package main

// The security side of `cairn serve`: TLS, password and ACL files,
// anonymous access, limits, and reloading on SIGHUP.
//
// Secure defaults: the TCP listener is on 127.0.0.1 unless told otherwise;
// anonymous clients are admitted only on loopback listeners, and on none
// once a password file is set, unless --allow-anonymous says otherwise. The
// startup log says which listener admits whom.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/auth"
	"github.com/cairn-mqtt/cairn/engine/listen"
)

// defaultTLSPort is the port of --listen-tls when the address has none.
const defaultTLSPort = "8883"

func securityFlags() []cli.Flag {
	d := engine.DefaultLimits()
	o := engine.DefaultOptions()
	str := func(name, usage, env string) cli.Flag {
		return altsrc.NewStringFlag(&cli.StringFlag{Name: name, Usage: usage, EnvVars: []string{env}})
	}
	num := func(name string, v int, usage, env string) cli.Flag {
		return altsrc.NewIntFlag(&cli.IntFlag{Name: name, Value: v, Usage: usage, EnvVars: []string{env}})
	}
	return []cli.Flag{
		str("listen-tls", "TLS listener address (port "+defaultTLSPort+" if none is given); needs --tls-cert and --tls-key", "CAIRN_LISTEN_TLS"),
		str("tls-cert", "PEM certificate chain of the TLS listener", "CAIRN_TLS_CERT"),
		str("tls-key", "PEM private key of the TLS listener", "CAIRN_TLS_KEY"),
		str("tls-client-ca", "PEM CA certificates whose client certificates are accepted (mutual TLS)", "CAIRN_TLS_CLIENT_CA"),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "tls-require-client-cert", Value: true, Usage: "with --tls-client-ca: refuse TLS clients without a valid certificate (false: verify one if given)", EnvVars: []string{"CAIRN_TLS_REQUIRE_CLIENT_CERT"}}),
		str("tls-cert-username", "take the user name of a TLS client from its verified certificate: cn, dns, email or uri (such a client needs no password)", "CAIRN_TLS_CERT_USERNAME"),
		str("password-file", "password file (cairn passwd); clients must then log in unless --allow-anonymous", "CAIRN_PASSWORD_FILE"),
		str("acl-file", "ACL file: what each user may publish and subscribe to; everything else is denied", "CAIRN_ACL_FILE"),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "allow-anonymous", Usage: "admit clients without credentials on every listener (default: only on loopback listeners, and only without a password file)", EnvVars: []string{"CAIRN_ALLOW_ANONYMOUS"}}),
		num("auth-fail-rate", 10, "failed logins allowed per minute per source address (0: no limit)", "CAIRN_AUTH_FAIL_RATE"),
		num("max-connections", d.MaxConnections, "open connections over all listeners (0: no limit)", "CAIRN_MAX_CONNECTIONS"),
		num("max-connections-per-ip", d.MaxConnectionsPerIP, "open connections from one IP address (0: no limit)", "CAIRN_MAX_CONNECTIONS_PER_IP"),
		num("max-client-id-len", o.MaxClientIDLen, "longest client identifier, bytes", "CAIRN_MAX_CLIENT_ID_LEN"),
		num("max-topic-length", d.MaxTopicLength, "longest topic name or filter, bytes", "CAIRN_MAX_TOPIC_LENGTH"),
		num("max-topic-levels", d.MaxTopicLevels, "most levels of a topic name or filter (0: no limit)", "CAIRN_MAX_TOPIC_LEVELS"),
		num("max-subscriptions", d.MaxSubscriptions, "subscriptions per client (0: no limit)", "CAIRN_MAX_SUBSCRIPTIONS"),
		num("max-queued-bytes", d.MaxQueuedBytes, "bytes of messages held in memory per client (0: no limit)", "CAIRN_MAX_QUEUED_BYTES"),
		num("max-queued-qos0", o.MaxQueuedQoS0, "QoS 0 messages held in memory per client", "CAIRN_MAX_QUEUED_QOS0"),
		num("max-inbound-bytes", d.MaxInboundBytes, "bytes of a client's messages awaiting their commit; its reader pauses beyond (0: no limit)", "CAIRN_MAX_INBOUND_BYTES"),
		num("publish-rate", 0, "PUBLISH packets per second per client; a faster client is slowed down (0: no limit)", "CAIRN_PUBLISH_RATE"),
		num("publish-burst", 0, "PUBLISH packets a client may send at once above its rate (0: one second's worth)", "CAIRN_PUBLISH_BURST"),
	}
}

// securityConfig is the merged security configuration.
type securityConfig struct {
	ListenTLS      string
	TLS            listen.TLSOptions
	CertUsername   listen.IdentityField
	PasswordFile   string
	ACLFile        string
	AllowAnonymous bool
	AuthFailRate   int
}

// loadSecurityConfig reads the security flags into sec and the engine
// options.
func loadSecurityConfig(c *cli.Context, sec *securityConfig, o *engine.Options) error {
	*sec = securityConfig{
		ListenTLS:      c.String("listen-tls"),
		PasswordFile:   c.String("password-file"),
		ACLFile:        c.String("acl-file"),
		AllowAnonymous: c.Bool("allow-anonymous"),
		AuthFailRate:   c.Int("auth-fail-rate"),
		TLS: listen.TLSOptions{
			CertFile:     c.String("tls-cert"),
			KeyFile:      c.String("tls-key"),
			ClientCAFile: c.String("tls-client-ca"),
		},
	}
	sec.TLS.RequireClientCert = sec.TLS.ClientCAFile != "" && c.Bool("tls-require-client-cert")
	if f := c.String("tls-cert-username"); f != "" {
		id, err := listen.ParseIdentityField(f)
		if err != nil {
			return fmt.Errorf("tls-cert-username: %w", err)
		}
		sec.CertUsername = id
	}
	switch {
	case sec.ListenTLS != "" && (sec.TLS.CertFile == "" || sec.TLS.KeyFile == ""):
		return errors.New("listen-tls: --tls-cert and --tls-key are both needed")
	case sec.ListenTLS == "" && c.String("listen-wss") == "" && (sec.TLS.CertFile != "" || sec.TLS.KeyFile != "" || sec.TLS.ClientCAFile != "" || sec.CertUsername != ""):
		// The wss listener (ops.go) uses the same certificate.
		return errors.New("tls-cert, tls-key, tls-client-ca and tls-cert-username need --listen-tls (or, but for tls-cert-username, --listen-wss)")
	case sec.ListenTLS == "" && sec.CertUsername != "":
		return errors.New("tls-cert-username needs --listen-tls (WebSocket clients are not named by their certificates)")
	case sec.CertUsername != "" && sec.TLS.ClientCAFile == "":
		return errors.New("tls-cert-username: needs --tls-client-ca (only verified certificates name users)")
	case sec.AuthFailRate < 0:
		return fmt.Errorf("auth-fail-rate: %d must not be negative", sec.AuthFailRate)
	}
	if sec.ListenTLS != "" {
		if _, _, err := net.SplitHostPort(sec.ListenTLS); err != nil {
			sec.ListenTLS = net.JoinHostPort(strings.Trim(sec.ListenTLS, "[]"), defaultTLSPort)
		}
	}

	// A limit of 0 on the command line is "no limit" (the engine's -1).
	off := func(name string) (int, error) {
		v := c.Int(name)
		switch {
		case v < 0:
			return 0, fmt.Errorf("%s: %d must not be negative (0 is no limit)", name, v)
		case v == 0:
			return -1, nil
		}
		return v, nil
	}
	l := &o.Limits
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"max-connections", &l.MaxConnections},
		{"max-connections-per-ip", &l.MaxConnectionsPerIP},
		{"max-topic-levels", &l.MaxTopicLevels},
		{"max-subscriptions", &l.MaxSubscriptions},
		{"max-queued-bytes", &l.MaxQueuedBytes},
		{"max-inbound-bytes", &l.MaxInboundBytes},
	} {
		v, err := off(f.name)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	ranges := []struct {
		name   string
		lo, hi int
		dst    *int
	}{
		{"max-topic-length", 1, 65535, &l.MaxTopicLength},
		{"max-client-id-len", 1, 65535, &o.MaxClientIDLen},
		{"max-queued-qos0", 1, 1 << 30, &o.MaxQueuedQoS0},
	}
	for _, r := range ranges {
		v := c.Int(r.name)
		if v < r.lo || v > r.hi {
			return fmt.Errorf("%s: %d is not in %d..%d", r.name, v, r.lo, r.hi)
		}
		*r.dst = v
	}
	rate, burst := c.Int("publish-rate"), c.Int("publish-burst")
	if rate < 0 || burst < 0 {
		return fmt.Errorf("publish-rate %d / publish-burst %d: must not be negative", rate, burst)
	}
	l.PublishRate, l.PublishBurst = float64(rate), burst
	return nil
}

// newPolicy loads the password and ACL files.
func newPolicy(sec *securityConfig) (*auth.Policy, error) {
	return auth.NewPolicy(auth.PolicyConfig{
		PasswordFile:          sec.PasswordFile,
		ACLFile:               sec.ACLFile,
		FailedLoginsPerMinute: sec.AuthFailRate,
	})
}

// anonymousOn says whether a listener bound to addr admits anonymous
// clients, and why (for the startup log).
func (sec *securityConfig) anonymousOn(addr net.Addr) (bool, string) {
	switch {
	case sec.AllowAnonymous:
		return true, "--allow-anonymous"
	case sec.PasswordFile != "":
		return false, "a password file is set"
	case listen.IsLoopback(addr):
		return true, "loopback listener without a password file"
	}
	return false, "not a loopback listener (--allow-anonymous admits anonymous clients)"
}

// serveListeners opens the TCP and (if configured) TLS listeners and starts
// serving them; each one's end is sent on served.
// It returns their URLs, for the startup summary.
func serveListeners(b *engine.Broker, cfg *serveConfig, log *slog.Logger, served chan<- error) (stop func(), urls []string, err error) {
	sec := &cfg.Sec
	var opened []net.Listener
	closeAll := func() {
		for _, l := range opened {
			l.Close()
		}
	}
	type lis struct {
		l  net.Listener
		lc engine.Listener
	}
	var ls []lis

	l, err := listenTCP(cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	opened = append(opened, l)
	anon, why := sec.anonymousOn(l.Addr())
	log.Info("listening", "transport", "tcp", "addr", l.Addr().String(), "version", buildVersion(), "anonymous", anon, "anonymous_why", why)
	ls = append(ls, lis{l, engine.Listener{Name: "tcp", AllowAnonymous: anon}})
	urls = append(urls, "mqtt://"+l.Addr().String())
	warnLocked(log, "tcp", anon, sec, false)

	if sec.ListenTLS != "" {
		t, err := listen.NewTLS(sec.TLS)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		b.OnReload("TLS certificates", t.Reload)
		tl, err := listenTCP(sec.ListenTLS)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("listening on %s: %w", sec.ListenTLS, err)
		}
		opened = append(opened, tl)
		anon, why := sec.anonymousOn(tl.Addr())
		clientCerts := "not asked for"
		switch {
		case sec.TLS.RequireClientCert:
			clientCerts = "required"
		case sec.TLS.ClientCAFile != "":
			clientCerts = "verified if given"
		}
		log.Info("listening", "transport", "tls", "addr", tl.Addr().String(), "anonymous", anon, "anonymous_why", why,
			"client_certificates", clientCerts, "certificate_username", string(sec.CertUsername), "cert_expires", t.NotAfter())
		ls = append(ls, lis{tl, engine.Listener{Name: "tls", TLS: t.Config(), AllowAnonymous: anon, CertUsername: sec.CertUsername}})
		urls = append(urls, "mqtts://"+tl.Addr().String())
		warnLocked(log, "tls", anon, sec, sec.CertUsername != "")
	}
	for _, x := range ls {
		go func() { served <- b.ServeListener(x.l, x.lc) }()
	}
	return closeAll, urls, nil
}

// warnLocked warns about a listener nobody can use.
func warnLocked(log *slog.Logger, name string, anon bool, sec *securityConfig, certs bool) {
	if !anon && sec.PasswordFile == "" && !certs {
		log.Warn("no client can connect on this listener: anonymous clients are refused and there is no password file or certificate user name",
			"listener", name)
	}
}

// logAuth describes the authentication configuration at startup.
func logAuth(log *slog.Logger, sec *securityConfig, p *auth.Policy) {
	var attrs []any
	if pw := p.Passwords(); pw != nil {
		attrs = append(attrs, "password_file", pw.Path(), "users", pw.Len())
	} else {
		attrs = append(attrs, "password_file", "none")
	}
	if acl := p.ACL(); acl != nil {
		attrs = append(attrs, "acl_file", acl.Path(), "acl_rules", acl.Rules())
	} else {
		attrs = append(attrs, "acl_file", "none (every client may publish and subscribe to everything)")
	}
	attrs = append(attrs, "failed_logins_per_minute", sec.AuthFailRate)
	log.Info("authentication", attrs...)
	if p.ACL() != nil && p.ACL().PerUser() && p.Passwords() == nil && sec.CertUsername == "" {
		log.Warn("the ACL's per-user rules apply to no one: without a password file or certificate user names every client is anonymous")
	}
}

// reloadOnHUP reloads the password, ACL and certificate files (and the
// config file's bridges) on SIGHUP until stop is called.
func reloadOnHUP(b *engine.Broker, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading password, ACL and certificate files and bridges")
				_ = b.Reload() // logs what failed; the old rules stay
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}

// listenTCP opens an MQTT listener without Go's default TCP keep-alive on
// accepted connections: MQTT's own keep alive finds dead peers, and the
// broker enables TCP keep-alive for the clients that ask for none
// (engine/tcpkeepalive.go).
func listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", addr)
}
