package main

// `cairn replay --into DIR [--from SEQ] [--to SEQ]` rebuilds a store's
// projections from its event log into a fresh directory; `cairn replay
// --verify` rebuilds them in memory and prints every difference from the
// store's own projections. Against a running broker (--admin) both work on
// a fresh checkpoint fetched from its admin endpoint.

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
)

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:  "replay",
		Usage: "rebuild projections from the event log: into a fresh store (--into DIR), or compare with the store (--verify)",
		Flags: []cli.Flag{
			dataFlag(), adminFlag(), jsonFlag(),
			&cli.StringFlag{Name: "into", Usage: "write the rebuilt store into this new directory"},
			&cli.BoolFlag{Name: "verify", Usage: "rebuild in memory and print every difference from the store's projections"},
			&cli.Uint64Flag{Name: "from", Usage: "first seq to replay (--into only)"},
			&cli.Uint64Flag{Name: "to", Usage: "last seq to replay (--into only)"},
		},
		Action: replay,
	}
}

func replay(c *cli.Context) error {
	into, verify := c.String("into"), c.Bool("verify")
	switch {
	case (into == "") == !verify:
		return errors.New("replay: give exactly one of --into DIR and --verify")
	case verify && (c.IsSet("from") || c.IsSet("to")):
		return errors.New("replay --verify replays the whole log: --from and --to are for --into")
	case c.IsSet("from") && c.IsSet("to") && c.Uint64("from") > c.Uint64("to"):
		return fmt.Errorf("replay: --from %d is after --to %d: nothing to replay", c.Uint64("from"), c.Uint64("to"))
	}
	return withStoppedStore(c, func(st *store.Store, what string) error {
		bar := newProgress("replaying")
		defer bar.finish()
		if verify {
			return replayVerify(c, st, what, bar)
		}
		return replayInto(c, st, what, into, bar)
	})
}

func replayInto(c *cli.Context, src *store.Store, what, into string, bar *progressBar) (err error) {
	if _, err := os.Stat(into); err == nil {
		return fmt.Errorf("replay --into %s: it already exists; give a new directory", into)
	}
	dst, err := store.Open(into, store.Options{Logger: toolLogger(c)})
	if err != nil {
		return fmt.Errorf("replay --into: %w", err)
	}
	defer func() { err = errors.Join(err, dst.Close()) }()
	res, err := recovery.Replay(src, dst, recovery.ReplayOptions{From: c.Uint64("from"), To: c.Uint64("to"), Progress: bar.update})
	if err != nil {
		return err
	}
	bar.finish()
	if c.Bool("json") {
		return writeJSONLines(c.App.Writer, []recovery.ReplayResult{res})
	}
	fmt.Fprintf(c.App.Writer, "replayed %d events of %s (seqs %d..%d) into %s in %v\n", res.Events, what, res.FirstSeq, res.LastSeq, into, took(res.Took))
	if res.Truncated && res.FirstSeq > 1 {
		fmt.Fprintf(c.App.Writer, "note: the log starts at seq %d (older events were compacted away), so %s holds only what those events built\n", res.FirstSeq, into)
	}
	return nil
}

func replayVerify(c *cli.Context, st *store.Store, what string, bar *progressBar) error {
	res, err := recovery.VerifyReplay(st, bar.update)
	if err != nil {
		return err
	}
	bar.finish()
	n := len(res.Differences) + res.Omitted
	if c.Bool("json") {
		if err := writeJSONLines(c.App.Writer, []*recovery.VerifyResult{res}); err != nil {
			return err
		}
	} else {
		w := c.App.Writer
		fmt.Fprintf(w, "replayed %d events of %s (seqs %d..%d) in memory in %v\n", res.Replay.Events, what, res.Replay.FirstSeq, res.Replay.LastSeq, took(res.Replay.Took))
		if n == 0 {
			fmt.Fprintln(w, "the projections agree with the event log: no differences")
			return nil
		}
		tw := newTable(w)
		row(tw, "KEY", "DIFFERENCE", "IN THE STORE", "REBUILT FROM THE LOG")
		for _, d := range res.Differences {
			first, second := d.First, d.Second
			if first == "" {
				first = "(absent)"
			}
			if second == "" {
				second = "(absent)"
			}
			row(tw, d.Key, d.What, first, second)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if res.Omitted > 0 {
			fmt.Fprintf(w, "... and %d more\n", res.Omitted)
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("the projections differ from the event log in %d keys", n)
}

// withStoppedStore runs fn on the store the flags name, opened read-only:
// the --data directory, or a fresh checkpoint of the running broker at
// --admin, fetched into a temporary directory (removed afterwards).
func withStoppedStore(c *cli.Context, fn func(st *store.Store, what string) error) (err error) {
	return withStoppedDir(c, func(dir, what string) error {
		st, err := openStopped(c, dir)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, st.Close()) }()
		return fn(st, what)
	})
}

func withStoppedDir(c *cli.Context, fn func(dir, what string) error) error {
	addr := c.String("admin")
	if addr == "" {
		return fn(c.String("data"), c.String("data"))
	}
	if c.IsSet("data") {
		return errors.New("--data and --admin exclude each other")
	}
	tmp, err := os.MkdirTemp("", "cairn-checkpoint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := tmp + "/store"
	if _, err := newAdminClient(addr).backupInto(context.Background(), dir); err != nil {
		return err
	}
	return fn(dir, "a fresh checkpoint of the broker at "+addr)
}
