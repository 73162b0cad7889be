package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

func mustRules(t *testing.T, lines ...string) []Rule {
	t.Helper()
	var rs []Rule
	for _, l := range lines {
		r, err := ParseRule(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		rs = append(rs, r)
	}
	return rs
}

func TestParseRule(t *testing.T) {
	r, err := ParseRule(`sensors/# both 2 "" edge/`)
	if err != nil {
		t.Fatal(err)
	}
	if r != (Rule{Pattern: "sensors/#", Direction: Both, QoS: 2, LocalPrefix: "", RemotePrefix: "edge/"}) {
		t.Fatalf("%+v", r)
	}
	if r, _ := ParseRule("a/#"); r.Direction != Out || r.QoS != DefaultQoS {
		t.Fatalf("defaults: %+v", r)
	}
	for _, bad := range []string{"", "a sideways", "a out 3", "a out 1 b c d"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestTopicMapping: renaming both ways, the first matching rule decides,
// an empty pattern renames one topic, the parent level of "prefix/#", and
// what cannot be mapped is reported so.
func TestTopicMapping(t *testing.T) {
	rs := mustRules(t,
		`sensors/# out 1 "" edge/`,
		`sensors/private/# out 1 "" never/`, // shadowed by the rule before
		`cmd/# in 1 local/ remote/`,
		`"" both 1 status/here status/there`,
		`x/# both 1 lx/ rx`,
	)
	out, in := outMap(rs), inMap(rs)
	for _, c := range []struct {
		m        *topicMap
		from, to string
		ok       bool
	}{
		{out, "sensors/a/b", "edge/sensors/a/b", true},
		{out, "sensors/private/1", "edge/sensors/private/1", true},
		{out, "other", "", false},
		{in, "remote/cmd/reboot", "local/cmd/reboot", true},
		{in, "cmd/reboot", "", false},
		{out, "status/here", "status/there", true},
		{in, "status/there", "status/here", true},
		{out, "status/here/not", "", false},
		{out, "lx/x/1", "rxx/1", true},
		{in, "rxx/1", "lx/x/1", true},
	} {
		to, ok := c.m.apply(c.from)
		if ok != c.ok || (ok && to != c.to) {
			t.Errorf("%s → %q %v, want %q %v", c.from, to, ok, c.to, c.ok)
		}
	}
	// Parent level: "a/#" matches "a"; renamed to the other prefix minus
	// its "/", or refused when the other prefix has none.
	pm := outMap(mustRules(t, `# out 1 a/ b/`))
	if to, ok := pm.apply("a"); !ok || to != "b" {
		t.Errorf("parent level: %q %v", to, ok)
	}
	nm := outMap(mustRules(t, `# out 1 a/ ""`))
	if _, ok := nm.apply("a"); ok {
		t.Errorf("parent level with an empty prefix mapped")
	}
}

func TestFiltersOfRules(t *testing.T) {
	rs := mustRules(t, `a/# out 1`, `a/# both 2`, `b/# in 0 l/ r/`)
	out := filters(rs, Out)
	if len(out) != 1 || out[0].Filter != "a/#" || out[0].QoS != 2 || !out[0].NoLocal || !out[0].RetainAsPublished || out[0].RetainHandling != 1 {
		t.Fatalf("out filters %+v", out)
	}
	in := filters(rs, In)
	if len(in) != 2 || in[0].Filter != "a/#" || in[1].Filter != "r/b/#" || in[1].QoS != 0 {
		t.Fatalf("in filters %+v", in)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Name: "c", Address: "example.org", Rules: mustRules(t, "a/#")}
	got, err := Validate([]Config{ok})
	if err != nil {
		t.Fatal(err)
	}
	c := got[0]
	if c.Address != "example.org:1883" || c.Protocol != wire.V311 || c.KeepAlive != DefaultKeepAlive || c.Window != DefaultWindow ||
		c.ReconnectMin != DefaultReconnectMin || !strings.HasSuffix(c.ClientID, ".c") || c.ClientIDLocal() != "$bridge/c" {
		t.Fatalf("defaults: %+v", c)
	}
	tlsOK := ok
	tlsOK.TLS = &TLSConfig{}
	if got, err := Validate([]Config{tlsOK}); err != nil || got[0].Address != "example.org:8883" {
		t.Fatalf("TLS default port: %v %v", got, err)
	}
	for _, c := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Name = "" }, "name"},
		{func(c *Config) { c.Name = "a b" }, "name"},
		{func(c *Config) { c.Address = "" }, "address"},
		{func(c *Config) { c.Address = "mqtt://x" }, "address"},
		{func(c *Config) { c.Address = "x:99999" }, "address"},
		{func(c *Config) { c.Rules = nil }, "topics"},
		{func(c *Config) { c.Rules = mustRules(t, `a/# out 1 x/+/ ""`) }, "topics[0]"},
		{func(c *Config) { c.Rules = mustRules(t, `$share/g/a out 1`) }, "topics[0]"},
		{func(c *Config) { c.KeepAlive = 1500 * time.Millisecond }, "keepalive"},
		{func(c *Config) { c.Window = 70000 }, "window"},
		{func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Minute, time.Second }, "reconnect-max"},
		{func(c *Config) { c.Password = "x" }, "password"},
		{func(c *Config) { c.TLS = &TLSConfig{CertFile: "x.pem"} }, "tls.key-file"},
		{func(c *Config) { c.TLS = &TLSConfig{CAFile: "/nonexistent/ca.pem"} }, "tls.ca-file"},
	} {
		bad := ok
		c.mut(&bad)
		_, err := Validate([]Config{bad})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %s", bad, err, c.want)
		}
	}
	if _, err := Validate([]Config{ok, ok}); err == nil || !strings.Contains(err.Error(), "also the name") {
		t.Errorf("duplicate names: %v", err)
	}
}
