package main

// The configuration model of `cairn serve`: one set of settings, each
// given by a command-line flag, a CAIRN_* environment variable or a key of
// the YAML file (--config), in that order of precedence, else its default.
// The flag definitions are the single source: the file's keys are the flag
// names, `cairn config example` prints every one of them from the
// definitions, and the README's table is checked against them.
//
// Invariants:
//   - Every key of the file is known and its value has the flag's type, or
//     the broker does not start: the error names the file, the line and
//     the key (altsrc alone ignores unknown keys and rejects, without a
//     line, a number where a string is expected).
//   - A key may appear once; flags that make no sense in a file (--config
//     itself, hidden debugging flags) are not keys.
//   - The global --log-level and --log-format are keys too; the command
//     line and the environment still win.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// globalFileKeys are the app-level flags the file may set.
var globalFileKeys = []string{"log-level", "log-format"}

// loadConfigFile is serve's Before: it checks the --config file and applies
// its values to the flags not given on the command line or in the
// environment.
func loadConfigFile(c *cli.Context, flags []cli.Flag) error {
	file := c.String("config")
	if file == "" {
		return nil
	}
	vals, lines, err := readConfigFile(file, flags)
	if err != nil {
		return err
	}
	applied := map[string]int{} // the keys whose file value is used: not given otherwise
	for name, line := range lines {
		if !c.IsSet(name) {
			applied[name] = line
		}
	}
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]interface{}{}
	}
	c.App.Metadata[configLinesKey] = configLines{file: file, lines: applied}
	if err := altsrc.ApplyInputSourceValues(c, altsrc.NewMapInputSource(file, vals), flags); err != nil {
		return fmt.Errorf("config %s: %w", file, err)
	}
	for _, name := range globalFileKeys {
		v, ok := vals[name]
		if !ok || c.IsSet(name) {
			continue
		}
		for _, ctx := range c.Lineage()[1:] {
			if ctx.Set(name, v.(string)) == nil {
				break
			}
		}
	}
	return nil
}

// bridgesExample ends `cairn config example` (bridgesKey, bridges.go: the
// file's list of bridges, which has no flag or environment variable): no bridge, and a commented
// one with every key (README, Bridges).
const bridgesExample = `
# Bridges to other brokers (config file only; see the README, Bridges).
# None by default; each one looks like:
bridges: []
#  - name: cloud                      # its queue: the session $bridge/cloud
#    address: mqtt.example.org:8883
#    protocol: "5.0"                  # or "3.1.1" (default)
#    client-id: edge-17               # on the remote (default HOSTNAME.NAME)
#    username: edge-17
#    password-file: /etc/cairn/cloud.pass
#    tls: {ca-file: ca.pem, cert-file: edge.pem, key-file: edge.key}
#    keepalive: 60s
#    window: 64                       # QoS 1/2 messages in flight each way
#    reconnect-min: 1s
#    reconnect-max: 2m
#    topics:
#      - sensors/# out 1 "" edge-17/
#      - {pattern: cmd/#, direction: in, qos: 2, remote-prefix: edge-17/}
`

// fileKey is what the file may say about one key.
type fileKey struct {
	flag cli.Flag // nil for the keys that are not flags
	kind string   // string, int, bool, duration, list, map, log-level, log-format
}

// fileKeys indexes the keys a config file may hold.
func fileKeys(flags []cli.Flag) map[string]fileKey {
	keys := map[string]fileKey{
		ttlFiltersKey: {kind: "map"},
		bridgesKey:    {kind: "bridges"},
		"log-level":   {kind: "log-level"},
		"log-format":  {kind: "log-format"},
	}
	for _, f := range flags {
		kind := flagKind(f)
		if kind == "" {
			continue // not read from the file (altsrc does not wrap it)
		}
		for _, n := range f.Names() {
			keys[n] = fileKey{flag: f, kind: kind}
		}
	}
	return keys
}

// flagKind is the file value type of an altsrc flag ("" for flags the file
// cannot set).
func flagKind(f cli.Flag) string {
	switch f.(type) {
	case *altsrc.StringFlag:
		return "string"
	case *altsrc.IntFlag:
		return "int"
	case *altsrc.BoolFlag:
		return "bool"
	case *altsrc.DurationFlag:
		return "duration"
	case *altsrc.StringSliceFlag:
		return "list"
	}
	return ""
}

// readConfigFile parses and checks the file, returning its values in the
// types altsrc expects.
func readConfigFile(file string, flags []cli.Flag) (vals map[interface{}]interface{}, lines map[string]int, err error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("config %s: not valid YAML: %w", file, err)
	}
	vals, lines = map[interface{}]interface{}{}, map[string]int{}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return vals, lines, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return vals, lines, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("config %s line %d: the file must be a map of setting: value (see cairn config example)", file, root.Line)
	}
	keys := fileKeys(flags)
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		at := fmt.Sprintf("config %s line %d", file, k.Line)
		if k.Kind != yaml.ScalarNode {
			return nil, nil, fmt.Errorf("%s: a key must be a setting name", at)
		}
		name := k.Value
		if first, dup := seen[name]; dup {
			return nil, nil, fmt.Errorf("%s: key %q given twice (first at line %d)", at, name, first)
		}
		seen[name] = k.Line
		fk, ok := keys[name]
		if !ok {
			return nil, nil, fmt.Errorf("%s: unknown key %q%s", at, name, suggestKey(name, keys))
		}
		val, err := fileValue(fk.kind, v)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s: %w", at, name, err)
		}
		vals[name] = val
		lines[name] = k.Line
	}
	return vals, lines, nil
}

// configLinesKey is where loadConfigFile leaves, in the app's Metadata, the
// lines of the file's keys whose values are in force.
const configLinesKey = "config-lines"

type configLines struct {
	file  string
	lines map[string]int
}

// atConfigLine prefixes an error about a setting ("queue-limit-bytes: ...",
// found when the values are put to use, after the file was read) with the
// file and line it came from, when the value in force is the file's.
func atConfigLine(c *cli.Context, err error) error {
	if err == nil {
		return nil
	}
	cl, ok := c.App.Metadata[configLinesKey].(configLines)
	if !ok {
		return err
	}
	name, _, found := strings.Cut(err.Error(), ":")
	if line, ok := cl.lines[name]; found && ok {
		return fmt.Errorf("config %s line %d: %w", cl.file, line, err)
	}
	return err
}

// fileValue checks and converts one value.
func fileValue(kind string, v *yaml.Node) (interface{}, error) {
	scalar := v.Kind == yaml.ScalarNode
	null := scalar && v.Tag == "!!null"
	switch kind {
	case "string":
		switch {
		case null:
			return "", nil
		case scalar:
			return v.Value, nil
		}
		return nil, errors.New("want a single value, not a list or a map")
	case "int":
		if scalar && v.Tag == "!!int" {
			var n int
			if err := v.Decode(&n); err == nil {
				return n, nil
			}
		}
		return nil, fmt.Errorf("want a whole number, not %s", describe(v))
	case "bool":
		if scalar && v.Tag == "!!bool" {
			var b bool
			if err := v.Decode(&b); err == nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("want true or false, not %s", describe(v))
	case "duration":
		if scalar && v.Tag == "!!int" && v.Value == "0" {
			return time.Duration(0), nil
		}
		if scalar && !null {
			if d, err := time.ParseDuration(v.Value); err == nil {
				return d, nil
			}
		}
		return nil, fmt.Errorf("want a duration such as 500ms, 10s, 5m or 1h30m, not %s", describe(v))
	case "list":
		var out []interface{}
		switch {
		case scalar && !null:
			return []interface{}{v.Value}, nil
		case v.Kind == yaml.SequenceNode:
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("line %d: want a list of values", e.Line)
				}
				out = append(out, e.Value)
			}
			return out, nil
		}
		return nil, fmt.Errorf("want a list, not %s", describe(v))
	case "map":
		if v.Kind == yaml.MappingNode || null {
			return nil, nil // read by ttlRulesFromFile, which checks its entries
		}
		return nil, fmt.Errorf("must be a map of topic filter to TTL (e.g. \"sensors/#\": 1h), not %s", describe(v))
	case "bridges":
		if v.Kind == yaml.SequenceNode || null {
			return nil, nil // read by loadBridges (bridges.go), which checks each bridge's keys
		}
		return nil, fmt.Errorf("must be a list of bridges (see the README), not %s", describe(v))
	case "log-level":
		var l slog.Level
		if scalar && l.UnmarshalText([]byte(v.Value)) == nil {
			return v.Value, nil
		}
		return nil, fmt.Errorf("want debug, info, warn or error, not %s", describe(v))
	case "log-format":
		if scalar {
			switch strings.ToLower(v.Value) {
			case "auto", "text", "json":
				return v.Value, nil
			}
		}
		return nil, fmt.Errorf("want auto, text or json, not %s", describe(v))
	}
	return nil, fmt.Errorf("unsupported setting kind %s", kind)
}

func describe(v *yaml.Node) string {
	switch v.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a map"
	}
	if v.Tag == "!!null" {
		return "an empty value"
	}
	return strconv.Quote(v.Value)
}

// suggestKey names the known key closest to name, if one is close.
func suggestKey(name string, keys map[string]fileKey) string {
	best, bestD := "", 4
	for k := range keys {
		if d := editDistance(name, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return " (cairn config example lists every setting)"
	}
	return fmt.Sprintf(" (did you mean %q? cairn config example lists every setting)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// configCommand is `cairn config`.
func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "the configuration of cairn serve",
		Subcommands: []*cli.Command{
			{
				Name:  "example",
				Usage: "print a commented cairn.yaml with every setting at its default",
				Action: func(c *cli.Context) error {
					return writeConfigExample(c.App.Writer, newApp().Flags, serveFlags())
				},
			},
		},
	}
}

// setting is one documented setting, taken from its flag.
type setting struct {
	name, usage, env string
	value            string // the default, as YAML
	kind             string
}

// settings lists the file's settings in flag order: the global ones, then
// serve's (without --config and the hidden ones).
func settings(global, serve []cli.Flag) []setting {
	var out []setting
	add := func(f cli.Flag, kind string) {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			return
		}
		name := f.Names()[0]
		if name == "config" || name == "help" {
			return
		}
		s := setting{name: name, kind: kind}
		if d, ok := f.(cli.DocGenerationFlag); ok {
			s.usage = d.GetUsage()
			if env := d.GetEnvVars(); len(env) > 0 {
				s.env = env[0]
			}
		}
		s.value = defaultYAML(f)
		out = append(out, s)
	}
	for _, f := range global {
		for _, k := range globalFileKeys {
			if f.Names()[0] == k {
				add(f, "string")
			}
		}
	}
	for _, f := range serve {
		if kind := flagKind(f); kind != "" {
			add(f, kind)
		}
	}
	return out
}

// defaultYAML is a flag's default as a YAML value.
func defaultYAML(f cli.Flag) string {
	var v interface{}
	switch f := f.(type) {
	case *altsrc.StringFlag:
		v = f.Value
	case *cli.StringFlag:
		v = f.Value
	case *altsrc.IntFlag:
		v = f.Value
	case *altsrc.BoolFlag:
		v = f.Value
	case *altsrc.DurationFlag:
		v = fmtDuration(f.Value)
	case *altsrc.StringSliceFlag:
		var l []string
		if f.Value != nil {
			l = f.Value.Value()
		}
		if len(l) == 0 {
			return "[]"
		}
		v = l
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return "''"
	}
	s := strings.TrimSuffix(string(b), "\n")
	if strings.Contains(s, "\n") { // a list: flow style
		var items []string
		for _, it := range v.([]string) {
			items = append(items, strconv.Quote(it))
		}
		s = "[" + strings.Join(items, ", ") + "]"
	}
	if s == `""` || s == "''" {
		return `""`
	}
	return s
}

// fmtDuration prints a duration without the zero units time.Duration.String
// adds ("1m" rather than "1m0s").
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// writeConfigExample prints the example file.
func writeConfigExample(w io.Writer, global, serve []cli.Flag) error {
	var b strings.Builder
	b.WriteString(`# cairn.yaml: every setting of "cairn serve", at its default.
#
# Use it with: cairn serve --config cairn.yaml (or CAIRN_CONFIG=cairn.yaml).
# Each setting can also be given as a command-line flag (--name) or an
# environment variable (CAIRN_NAME, named below). Precedence: the flag, then
# the environment variable, then this file, then the default.
# Unknown keys and values of the wrong type stop the broker at startup with
# an error naming the line and the key. Sizes take KiB/MiB/GiB (powers of
# 1024), KB/MB/GB (powers of 1000) or plain bytes; durations are like 500ms,
# 10s, 5m, 1h30m.
`)
	for _, s := range settings(global, serve) {
		b.WriteString("\n")
		for _, line := range wrap(s.usage, 76) {
			b.WriteString("# " + line + "\n")
		}
		how := "flag --" + s.name
		if s.kind == "list" {
			how += " (repeatable)"
		}
		if s.env != "" {
			how += ", environment " + s.env
			if s.kind == "list" {
				how += " (comma-separated)"
			}
		}
		b.WriteString("# " + how + "\n")
		if s.name == "retained-ttl-filter" {
			b.WriteString("# In this file the map " + ttlFiltersKey + " is clearer; the most specific\n" +
				"# matching filter wins:\n" + ttlFiltersKey + ": {}\n" +
				"#  \"sensors/#\": 1h\n#  \"sensors/+/config\": never\n")
			continue
		}
		b.WriteString(s.name + ": " + s.value + "\n")
	}
	b.WriteString(bridgesExample)
	_, err := io.WriteString(w, b.String())
	return err
}

// wrap splits text into lines of at most width characters.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// settingNames lists the file keys, sorted (for tests and the README).
func settingNames() []string {
	var out []string
	for _, s := range settings(newApp().Flags, serveFlags()) {
		out = append(out, s.name)
	}
	sort.Strings(out)
	return out
}
