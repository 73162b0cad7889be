package main

// Plumbing shared by the store tools (inspect, replay, recover, backup):
// the --data / --admin / --json flags, opening a stopped store read-only,
// telling the user what to do when a running broker holds it, and the
// admin-address file `cairn serve` leaves in the data directory so that
// they can say exactly where the running broker answers.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cairn-mqtt/cairn/store"
)

// now is the clock of the renderers (ages, "since"); tests pin it.
var now = time.Now

// adminAddrFile is written by `cairn serve` into the data directory while
// it runs: the address of its admin endpoint, for the tools' "the store is
// in use" message. Pebble ignores files it does not know.
const adminAddrFile = "cairn-admin.addr"

// defaultAdmin is the admin endpoint `cairn serve` opens unless told
// otherwise.
const defaultAdmin = "127.0.0.1:8081"

func dataFlag() cli.Flag {
	return &cli.StringFlag{Name: "data", Value: "./cairn-data", Usage: "store directory of a stopped broker (opened read-only)", EnvVars: []string{"CAIRN_DATA"}}
}

func adminFlag() cli.Flag {
	return &cli.StringFlag{Name: "admin", Usage: "admin endpoint of a running broker (host:port, as given to cairn serve --admin)"}
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "one JSON object per line instead of a table"}
}

// toolLogger logs to stderr at warn unless --log-level says otherwise: the
// store's "opened" lines are noise around a table.
func toolLogger(c *cli.Context) *slog.Logger {
	if c.IsSet("log-level") {
		if l, err := newLogger(c, os.Stderr); err == nil {
			return l
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openStopped opens the store in dir read-only. A store held by a running
// broker, or no store at all, gets an error saying what to do instead.
func openStopped(c *cli.Context, dir string) (*store.Store, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no store in %s: %v", dir, err)
	}
	st, err := store.Open(dir, store.Options{ReadOnly: true, Logger: toolLogger(c)})
	if err != nil {
		return nil, explainOpenErr(c, dir, err)
	}
	return st, nil
}

// explainOpenErr turns the store errors a user can act on into sentences.
func explainOpenErr(c *cli.Context, dir string, err error) error {
	var ce *store.CorruptionError
	switch {
	case errors.Is(err, store.ErrLocked):
		return lockedError(c, dir)
	case errors.As(err, &ce), errors.Is(err, store.ErrUndecodable), missingStoreFile(dir, err):
		return fmt.Errorf("the store in %s is damaged: %w\nrun `cairn recover --check --data %s` to see what is wrong", dir, err, dir)
	case strings.Contains(err.Error(), "does not exist"), strings.Contains(err.Error(), "never initialized"):
		return fmt.Errorf("no store in %s", dir)
	}
	return fmt.Errorf("opening the store in %s: %w", dir, err)
}

// missingStoreFile says err is about a file missing from what is a store
// (dir holds Pebble's files): damage, not "no store here".
func missingStoreFile(dir string, err error) bool {
	notFound := errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "does not exist") ||
		strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "no such file")
	if !notFound {
		return false
	}
	for _, pat := range []string{"CURRENT", "MANIFEST-*", "OPTIONS-*", "*.sst", "*.log"} {
		if m, _ := filepath.Glob(filepath.Join(dir, pat)); len(m) > 0 {
			return true
		}
	}
	return false
}

// lockedError explains that a running broker holds the store and how to
// ask it instead.
func lockedError(c *cli.Context, dir string) error {
	cmd := strings.Join(append(append([]string{strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")}, modeFlags(c)...), c.Args().Slice()...), " ")
	addr, ok := readAdminAddr(dir)
	if !ok {
		return fmt.Errorf("the store in %s is in use by a running broker (Pebble allows one process per store, even for reading).\n"+
			"Ask the running broker through its admin endpoint: cairn %s --admin ADDR (cairn serve listens on %s unless --admin says otherwise),\n"+
			"or stop the broker first", dir, cmd, defaultAdmin)
	}
	return fmt.Errorf("the store in %s is in use by a running broker (Pebble allows one process per store, even for reading).\n"+
		"Ask the running broker instead: cairn %s --admin %s", dir, cmd, addr)
}

// modeFlags are the flags given to c other than --data, as they would be
// typed again (the same command against the admin endpoint).
func modeFlags(c *cli.Context) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if name == "data" || seen[name] || !c.IsSet(name) {
			continue
		}
		seen[name] = true
		switch v := c.Value(name).(type) {
		case bool:
			if v {
				out = append(out, "--"+name)
			}
		case *cli.StringSlice:
			for _, s := range v.Value() {
				out = append(out, "--"+name, s)
			}
		default:
			out = append(out, "--"+name, fmt.Sprint(v))
		}
	}
	return out
}

func readAdminAddr(dir string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, adminAddrFile))
	if err != nil {
		return "", false
	}
	addr := strings.TrimSpace(string(b))
	return addr, addr != ""
}

// writeJSONLines writes rows as JSON lines.
func writeJSONLines[T any](w io.Writer, rows []T) error {
	enc := newJSONEncoder(w)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// newJSONEncoder is the encoder of every --json output: the same settings
// whether the rows came from a stopped store or from the admin endpoint
// (whose lines are decoded and encoded again here).
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// globalFlags are the app's own flags (main.go), which take a value.
var globalFlags = map[string]bool{"log-level": true, "log-format": true}

// hoistGlobalFlags moves the global flags given after the command
// (`cairn serve --log-level debug`, as the README's settings table lists
// them) before it, where urfave/cli v2 looks for them; "--" ends the flags.
func hoistGlobalFlags(args []string) []string {
	i := commandAt(args)
	if i >= len(args) {
		return args
	}
	var global, rest []string
	for j := i + 1; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			rest = append(rest, args[j:]...)
			break
		}
		name, _, withValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && globalFlags[name] {
			global = append(global, a)
			if !withValue && j+1 < len(args) {
				j++
				global = append(global, args[j])
			}
			continue
		}
		rest = append(rest, a)
	}
	if len(global) == 0 {
		return args
	}
	out := append(append(append([]string(nil), args[:i]...), global...), args[i])
	return append(out, rest...)
}

// commandAt is the index of the command word in args: past the program
// name and the global flags before it (each with its value, unless given
// as --flag=value).
func commandAt(args []string) int {
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if name := strings.TrimLeft(args[i], "-"); !strings.Contains(name, "=") && globalFlags[name] {
			i++
		}
		i++
	}
	return i
}

// boolFlags are the store tools' flags that take no value.
var boolFlags = map[string]bool{"json": true, "follow": true, "f": true, "check": true, "repair": true, "verify": true, "help": true, "h": true}

// interspersed lets the store tools take flags after their positional
// arguments (`cairn inspect queue ID --limit 5`), which urfave/cli v2 does
// not: it stops parsing flags at the first argument. The flags of the
// commands named (and their values) are moved before the positional
// arguments; "--" ends the flags as usual.
func interspersed(args []string) []string {
	args = hoistGlobalFlags(args)
	tools := map[string]int{"inspect": 2, "backup": 1, "replay": 1, "recover": 1} // command words before the arguments
	i := commandAt(args)
	if i >= len(args) {
		return args
	}
	words, ok := tools[args[i]]
	if !ok || i+words > len(args) {
		return args
	}
	head := append([]string(nil), args[:i+words]...)
	var flags, pos []string
	rest := args[i+words:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--":
			pos = append(pos, rest[j+1:]...)
			j = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && !boolFlags[name] && j+1 < len(rest) {
				j++
				flags = append(flags, rest[j])
			}
		default:
			pos = append(pos, a)
		}
	}
	out := append(head, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}
