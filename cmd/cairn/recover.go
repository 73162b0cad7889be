package main

// `cairn recover --check` judges a store and changes nothing; `cairn
// recover --repair` backs it up, mends it and reports every change
// (package recovery does the work; this renders it).

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
)

func recoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "recover",
		Usage: "check a store's invariants (--check), or repair it after a backup (--repair)",
		Description: "--check opens the store read-only and reports every problem: damaged or torn WAL files,\n" +
			"records that do not decode, queue entries without their message, orphan bodies, wrong refcounts\n" +
			"and queue summaries, sessions missing, expiry index mismatches, sequence and schema problems.\n" +
			"--repair (stopped store only) first copies the store to --backup, then salvages what is\n" +
			"readable from a damaged WAL, fixes every problem it can (from the event log where it knows)\n" +
			"and lists each change.",
		Flags: []cli.Flag{
			dataFlag(), adminFlag(), jsonFlag(),
			&cli.BoolFlag{Name: "check", Usage: "report problems; change nothing"},
			&cli.BoolFlag{Name: "repair", Usage: "back up, then fix what can be fixed"},
			&cli.StringFlag{Name: "backup", Usage: "where --repair copies the store first (default: DATA.backup-TIMESTAMP)"},
		},
		Action: recoverAction,
	}
}

func recoverAction(c *cli.Context) error {
	check, repair := c.Bool("check"), c.Bool("repair")
	if check == repair {
		return errors.New("recover: give exactly one of --check and --repair")
	}
	if repair {
		return recoverRepair(c)
	}
	return withStoppedDir(c, func(dir, what string) error {
		res, err := recovery.Check(dir, store.Options{Logger: toolLogger(c)})
		if err != nil {
			return explainToolErr(c, dir, err)
		}
		if c.Bool("json") {
			if err := writeJSONLines(c.App.Writer, []*recovery.CheckResult{res}); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(c.App.Writer, "checking %s\n", what)
			renderFindings(c.App.Writer, res.Findings)
		}
		if n := res.Errors(); n > 0 {
			hint := fmt.Sprintf("run `cairn recover --repair --data %s` (it backs the store up first)", dir)
			if c.String("admin") != "" {
				hint = "stop the broker, then run `cairn recover --repair --data DIR`"
			}
			return fmt.Errorf("%d problem(s) found: %s", n, hint)
		}
		if !c.Bool("json") {
			fmt.Fprintln(c.App.Writer, "the store is healthy")
		}
		return nil
	})
}

func explainToolErr(c *cli.Context, dir string, err error) error {
	if errors.Is(err, store.ErrLocked) {
		return lockedError(c, dir)
	}
	if missingStoreFile(dir, err) {
		// A table or manifest the store lists is gone: its contents
		// cannot be rebuilt from what is left.
		return fmt.Errorf("the store in %s is damaged: a file it needs is missing (%w); recover cannot rebuild a lost table: restore a backup (cairn backup)", dir, err)
	}
	return err
}

func renderFindings(w io.Writer, fs []recovery.Finding) {
	tw := newTable(w)
	for _, f := range fs {
		row(tw, "  "+f.Severity, f.Where, f.Kind+": "+f.Detail)
	}
	_ = tw.Flush()
	e, wn := 0, 0
	for _, f := range fs {
		switch f.Severity {
		case recovery.SevError:
			e++
		case recovery.SevWarning:
			wn++
		}
	}
	fmt.Fprintf(w, "%d %s, %d %s\n", e, plural(e, "error", "errors"), wn, plural(wn, "warning", "warnings"))
}

func recoverRepair(c *cli.Context) error {
	if c.String("admin") != "" {
		return errors.New("recover --repair works on a stopped store: stop the broker, then run it with --data DIR")
	}
	dir := c.String("data")
	backup := c.String("backup")
	if backup == "" {
		backup = filepath.Clean(dir) + ".backup-" + now().UTC().Format("20060102-150405")
	}
	res, err := recovery.Repair(dir, store.Options{Logger: toolLogger(c)}, backup)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("the store in %s is in use by a running broker: stop it first (repair works on a stopped store; `cairn recover --check --admin ADDR` checks a running one)", dir)
	}
	if err != nil {
		return explainToolErr(c, dir, err)
	}
	if c.Bool("json") {
		if err := writeJSONLines(c.App.Writer, []*recovery.RepairResult{res}); err != nil {
			return err
		}
	} else {
		renderRepair(c.App.Writer, res)
	}
	if n := res.After.Errors(); n > 0 {
		return fmt.Errorf("%d problem(s) could not be repaired; the store as found is in %s", n, backup)
	}
	return nil
}

func renderRepair(w io.Writer, r *recovery.RepairResult) {
	fmt.Fprintf(w, "repairing %s\n", r.Dir)
	if r.Nothing {
		fmt.Fprintln(w, "nothing to repair: the store is healthy (nothing was changed, no backup taken)")
		return
	}
	fmt.Fprintln(w, "found:")
	renderFindings(w, onlyProblems(r.Before.Findings))
	fmt.Fprintf(w, "backup: %s (%d files, %s, %s)\n", r.Backup.Dir, r.Backup.Files, bytesize(r.Backup.Bytes), r.Backup.Method)
	fmt.Fprintln(w, "changes:")
	tw := newTable(w)
	n := 0
	for _, f := range r.Discarded {
		if f.Kind == "wal-cut" {
			row(tw, "  cut", f.Where, "kept the complete records before the cut; what followed it is lost ("+strings.SplitN(f.Detail, ":", 2)[0]+")")
		} else {
			row(tw, "  discarded", f.Where, "the incomplete record at its end (never readable); "+strings.SplitN(f.Detail, ":", 2)[0])
		}
		n++
	}
	if s := r.Salvage; s != nil {
		row(tw, "  salvaged", s.WAL, fmt.Sprintf("cut at byte %d, before the damage (%d records kept); later WAL files removed: %d", s.CutAt, s.KeptRecords, len(s.Removed)))
		row(tw, "  replayed", s.WAL, fmt.Sprintf("%d readable events behind the damage: %d replayed, %d already present, %d refused, %d undecodable, %d other writes not replayed",
			len(s.Events), r.Replayed, r.AlreadyPresent, len(r.Refused), s.Undecodable, s.OtherWrites))
		for _, f := range r.Refused {
			row(tw, "  refused", s.WAL, f)
		}
		n++
	}
	for _, a := range r.Actions {
		row(tw, "  "+a.Action, a.Key, string(a.Problem)+": "+a.Detail)
		n++
	}
	if n == 0 {
		row(tw, "  (none)")
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "after:")
	renderFindings(w, onlyProblems(r.After.Findings))
	if r.After.Healthy() {
		fmt.Fprintf(w, "the store is healthy (%v)\n", took(r.Took))
	}
}

// onlyProblems drops the info lines.
func onlyProblems(fs []recovery.Finding) []recovery.Finding {
	var out []recovery.Finding
	for _, f := range fs {
		if f.Severity != recovery.SevInfo {
			out = append(out, f)
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
