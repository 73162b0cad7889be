package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/metrics"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "cairn.yaml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// runServeLog is runServeConfig that also returns the log settings serve
// would use.
func runServeLog(t *testing.T, args ...string) (level, format string, err error) {
	t.Helper()
	app := newApp()
	for _, cmd := range app.Commands {
		if cmd.Name == "serve" {
			cmd.Action = func(c *cli.Context) error {
				level, format = c.String("log-level"), c.String("log-format")
				_, err := loadServeConfig(c)
				return err
			}
		}
	}
	app.Writer, app.ErrWriter = os.Stderr, os.Stderr
	err = app.Run(append([]string{"cairn", "serve"}, args...))
	return level, format, err
}

// TestConfigFileErrors: unknown keys, repeated keys and values of the wrong
// type stop serve with an error naming the file, the line and the key.
func TestConfigFileErrors(t *testing.T) {
	cases := []struct {
		body string
		want []string
	}{
		{"listen: 127.0.0.1:1\nmax-inflght: 5\n", []string{"line 2", `unknown key "max-inflght"`, `did you mean "max-inflight"`}},
		{"frobnicate: yes\n", []string{"line 1", `unknown key "frobnicate"`, "cairn config example"}},
		{"config: other.yaml\n", []string{`unknown key "config"`}},
		{"cpuprofile: /tmp/x\n", []string{`unknown key "cpuprofile"`}},
		{"max-inflight: 5\nmax-inflight: 6\n", []string{"line 2", `"max-inflight" given twice (first at line 1)`}},
		{"max-inflight: lots\n", []string{"line 1", "max-inflight", `want a whole number, not "lots"`}},
		{"max-inflight: 1.5\n", []string{"max-inflight", "whole number"}},
		{"retain-available: maybe\n", []string{"retain-available", `want true or false, not "maybe"`}},
		{"connect-timeout: 10\n", []string{"connect-timeout", `duration such as`, `not "10"`}},
		{"sys-interval: soon\n", []string{"sys-interval", "duration"}},
		{"listen: [a, b]\n", []string{"listen", "not a list or a map"}},
		{"ws-origins: {a: b}\n", []string{"ws-origins", "want a list, not a map"}},
		{"retained-ttl-filters: 1h\n", []string{"retained-ttl-filters", "map of topic filter"}},
		{"log-level: loud\n", []string{"log-level", "debug, info, warn or error"}},
		{"log-format: xml\n", []string{"log-format", "auto, text or json"}},
		{"- listen\n", []string{"must be a map of setting: value"}},
		{"listen: [\n", []string{"not valid YAML"}},
	}
	for _, tc := range cases {
		t.Run(strings.TrimSpace(tc.body), func(t *testing.T) {
			file := writeConfig(t, tc.body)
			_, err := runServeConfig(t, "--config", file)
			if err == nil {
				t.Fatalf("%q was accepted", tc.body)
			}
			for _, w := range append(tc.want, file) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestConfigFileValues: values altsrc alone would refuse or drop are read:
// a number for a size, 0 for a duration, a list, the global log settings
// (which the environment and the command line still override).
func TestConfigFileValues(t *testing.T) {
	file := writeConfig(t, "queue-limit-bytes: 1048576\nqueue-limit-messages: 10\ncompact-interval: 0\nws-origins: [\"*.example.org\", \"localhost:*\"]\n"+
		"listen-ws: \"\"\nsys-interval: 2s\nlog-level: debug\nlog-format: text\nretained-ttl-filters:\n  \"a/#\": 1h\n")
	cfg, err := runServeConfig(t, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Engine.Maint.QueueLimitBytes != 1<<20 || cfg.CompactInterval != 0 || cfg.Ops.ListenWS != "" || cfg.Ops.SysInterval != 2*time.Second ||
		!reflect.DeepEqual(cfg.Ops.WSOrigins, []string{"*.example.org", "localhost:*"}) || len(cfg.Engine.Maint.RetainedTTLRules) != 1 {
		t.Fatalf("from the file: %+v", cfg)
	}
	level, format, err := runServeLog(t, "--config", file)
	if err != nil || level != "debug" || format != "text" {
		t.Fatalf("log settings from the file: %q %q %v", level, format, err)
	}
	t.Setenv("CAIRN_LOG_LEVEL", "warn")
	level, format, err = runServeLog(t, "--config", file)
	if err != nil || level != "warn" || format != "text" {
		t.Fatalf("CAIRN_LOG_LEVEL over the file: %q %q %v", level, format, err)
	}
}

// TestConfigPrecedenceOps: flag over environment over file over default,
// for the new settings too.
func TestConfigPrecedenceOps(t *testing.T) {
	file := writeConfig(t, "listen-ws: 127.0.0.1:9001\nsys-interval: 3s\nws-path: /from-file\n")
	cfg, err := runServeConfig(t)
	if err != nil || cfg.Ops.ListenWS != defaultListenWS || cfg.Ops.SysInterval != defaultSysInterval || cfg.Ops.WSPath != "/mqtt" {
		t.Fatalf("defaults: %+v %v", cfg.Ops, err)
	}
	cfg, err = runServeConfig(t, "--config", file)
	if err != nil || cfg.Ops.ListenWS != "127.0.0.1:9001" || cfg.Ops.SysInterval != 3*time.Second || cfg.Ops.WSPath != "/from-file" {
		t.Fatalf("file: %+v %v", cfg.Ops, err)
	}
	t.Setenv("CAIRN_LISTEN_WS", "127.0.0.1:9002")
	t.Setenv("CAIRN_SYS_INTERVAL", "4s")
	cfg, err = runServeConfig(t, "--config", file)
	if err != nil || cfg.Ops.ListenWS != "127.0.0.1:9002" || cfg.Ops.SysInterval != 4*time.Second || cfg.Ops.WSPath != "/from-file" {
		t.Fatalf("env over file: %+v %v", cfg.Ops, err)
	}
	cfg, err = runServeConfig(t, "--config", file, "--listen-ws", "", "--sys-interval", "0")
	if err != nil || cfg.Ops.ListenWS != "" || cfg.Ops.SysInterval != 0 {
		t.Fatalf("flag over env: %+v %v", cfg.Ops, err)
	}
}

// TestServeOpsConfigErrors: bad values from flags and the environment name
// their setting.
func TestServeOpsConfigErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  [2]string
		want string
	}{
		{args: []string{"--ws-path", "mqtt"}, want: "ws-path"},
		{args: []string{"--listen-wss", "127.0.0.1:0"}, want: "listen-wss: --tls-cert and --tls-key"},
		{args: []string{"--listen-wss", "127.0.0.1:0", "--tls-cert", "c.pem"}, want: "listen-wss: --tls-cert and --tls-key"},
		{args: []string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, want: "need --listen-tls (or, but for tls-cert-username, --listen-wss)"},
		{args: []string{"--listen-wss", "127.0.0.1:0", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem", "--tls-cert-username", "cn"},
			want: "tls-cert-username needs --listen-tls"},
		{args: []string{"--sys-interval", "50ms"}, want: "sys-interval"},
		{args: []string{"--sys-interval", "-1s"}, want: "sys-interval"},
		{args: []string{"--ws-origins", "[x"}, want: "ws-origins"},
		{env: [2]string{"CAIRN_MAX_INFLIGHT", "many"}, want: "max-inflight"},
		{env: [2]string{"CAIRN_SYS_INTERVAL", "often"}, want: "sys-interval"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(append(tc.args, tc.env[0]), " "), func(t *testing.T) {
			if tc.env[0] != "" {
				t.Setenv(tc.env[0], tc.env[1])
			}
			_, err := runServeConfig(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// TestConfigExample: `cairn config example` lists every setting of serve
// (it is generated from the flags, so a new flag shows up by itself), and
// the file it prints is valid and means exactly the defaults.
func TestConfigExample(t *testing.T) {
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	if err := app.Run([]string{"cairn", "config", "example"}); err != nil {
		t.Fatal(err)
	}
	example := out.String()
	for _, f := range serveFlags() {
		name := f.Names()[0]
		if name == "config" || flagKind(f) == "" {
			continue
		}
		key := name
		if name == "retained-ttl-filter" {
			key = ttlFiltersKey
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `: `).MatchString(example) {
			t.Errorf("the example lacks the setting %s", key)
		}
		if !strings.Contains(example, "flag --"+name) {
			t.Errorf("the example does not name the flag --%s", name)
		}
	}
	for _, k := range globalFileKeys {
		if !strings.Contains(example, "\n"+k+": ") {
			t.Errorf("the example lacks %s", k)
		}
	}
	if !strings.Contains(example, "# flag --max-inflight, environment CAIRN_MAX_INFLIGHT\nmax-inflight: 64\n") {
		t.Errorf("an entry is not as documented:\n%s", example)
	}
	file := writeConfig(t, example)
	fromFile, err := runServeConfig(t, "--config", file)
	if err != nil {
		t.Fatalf("the example is not a valid config: %v\n%s", err, example)
	}
	defaults, err := runServeConfig(t)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFile, defaults) {
		t.Fatalf("the example does not mean the defaults:\nfile     %+v\ndefaults %+v", fromFile, defaults)
	}
}

// TestReadmeConfigReference: the README's configuration table has a row
// for every setting.
func TestReadmeConfigReference(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range settingNames() {
		if !bytes.Contains(readme, []byte("| `--"+name)) {
			t.Errorf("README.md: no row for --%s in the configuration reference", name)
		}
	}
}

// TestReadmeMetricsAndSys: the README's metrics list names every family
// /metrics exposes and its $SYS table every topic.
func TestReadmeMetricsAndSys(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(metrics.Names(), metrics.BridgeNames()...) {
		if !bytes.Contains(readme, []byte("`"+name+"`")) {
			t.Errorf("README.md: metric %s is not listed", name)
		}
	}
	for _, topic := range engine.SysTopics {
		if !bytes.Contains(readme, []byte("`"+topic+"`")) {
			t.Errorf("README.md: $SYS topic %s is not listed", topic)
		}
	}
}

// TestConfigPrecedenceAllSources: the security, free-space and admin
// settings follow the same model: flag over environment over file over
// default, each layer checked on its own.
func TestConfigPrecedenceAllSources(t *testing.T) {
	file := writeConfig(t, "min-free-space: 2GiB\nadmin: 127.0.0.1:7001\nmax-connections: 11\npassword-file: /from/file\n"+
		"listen-wss: 127.0.0.1:7002\ntls-cert: /file.pem\ntls-key: /file.key\nmax-topic-levels: 9\n")
	get := func(args ...string) serveConfig {
		t.Helper()
		cfg, err := runServeConfig(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	type view struct {
		free                 int64
		admin, pw, wss, cert string
		conns, levels        int
	}
	see := func(c serveConfig) view {
		return view{c.MinFreeSpace, c.Admin, c.Sec.PasswordFile, c.Ops.ListenWSS, c.Sec.TLS.CertFile, c.Engine.Limits.MaxConnections, c.Engine.Limits.MaxTopicLevels}
	}
	if got, want := see(get()), (view{0, defaultAdmin, "", "", "", 16384, 128}); got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}
	if got, want := see(get("--config", file)), (view{2 << 30, "127.0.0.1:7001", "/from/file", "127.0.0.1:7002", "/file.pem", 11, 9}); got != want {
		t.Fatalf("file %+v, want %+v", got, want)
	}
	t.Setenv("CAIRN_MIN_FREE_SPACE", "3GiB")
	t.Setenv("CAIRN_ADMIN", "127.0.0.1:7003")
	t.Setenv("CAIRN_MAX_CONNECTIONS", "12")
	t.Setenv("CAIRN_TLS_CERT", "/env.pem")
	if got, want := see(get("--config", file)), (view{3 << 30, "127.0.0.1:7003", "/from/file", "127.0.0.1:7002", "/env.pem", 12, 9}); got != want {
		t.Fatalf("environment over file %+v, want %+v", got, want)
	}
	got := see(get("--config", file, "--min-free-space", "0", "--admin", "", "--max-connections", "13", "--tls-cert", "/flag.pem", "--password-file", "/flag"))
	if want := (view{-1, "", "/flag", "127.0.0.1:7002", "/flag.pem", 13, 9}); got != want {
		t.Fatalf("flags over environment %+v, want %+v", got, want)
	}
}

// TestConfigFileErrorsAllSettings: the file checker knows the security,
// free-space and admin keys (a typo is named with its suggestion, a wrong
// type names the key and line), and their values are checked too.
func TestConfigFileErrorsAllSettings(t *testing.T) {
	cases := []struct {
		body string
		want []string
	}{
		{"tls-cert-usernme: cn\n", []string{"line 1", `unknown key "tls-cert-usernme"`, `did you mean "tls-cert-username"`}},
		{"min-free-spce: 1GiB\n", []string{`unknown key "min-free-spce"`, `did you mean "min-free-space"`}},
		{"admn: 127.0.0.1:1\n", []string{`unknown key "admn"`, `did you mean "admin"`}},
		{"max-connections: lots\n", []string{"line 1", "max-connections", "whole number"}},
		{"allow-anonymous: perhaps\n", []string{"allow-anonymous", "true or false"}},
		{"listen-tls: [a]\n", []string{"listen-tls", "not a list or a map"}},
		{"fault-fsync-error-file: /x\n", []string{`unknown key "fault-fsync-error-file"`}}, // hidden test hooks are not settings
		{"min-free-space: plenty\n", []string{"min-free-space"}},
		{"tls-cert-username: cn\n", []string{"tls-cert-username"}},
		{"auth-fail-rate: -1\n", []string{"auth-fail-rate"}},
	}
	for _, tc := range cases {
		t.Run(strings.TrimSpace(tc.body), func(t *testing.T) {
			_, err := runServeConfig(t, "--config", writeConfig(t, tc.body))
			if err == nil {
				t.Fatalf("%q was accepted", tc.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestConfigExampleBridges: the file checker knows the bridges key (a
// list; anything else names it), and the example's commented bridge,
// uncommented, is a valid one.
func TestConfigExampleBridges(t *testing.T) {
	if _, err := runServeConfig(t, "--config", writeConfig(t, "bridges: 5\n")); err == nil || !strings.Contains(err.Error(), "bridges") {
		t.Fatalf("bridges: 5: %v", err)
	}
	i := strings.Index(bridgesExample, "bridges: []\n")
	if i < 0 {
		t.Fatal("the example has no bridges key")
	}
	var body strings.Builder
	body.WriteString("bridges:\n")
	for _, l := range strings.Split(bridgesExample[i+len("bridges: []\n"):], "\n") {
		l = strings.TrimPrefix(l, "#")
		if strings.Contains(l, "password-file") || strings.Contains(l, "tls:") {
			continue // name files this test does not have
		}
		body.WriteString(l + "\n")
	}
	cfg, err := runServeConfig(t, "--config", writeConfig(t, body.String()))
	if err != nil {
		t.Fatalf("the example bridge is not valid: %v\n%s", err, body.String())
	}
	if len(cfg.Bridges) != 1 || cfg.Bridges[0].Name != "cloud" {
		t.Fatalf("bridges %+v", cfg.Bridges)
	}
}
