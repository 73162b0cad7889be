package main

// Bridges (engine/bridge) in `cairn serve` and `cairn inspect bridges`.
//
// The config file's `bridges:` list declares them (a list of maps has no
// flag form, so this key is read from the file directly, like
// retained-ttl-filters). They start after recovery and before the MQTT
// listeners accept, so that every message published once the broker is up
// is queued for them, and stop before the broker shuts down; SIGHUP (or
// POST /v1/reload) rereads the list and applies the difference. The admin
// endpoint answers GET /v1/bridges with one JSON line per bridge; `cairn
// inspect bridges --admin` prints them, and `--data` shows the bridges'
// sessions (queue depth) of a stopped store.
//
//	bridges:
//	  - name: cloud
//	    address: mqtt.example.com:8883
//	    protocol: "5.0"          # or "3.1.1" (default)
//	    client-id: edge-17       # on the remote (default HOSTNAME.NAME)
//	    username: edge-17
//	    password-file: /etc/cairn/cloud.pass
//	    keepalive: 60s
//	    window: 64               # QoS 1/2 messages in flight each way
//	    reconnect-min: 1s
//	    reconnect-max: 2m
//	    tls: {ca-file: ca.pem, cert-file: edge.pem, key-file: edge.key}
//	    topics:
//	      - sensors/# out 1 "" edge-17/      # pattern direction qos local-prefix remote-prefix
//	      - {pattern: cmd/#, direction: in, qos: 2, local-prefix: "", remote-prefix: edge-17/}

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/wire"
)

const bridgesKey = "bridges"

type yamlTLS struct {
	CAFile             string `yaml:"ca-file"`
	CertFile           string `yaml:"cert-file"`
	KeyFile            string `yaml:"key-file"`
	ServerName         string `yaml:"server-name"`
	InsecureSkipVerify bool   `yaml:"insecure-skip-verify"`
}

type yamlBridge struct {
	Name          string        `yaml:"name"`
	Address       string        `yaml:"address"`
	Protocol      string        `yaml:"protocol"`
	ClientID      string        `yaml:"client-id"`
	Username      string        `yaml:"username"`
	Password      string        `yaml:"password"`
	PasswordFile  string        `yaml:"password-file"`
	KeepAlive     time.Duration `yaml:"keepalive"`
	SessionExpiry time.Duration `yaml:"session-expiry"`
	Window        int           `yaml:"window"`
	ReconnectMin  time.Duration `yaml:"reconnect-min"`
	ReconnectMax  time.Duration `yaml:"reconnect-max"`
	TryPrivate    *bool         `yaml:"try-private"`
	TLS           *yamlTLS      `yaml:"tls"`
	Topics        []yaml.Node   `yaml:"topics"`
}

type yamlRule struct {
	Pattern      string `yaml:"pattern"`
	Direction    string `yaml:"direction"`
	QoS          *int   `yaml:"qos"`
	LocalPrefix  string `yaml:"local-prefix"`
	RemotePrefix string `yaml:"remote-prefix"`
}

// loadBridges reads and checks the config file's bridges (none without a
// config file).
func loadBridges(c *cli.Context) ([]bridge.Config, error) {
	file := c.String("config")
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	cfgs, err := parseBridges(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	return bridge.Validate(cfgs)
}

// parseBridges decodes the bridges key of a config file; unknown keys
// inside a bridge are errors (a misspelt key must not silently mean a
// default).
func parseBridges(doc []byte) ([]bridge.Config, error) {
	var top struct {
		Bridges yaml.Node `yaml:"bridges"`
	}
	if err := yaml.Unmarshal(doc, &top); err != nil {
		return nil, err
	}
	n := &top.Bridges
	if n.Kind == 0 {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: %s must be a list of bridges", n.Line, bridgesKey)
	}
	var out []bridge.Config
	for i, bn := range n.Content {
		var yb yamlBridge
		if err := strictDecode(bn, &yb); err != nil {
			return nil, fmt.Errorf("%s[%d] (line %d): %w", bridgesKey, i, bn.Line, err)
		}
		c, err := yb.config()
		if err != nil {
			return nil, fmt.Errorf("%s[%d] (line %d): %w", bridgesKey, i, bn.Line, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// strictDecode decodes n into v (a pointer to a struct) refusing keys
// the struct does not name, at any depth of nested structs, with the
// file's line numbers.
func strictDecode(n *yaml.Node, v any) error {
	if err := checkKeys(n, reflect.TypeOf(v).Elem()); err != nil {
		return err
	}
	return n.Decode(v)
}

func checkKeys(n *yaml.Node, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return nil // a type mismatch is Decode's to report
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			fields[tag] = f.Type
			names = append(names, tag)
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown key %q (known: %s)", k.Line, k.Value, strings.Join(names, ", "))
		}
		if err := checkKeys(n.Content[i+1], ft); err != nil {
			return err
		}
	}
	return nil
}

func (yb *yamlBridge) config() (bridge.Config, error) {
	c := bridge.Config{
		Name: yb.Name, Address: yb.Address, ClientID: yb.ClientID, Username: yb.Username,
		Password: yb.Password, PasswordFile: yb.PasswordFile, KeepAlive: yb.KeepAlive,
		SessionExpiry: yb.SessionExpiry, Window: yb.Window, ReconnectMin: yb.ReconnectMin,
		ReconnectMax: yb.ReconnectMax, TryPrivate: yb.TryPrivate,
	}
	switch strings.TrimSpace(yb.Protocol) {
	case "", "3.1.1", "311", "4":
		c.Protocol = wire.V311
	case "5.0", "5":
		c.Protocol = wire.V5
	default:
		return c, fmt.Errorf("protocol: %q: want 3.1.1 or 5.0", yb.Protocol)
	}
	if t := yb.TLS; t != nil {
		c.TLS = &bridge.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
			ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	}
	for i := range yb.Topics {
		r, err := parseYAMLRule(&yb.Topics[i])
		if err != nil {
			return c, fmt.Errorf("topics[%d]: %w", i, err)
		}
		c.Rules = append(c.Rules, r)
	}
	return c, nil
}

// parseYAMLRule takes a rule as one line (mosquitto's syntax) or as a map.
func parseYAMLRule(n *yaml.Node) (bridge.Rule, error) {
	if n.Kind == yaml.ScalarNode {
		return bridge.ParseRule(n.Value)
	}
	var yr yamlRule
	if err := strictDecode(n, &yr); err != nil {
		return bridge.Rule{}, err
	}
	r := bridge.Rule{Pattern: yr.Pattern, Direction: bridge.Out, QoS: bridge.DefaultQoS,
		LocalPrefix: yr.LocalPrefix, RemotePrefix: yr.RemotePrefix}
	if yr.Direction != "" {
		d, err := bridge.ParseDirection(yr.Direction)
		if err != nil {
			return r, err
		}
		r.Direction = d
	}
	if yr.QoS != nil {
		if *yr.QoS < 0 || *yr.QoS > 2 {
			return r, fmt.Errorf("qos: %d: want 0, 1 or 2", *yr.QoS)
		}
		r.QoS = byte(*yr.QoS)
	}
	return r, nil
}

// startBridges starts the configured bridges on a recovered broker and
// registers their status on the admin endpoint. With no bridge configured
// it still runs: the sessions of bridges removed from the config stop
// queuing (engine/bridge/manager.go).
func startBridges(b *engine.Broker, cfgs []bridge.Config, adm *adminEndpoint, log *slog.Logger) (*bridge.Manager, error) {
	m, err := bridge.Start(b, cfgs, log)
	if err != nil {
		return nil, err
	}
	adm.handle("/v1/bridges", m.Handler())
	return m, nil
}

// reloadBridges makes SIGHUP and POST /v1/reload reread the config file's
// bridges list as well: unchanged bridges keep their links, changed ones
// restart with the new settings, new ones start and removed ones stop
// (bridge.Manager.Reload). A file that does not parse or validate changes
// nothing. Without a config file there is nothing to reread.
func reloadBridges(c *cli.Context, b *engine.Broker, m *bridge.Manager) {
	if c.String("config") == "" {
		return
	}
	b.OnReload("bridges", func() error {
		cfgs, err := loadBridges(c)
		if err != nil {
			return err
		}
		return m.Reload(cfgs)
	})
}

// inspectBridgesCommand is `cairn inspect bridges`.
func inspectBridgesCommand() *cli.Command {
	return &cli.Command{
		Name:  "bridges",
		Usage: "the bridges: state, queue depth, last error, rates (--data: their queues in a stopped store)",
		Flags: []cli.Flag{dataFlag(), adminFlag(), jsonFlag()}, Action: inspectBridges,
	}
}

func inspectBridges(c *cli.Context) error {
	if addr := c.String("admin"); addr != "" {
		if c.IsSet("data") {
			return errors.New("--data and --admin exclude each other: a stopped store or a running broker")
		}
		ctx, stop := context.WithTimeout(c.Context, time.Minute)
		defer stop()
		rs, err := rows[bridge.Status](ctx, newAdminClient(addr), "/v1/bridges", nil)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSONLines(c.App.Writer, rs)
		}
		return renderBridges(c.App.Writer, rs)
	}
	return withSource(c, func(ctx context.Context, src inspectSource) error {
		ss, err := src.Sessions(ctx)
		if err != nil {
			return err
		}
		var rs []bridge.Status
		for _, s := range ss {
			if !engine.IsInternalClientID(s.Client) {
				continue
			}
			rs = append(rs, bridge.Status{Name: strings.TrimPrefix(s.Client, engine.InternalPrefix), Session: s.Client,
				State: bridge.StateStopped, Since: s.DisconnectedAt, QueueDepth: s.Queued, QueueBytes: s.QueuedBytes})
		}
		if c.Bool("json") {
			return writeJSONLines(c.App.Writer, rs)
		}
		return renderBridges(c.App.Writer, rs)
	})
}

func renderBridges(w io.Writer, rs []bridge.Status) error {
	if len(rs) == 0 {
		_, err := fmt.Fprintln(w, "no bridges")
		return err
	}
	t := newTable(w)
	row(t, "NAME", "REMOTE", "STATE", "FOR", "QUEUED", "IN FLIGHT", "OUT", "OUT/S", "IN", "IN/S", "DROPPED", "LAST ERROR")
	for _, s := range rs {
		remote := s.Remote
		if remote == "" {
			remote = "-"
		} else {
			remote += " (" + s.Protocol
			if s.TLS {
				remote += ", TLS"
			}
			remote += ")"
		}
		lastErr := "-"
		if s.LastError != "" {
			lastErr = s.LastError + " (" + age(s.LastErrorAt) + " ago)"
		}
		row(t, s.Name, remote, s.State, age(s.Since), fmt.Sprintf("%d (%s)", s.QueueDepth, humanBytes(uint64(max(s.QueueBytes, 0)))),
			fmt.Sprintf("%d/%d", s.InflightOut, s.InflightIn), s.OutForwarded, fmt.Sprintf("%.1f", s.OutRate),
			s.InForwarded, fmt.Sprintf("%.1f", s.InRate), s.OutDropped+s.InDropped+s.QueueRejected, lastErr)
	}
	return t.Flush()
}
