package main

// `cairn backup DIR`: a consistent copy of a store. From a running broker
// (--admin) it is a fresh Pebble checkpoint streamed by the admin endpoint;
// from a stopped store (--data) a copy made under the store's lock. Either
// way the copy is opened afterwards to prove it is a store.

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/cairn-mqtt/cairn/store"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "write a consistent copy of a running (--admin) or stopped (--data) store into DIR",
		ArgsUsage: "DIR",
		Flags:     []cli.Flag{dataFlag(), adminFlag(), jsonFlag()},
		Action:    backup,
	}
}

func backup(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("backup: want the target DIR, got %d arguments", c.NArg())
	}
	dir := c.Args().First()
	info, from, err := takeBackup(c, dir)
	if err != nil {
		return err
	}
	// Prove the copy is a store, and say what it holds.
	cp, err := store.Open(dir, store.Options{ReadOnly: true, Logger: toolLogger(c)})
	if err != nil {
		return fmt.Errorf("backup written to %s does not open: %w", dir, err)
	}
	last := cp.LastSeq()
	if err := cp.Close(); err != nil {
		return err
	}
	if info.LastSeq != 0 && last < info.LastSeq {
		return fmt.Errorf("backup in %s ends at seq %d, the source was at %d", dir, last, info.LastSeq)
	}
	info.LastSeq = last
	if c.Bool("json") {
		return writeJSONLines(c.App.Writer, []store.BackupInfo{info})
	}
	_, err = fmt.Fprintf(c.App.Writer, "backup of %s written to %s: %d files, %s, last seq %d (%s, %v); it opens as a store\n",
		from, dir, info.Files, bytesize(info.Bytes), info.LastSeq, info.Method, took(info.Took))
	return err
}

// takeBackup writes the backup the flags ask for and says where from.
func takeBackup(c *cli.Context, dir string) (store.BackupInfo, string, error) {
	if addr := c.String("admin"); addr != "" {
		if c.IsSet("data") {
			return store.BackupInfo{}, "", errors.New("--data and --admin exclude each other")
		}
		info, err := newAdminClient(addr).backupInto(context.Background(), dir)
		return info, "the broker at " + addr, err
	}
	src := c.String("data")
	st, err := openStopped(c, src)
	if err != nil {
		return store.BackupInfo{}, "", err
	}
	info, err := st.Backup(dir)
	return info, src, errors.Join(err, st.Close())
}
