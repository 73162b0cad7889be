package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// Flags of `cairn serve` about the store's disk: the free-space reserve,
// and two hidden fault injectors for the end-to-end tests of what the
// broker does when its disk fails or fills (the engine's and the store's
// own tests inject faults through their file system instead).

func storeFlags() []cli.Flag {
	return []cli.Flag{
		altsrc.NewStringFlag(&cli.StringFlag{Name: "min-free-space", Value: "auto",
			Usage:   "free space to keep on the data volume, e.g. 1GiB: below it the broker refuses new durable work (QoS 1/2 publishes, new persistent sessions, subscriptions) and resumes by itself when space returns; auto: the larger of 256MiB and 4 × the memtable size; 0: no reserve",
			EnvVars: []string{"CAIRN_MIN_FREE_SPACE"}}),
		&cli.StringFlag{Name: "fault-fsync-error-file", Hidden: true,
			Usage: "fault injection for tests: once this file exists, every WAL fsync fails with EIO"},
		&cli.StringFlag{Name: "fault-free-space-file", Hidden: true,
			Usage: "fault injection for tests: while this file exists, the data volume's free space is the number of bytes it holds"},
	}
}

// loadMinFreeSpace maps --min-free-space to store.Options.MinFreeSpace.
func loadMinFreeSpace(c *cli.Context) (int64, error) {
	switch v := strings.TrimSpace(c.String("min-free-space")); v {
	case "auto", "":
		return 0, nil // the store's default
	case "0", "off":
		return -1, nil
	default:
		n, err := parseBytes(v)
		if err != nil {
			return 0, fmt.Errorf("min-free-space: %w", err)
		}
		if n == 0 {
			return -1, nil
		}
		return n, nil
	}
}

// storeFS is the store's file system: the disk, with the fault injectors
// the hidden flags ask for.
func storeFS(c *cli.Context) vfs.FS {
	var fs vfs.FS = vfs.Default
	if path := c.String("fault-fsync-error-file"); path != "" {
		fs = errorfs.Wrap(fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
			switch op.Kind {
			case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
				if strings.HasSuffix(op.Path, ".log") && exists(path) {
					return &os.PathError{Op: "fsync", Path: op.Path, Err: syscall.EIO}
				}
			}
			return nil
		}))
	}
	if path := c.String("fault-free-space-file"); path != "" {
		fs = &fakeSpaceFS{FS: fs, path: path}
	}
	return fs
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// fakeSpaceFS reports the free space written in a file while it exists.
type fakeSpaceFS struct {
	vfs.FS
	path string
}

func (f *fakeSpaceFS) GetDiskUsage(dir string) (vfs.DiskUsage, error) {
	du, err := f.FS.GetDiskUsage(dir)
	b, rerr := os.ReadFile(f.path)
	if rerr != nil {
		return du, err
	}
	n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if perr != nil {
		return du, fmt.Errorf("--fault-free-space-file %s: %w", f.path, perr)
	}
	du.AvailBytes = n
	return du, nil
}

func (f *fakeSpaceFS) Unwrap() vfs.FS { return f.FS }

// storeFailedError is what serve returns after the store failed.
func storeFailedError(err error) error {
	return fmt.Errorf("the store failed and the broker stopped; restart it (a supervisor should) to recover what reached the disk: %w", err)
}
