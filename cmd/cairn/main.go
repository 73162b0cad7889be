// Command cairn is the Cairn MQTT broker and its tools: serve runs the
// broker; inspect, replay, recover and backup look into and mend its store;
// compact runs the compaction task on a stopped broker's store; bench and
// passwd; config example prints every setting; version prints the build.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newApp().Run(interspersed(os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:  "cairn",
		Usage: "a durable MQTT broker: what it acknowledged survives a crash",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"CAIRN_LOG_LEVEL"}},
			&cli.StringFlag{Name: "log-format", Value: "auto", Usage: "auto (colour text on a terminal, JSON otherwise), text or json", EnvVars: []string{"CAIRN_LOG_FORMAT"}},
		},
		Commands: []*cli.Command{
			serveCommand(),
			inspectCommand(),
			replayCommand(),
			recoverCommand(),
			backupCommand(),
			compactCommand(),
			benchCommand(),
			passwdCommand(),
			configCommand(),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					fmt.Fprintln(c.App.Writer, "cairn", buildVersion())
					return nil
				},
			},
		},
	}
	app.Before = refuseUnknownCommand("cairn", &app.Commands, app.Before)
	refuseStrayArgs("cairn", app.Commands)
	return app
}

// refuseStrayArgs walks the command tree: a command with subcommands refuses
// an unknown command word, a command that takes no arguments (no ArgsUsage)
// refuses any. urfave/cli stops reading flags at the first argument, so
// `cairn serve extra --data DIR` would otherwise run on the default store,
// --data unread.
func refuseStrayArgs(parent string, cmds []*cli.Command) {
	for _, cmd := range cmds {
		where := parent + " " + cmd.Name
		switch {
		case len(cmd.Subcommands) > 0:
			cmd.Before = refuseUnknownCommand(where, &cmd.Subcommands, cmd.Before)
			refuseStrayArgs(where, cmd.Subcommands)
		case cmd.ArgsUsage == "" && cmd.Action != nil:
			then := cmd.Before
			cmd.Before = func(c *cli.Context) error {
				if c.Args().Present() {
					return fmt.Errorf("%s takes no arguments, got %q (flags go before any argument)", where, c.Args().Slice())
				}
				if then != nil {
					return then(c)
				}
				return nil
			}
		}
	}
}

// refuseUnknownCommand wraps the Before of a command that has subcommands
// (or of the app): a first argument naming none of them is an error, which
// main prints with exit status 1. Left to urfave/cli, it would print "No
// help topic for 'x'" and exit with 3, not saying what is wrong.
func refuseUnknownCommand(where string, cmds *[]*cli.Command, then cli.BeforeFunc) cli.BeforeFunc {
	return func(c *cli.Context) error {
		if name := c.Args().First(); name != "" && name != "help" && name != "h" {
			var names []string
			found := false
			for _, sc := range *cmds {
				found = found || sc.HasName(name)
				if !sc.Hidden && sc.Name != "help" {
					names = append(names, sc.Name)
				}
			}
			if !found {
				return fmt.Errorf("unknown command %q: %s takes one of %s (see %s --help)", name, where, strings.Join(names, ", "), where)
			}
		}
		if then != nil {
			return then(c)
		}
		return nil
	}
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// newLogger builds the process logger: tint on a terminal, JSON otherwise.
func newLogger(c *cli.Context, w *os.File) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", c.String("log-level"), err)
	}
	format := strings.ToLower(c.String("log-format"))
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "tint"
		}
	}
	var h slog.Handler
	switch format {
	case "tint":
		h = tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly})
	case "text":
		h = slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	case "json":
		h = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	default:
		return nil, fmt.Errorf("--log-format %q: want auto, text or json", format)
	}
	return slog.New(h), nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
