package main

// The operations side of `cairn serve`: the WebSocket listeners (ws and
// wss), $SYS topics, Prometheus metrics on the admin endpoint, and the
// startup summary.
//
// The ws listener is on by default, on loopback (127.0.0.1:8083, path
// /mqtt), like the TCP and admin listeners: browsers on the same machine
// can connect out of the box, nothing is exposed beyond it, and
// --listen-ws "" turns it off. Cross-origin pages are refused unless
// --ws-origins allows them. wss is off until --listen-wss is given; it uses
// the TLS listener's certificate and client-certificate settings
// (--tls-cert, --tls-key, --tls-client-ca; security.go), reloaded on
// SIGHUP like them. Both listeners count toward the connection limits and
// admit anonymous clients by the same rule as the TCP listeners.

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/listen"
	"github.com/cairn-mqtt/cairn/engine/metrics"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
)

const (
	defaultListenWS    = "127.0.0.1:8083"
	defaultSysInterval = 10 * time.Second
)

func opsFlags() []cli.Flag {
	str := func(name, value, usage, env string) cli.Flag {
		return altsrc.NewStringFlag(&cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: []string{env}})
	}
	return []cli.Flag{
		str("listen-ws", defaultListenWS, "WebSocket listener address (MQTT over ws://ADDR/mqtt); empty disables it", "CAIRN_LISTEN_WS"),
		str("listen-wss", "", "WebSocket over TLS listener address (wss://ADDR/mqtt); uses --tls-cert and --tls-key", "CAIRN_LISTEN_WSS"),
		str("ws-path", listen.DefaultWSPath, "URL path of the WebSocket listeners", "CAIRN_WS_PATH"),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "ws-origins", Usage: "web origins (host patterns such as *.example.com or localhost:*; * for any) whose pages may connect over WebSocket besides the broker's own; requests without an Origin (non-browser clients) are always accepted", EnvVars: []string{"CAIRN_WS_ORIGINS"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "sys-interval", Value: defaultSysInterval, Usage: "how often the $SYS/broker/... topics are published (0: never)", EnvVars: []string{"CAIRN_SYS_INTERVAL"}}),
	}
}

// opsConfig is the merged operations configuration.
type opsConfig struct {
	ListenWS, ListenWSS string
	WSPath              string
	WSOrigins           []string
	SysInterval         time.Duration
}

func loadOps(c *cli.Context, o *opsConfig, sec *securityConfig) error {
	*o = opsConfig{
		ListenWS:    c.String("listen-ws"),
		ListenWSS:   c.String("listen-wss"),
		WSPath:      c.String("ws-path"),
		WSOrigins:   c.StringSlice("ws-origins"),
		SysInterval: c.Duration("sys-interval"),
	}
	if len(o.WSOrigins) == 0 {
		o.WSOrigins = nil // the same whether unset or set to an empty list
	}
	switch {
	case !strings.HasPrefix(o.WSPath, "/"):
		return fmt.Errorf("ws-path: %q must begin with /", o.WSPath)
	case o.ListenWSS != "" && (sec.TLS.CertFile == "" || sec.TLS.KeyFile == ""):
		return errors.New("listen-wss: --tls-cert and --tls-key are both needed")
	case o.SysInterval < 0 || (o.SysInterval > 0 && o.SysInterval < 100*time.Millisecond):
		return fmt.Errorf("sys-interval: %v: want 0 (off) or at least 100ms", o.SysInterval)
	}
	for _, p := range o.WSOrigins {
		if strings.TrimSpace(p) == "" {
			return errors.New("ws-origins: an empty pattern")
		}
	}
	if err := listen.ValidateOriginPatterns(o.WSOrigins); err != nil {
		return fmt.Errorf("ws-origins: %w", err)
	}
	return nil
}

// startWebSockets opens the ws and wss listeners and serves them; each
// one's end is sent on served. It returns their URLs.
func startWebSockets(b *engine.Broker, cfg *serveConfig, m *metrics.Metrics, log *slog.Logger, served chan<- error) (urls []string, stop func(), err error) {
	o, sec := &cfg.Ops, &cfg.Sec
	var opened []*listen.WSListener
	stop = func() {
		for _, l := range opened {
			l.Close()
		}
	}
	patterns := o.WSOrigins
	any := false
	for _, p := range patterns {
		any = any || p == "*"
	}
	open := func(name, addr string, wo listen.WSOptions) error {
		wo.Path, wo.OriginPatterns, wo.Logger = o.WSPath, patterns, log
		l, err := listen.ListenWS(addr, wo)
		if err != nil {
			return err
		}
		opened = append(opened, l)
		m.AddWebSocket(name, l)
		origins := "same origin only (and clients without an Origin header)"
		switch {
		case any:
			origins = "any"
		case len(patterns) > 0:
			origins = "same origin and " + strings.Join(patterns, ", ")
		}
		anon, why := sec.anonymousOn(l.Addr())
		log.Info("listening", "transport", name, "addr", l.Addr().String(), "url", l.URL(), "subprotocols", strings.Join(listen.WSSubprotocols, ","),
			"web_origins", origins, "anonymous", anon, "anonymous_why", why)
		warnLocked(log, name, anon, sec, false)
		urls = append(urls, l.URL())
		lc := engine.Listener{Name: name, AllowAnonymous: anon}
		go func() { served <- b.ServeListener(l, lc) }()
		return nil
	}
	if o.ListenWS != "" {
		if err := open("ws", o.ListenWS, listen.WSOptions{}); err != nil {
			stop()
			return nil, nil, err
		}
	}
	if o.ListenWSS != "" {
		t, err := listen.NewTLS(sec.TLS)
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("wss: %w", err)
		}
		b.OnReload("wss certificates", t.Reload)
		if err := open("wss", o.ListenWSS, listen.WSOptions{TLS: t.Config()}); err != nil {
			stop()
			return nil, nil, err
		}
	}
	return urls, stop, nil
}

// logSummary is the one line that says what the broker is: its listeners,
// its store and its limits.
func logSummary(log *slog.Logger, cfg *serveConfig, mqttURLs, wsURLs []string, adm *adminEndpoint, st *store.Store, rep recovery.Report) {
	var listeners []any
	for _, u := range append(append([]string(nil), mqttURLs...), wsURLs...) {
		listeners = append(listeners, strings.SplitN(u, ":", 2)[0], u)
	}
	if adm != nil {
		listeners = append(listeners, "admin", "http://"+adm.addr+" (/metrics /healthz /readyz /v1/...)")
	} else {
		listeners = append(listeners, "admin", "disabled")
	}
	var disk uint64
	if m := st.Metrics(); m != nil {
		disk = m.DiskSpaceUsage()
	}
	e := &cfg.Engine
	qlimit := "unlimited"
	if e.Maint.QueueLimitMessages > 0 || e.Maint.QueueLimitBytes > 0 {
		qlimit = fmt.Sprintf("%d messages / %d bytes, %s", e.Maint.QueueLimitMessages, e.Maint.QueueLimitBytes, e.Maint.QueueLimitPolicy)
	}
	rlimit := "unlimited"
	if e.Maint.RetainedLimitMessages > 0 || e.Maint.RetainedLimitBytes > 0 {
		rlimit = fmt.Sprintf("messages %s, bytes %s", limitText(e.Maint.RetainedLimitMessages), limitText(int(e.Maint.RetainedLimitBytes)))
	}
	sys := "off"
	if cfg.Ops.SysInterval > 0 {
		sys = "every " + fmtDuration(cfg.Ops.SysInterval)
	}
	log.Info("cairn ready",
		"version", buildVersion(),
		slog.Group("listeners", listeners...),
		slog.Group("store", "dir", cfg.Data, "disk_bytes", disk, "sessions", rep.Sessions, "queued", rep.Queued, "retained", rep.Retained, "recovered_in", rep.Took.String()),
		slog.Group("limits", "max_connections", limitText(e.Limits.MaxConnections), "max_connections_per_ip", limitText(e.Limits.MaxConnectionsPerIP),
			"max_packet_size", e.MaxPacketSize, "max_inflight", e.MaxInflight, "max_queued_memory", e.MaxQueuedMemory,
			"receive_maximum", e.Features.ReceiveMaximum, "connect_timeout", e.ConnectTimeout.String(), "queue_limit", qlimit, "retained_limit", rlimit,
			"max_subscriptions", limitText(e.Limits.MaxSubscriptions), "publish_rate", rateText(e.Limits.PublishRate),
			"min_free_space", minFreeText(cfg.MinFreeSpace)),
		slog.Group("auth", "password_file", orNone(cfg.Sec.PasswordFile), "acl_file", orNone(cfg.Sec.ACLFile),
			"allow_anonymous", cfg.Sec.AllowAnonymous, "tls_client_ca", orNone(cfg.Sec.TLS.ClientCAFile)),
		"sys", sys)
}

func rateText(r float64) string {
	if r <= 0 {
		return "none"
	}
	return fmt.Sprint(r, "/s")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// limitText is a limit for the summary: the engine's -1 (or 0) is none.
func limitText(n int) string {
	if n <= 0 {
		return "none"
	}
	return fmt.Sprint(n)
}

func minFreeText(n int64) string {
	switch {
	case n == 0:
		return "auto"
	case n < 0:
		return "none"
	}
	return fmt.Sprint(n)
}
