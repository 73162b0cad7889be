package main

// `cairn inspect sessions|session ID|queue ID|retained [FILTER]|events|stats`
//
// Every subcommand reads either a stopped store (--data, opened read-only)
// or a running broker (--admin, its admin endpoint). Both sources produce
// the same row types from the same code (engine/admin.Query), and the
// renderers (inspect_render.go) print them identically: aligned tables by
// default, one JSON object per line with --json.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/cairn-mqtt/cairn/engine/admin"
	"github.com/cairn-mqtt/cairn/store"
)

// inspectSource is where the rows come from.
type inspectSource interface {
	Sessions(ctx context.Context) ([]store.SessionRow, error)
	Session(ctx context.Context, id string) (*store.SessionDetail, error)
	Queue(ctx context.Context, id string, from uint64, limit int) ([]store.QueueRow, error)
	Retained(ctx context.Context, filter string) ([]store.RetainedRow, error)
	Events(ctx context.Context, f store.EventFilter, follow bool, fn func(store.EventRow) error) error
	Stats(ctx context.Context) (*store.Stats, error)
	// Live is true for a running broker: a session its store records as
	// connected is connected, while in a stopped store it means the
	// broker stopped without closing it.
	Live() bool
	Close() error
}

func inspectCommand() *cli.Command {
	common := func(extra ...cli.Flag) []cli.Flag {
		return append([]cli.Flag{dataFlag(), adminFlag(), jsonFlag()}, extra...)
	}
	return &cli.Command{
		Name:  "inspect",
		Usage: "look into a store: sessions, queues, retained messages, the event log, statistics",
		Description: "Works on a stopped broker's store (--data DIR, opened read-only, nothing is changed) and on a\n" +
			"running broker (--admin ADDR, the endpoint of cairn serve --admin) with the same output.",
		Subcommands: []*cli.Command{
			{Name: "sessions", Usage: "one row per session", Flags: common(), Action: inspectSessions},
			{Name: "session", Usage: "one session in full", ArgsUsage: "ID", Flags: common(), Action: inspectSession},
			{Name: "queue", Usage: "the queued messages of a session", ArgsUsage: "ID", Flags: common(
				&cli.IntFlag{Name: "limit", Value: 100, Usage: "at most this many messages (0: all)"},
				&cli.Uint64Flag{Name: "from", Usage: "start at this queue seq"},
			), Action: inspectQueue},
			{Name: "retained", Usage: "retained messages matching an MQTT topic filter (default: all)", ArgsUsage: "[FILTER]", Flags: common(), Action: inspectRetained},
			{Name: "events", Usage: "the event log, decoded", Flags: common(
				&cli.Uint64Flag{Name: "from", Usage: "start at this seq"},
				&cli.Uint64Flag{Name: "to", Usage: "stop after this seq"},
				&cli.StringSliceFlag{Name: "type", Usage: "only these event types (repeat or comma-separate: published,acked,...)"},
				&cli.StringFlag{Name: "client", Usage: "only events by or for this client"},
				&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new events (needs --admin)"},
			), Action: inspectEvents},
			{Name: "stats", Usage: "counts and bytes per key space, Pebble metrics", Flags: common(), Action: inspectStats},
			inspectBridgesCommand(), // bridges.go
		},
	}
}

// openSource opens the source the flags name.
func openSource(c *cli.Context) (inspectSource, error) {
	if addr := c.String("admin"); addr != "" {
		if c.IsSet("data") {
			return nil, errors.New("--data and --admin exclude each other: a stopped store or a running broker")
		}
		return &liveSource{a: newAdminClient(addr)}, nil
	}
	st, err := openStopped(c, c.String("data"))
	if err != nil {
		return nil, err
	}
	return &offlineSource{q: admin.Query{Store: st}}, nil
}

// withSource runs fn on the flags' source and closes it.
func withSource(c *cli.Context, fn func(ctx context.Context, src inspectSource) error) (err error) {
	src, err := openSource(c)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, src.Close()) }()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return fn(ctx, src)
}

func inspectSessions(c *cli.Context) error {
	return withSource(c, func(ctx context.Context, src inspectSource) error {
		rows, err := src.Sessions(ctx)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSONLines(c.App.Writer, rows)
		}
		return renderSessions(c.App.Writer, rows, src.Live())
	})
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("inspect %s: want one %s, got %d arguments", c.Command.Name, what, c.NArg())
	}
	return c.Args().First(), nil
}

func inspectSession(c *cli.Context) error {
	id, err := oneArg(c, "client id")
	if err != nil {
		return err
	}
	return withSource(c, func(ctx context.Context, src inspectSource) error {
		d, err := src.Session(ctx, id)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSONLines(c.App.Writer, []*store.SessionDetail{d})
		}
		return renderSession(c.App.Writer, d, src.Live())
	})
}

func inspectQueue(c *cli.Context) error {
	id, err := oneArg(c, "client id")
	if err != nil {
		return err
	}
	if c.Int("limit") < 0 {
		return fmt.Errorf("--limit %d: must not be negative", c.Int("limit"))
	}
	return withSource(c, func(ctx context.Context, src inspectSource) error {
		rows, err := src.Queue(ctx, id, c.Uint64("from"), c.Int("limit"))
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			// An empty queue, or no such session (an error, as for
			// inspect session).
			if _, err := src.Session(ctx, id); err != nil {
				return err
			}
		}
		if c.Bool("json") {
			return writeJSONLines(c.App.Writer, rows)
		}
		return renderQueue(c.App.Writer, rows, c.Int("limit"))
	})
}

func inspectRetained(c *cli.Context) error {
	if c.NArg() > 1 {
		return fmt.Errorf("inspect retained: want at most one FILTER, got %d arguments", c.NArg())
	}
	return withSource(c, func(ctx context.Context, src inspectSource) error {
		rows, err := src.Retained(ctx, c.Args().First())
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSONLines(c.App.Writer, rows)
		}
		return renderRetained(c.App.Writer, rows)
	})
}

func inspectEvents(c *cli.Context) error {
	var names []string
	for _, t := range c.StringSlice("type") {
		names = append(names, strings.Split(t, ",")...)
	}
	kinds, err := admin.ParseKinds(names)
	if err != nil {
		return err
	}
	f := store.EventFilter{From: c.Uint64("from"), To: c.Uint64("to"), Kinds: kinds, Client: c.String("client")}
	return withSource(c, func(ctx context.Context, src inspectSource) error {
		if c.Bool("follow") && !src.Live() {
			return errors.New("inspect events --follow: a stopped store gets no new events; use --admin ADDR of a running broker")
		}
		var emit func(store.EventRow) error
		var flush func() error
		if c.Bool("json") {
			enc := newJSONEncoder(c.App.Writer)
			emit = func(r store.EventRow) error { return enc.Encode(r) }
			flush = func() error { return nil }
		} else {
			t := newEventTable(c.App.Writer, c.Bool("follow"))
			emit, flush = t.row, t.flush
		}
		err := src.Events(ctx, f, c.Bool("follow"), emit)
		if ferr := flush(); err == nil {
			err = ferr
		}
		if ctx.Err() != nil {
			return nil // interrupted while following
		}
		return err
	})
}

func inspectStats(c *cli.Context) error {
	return withSource(c, func(ctx context.Context, src inspectSource) error {
		st, err := src.Stats(ctx)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSONLines(c.App.Writer, []*store.Stats{st})
		}
		return renderStats(c.App.Writer, st, src.Live())
	})
}

// offlineSource reads a stopped store.
type offlineSource struct{ q admin.Query }

func (o *offlineSource) Live() bool   { return false }
func (o *offlineSource) Close() error { return o.q.Store.Close() }
func (o *offlineSource) Sessions(context.Context) ([]store.SessionRow, error) {
	return o.q.Sessions()
}
func (o *offlineSource) Session(_ context.Context, id string) (*store.SessionDetail, error) {
	return o.q.Session(id)
}
func (o *offlineSource) Queue(_ context.Context, id string, from uint64, limit int) ([]store.QueueRow, error) {
	return o.q.Queue(id, from, limit)
}
func (o *offlineSource) Retained(_ context.Context, filter string) ([]store.RetainedRow, error) {
	return o.q.Retained(filter)
}
func (o *offlineSource) Events(_ context.Context, f store.EventFilter, _ bool, fn func(store.EventRow) error) error {
	_, err := o.q.Events(f, fn)
	return err
}
func (o *offlineSource) Stats(context.Context) (*store.Stats, error) { return o.q.Stats() }

// liveSource asks a running broker's admin endpoint.
type liveSource struct{ a *adminClient }

func (l *liveSource) Live() bool   { return true }
func (l *liveSource) Close() error { return nil }
func (l *liveSource) Sessions(ctx context.Context) ([]store.SessionRow, error) {
	return rows[store.SessionRow](ctx, l.a, "/v1/sessions", nil)
}
func (l *liveSource) Session(ctx context.Context, id string) (*store.SessionDetail, error) {
	return one[store.SessionDetail](ctx, l.a, "/v1/session", url.Values{"id": {id}})
}
func (l *liveSource) Queue(ctx context.Context, id string, from uint64, limit int) ([]store.QueueRow, error) {
	q := url.Values{"id": {id}, "from": {strconv.FormatUint(from, 10)}, "limit": {strconv.Itoa(limit)}}
	return rows[store.QueueRow](ctx, l.a, "/v1/queue", q)
}
func (l *liveSource) Retained(ctx context.Context, filter string) ([]store.RetainedRow, error) {
	return rows[store.RetainedRow](ctx, l.a, "/v1/retained", url.Values{"filter": {filter}})
}
func (l *liveSource) Events(ctx context.Context, f store.EventFilter, follow bool, fn func(store.EventRow) error) error {
	q := url.Values{"from": {strconv.FormatUint(f.From, 10)}, "to": {strconv.FormatUint(f.To, 10)}, "client": {f.Client}}
	var names []string
	for _, k := range f.Kinds {
		names = append(names, k.String())
	}
	if len(names) > 0 {
		q.Set("type", strings.Join(names, ","))
	}
	if follow {
		q.Set("follow", "1")
	}
	return l.a.lines(ctx, "/v1/events", q, func(line []byte) error {
		var r store.EventRow
		if err := jsonUnmarshal(line, &r); err != nil {
			return err
		}
		return fn(r)
	})
}
func (l *liveSource) Stats(ctx context.Context) (*store.Stats, error) {
	return one[store.Stats](ctx, l.a, "/v1/stats", nil)
}
