package store

// Backups: a consistent copy of a store in a new directory.
//
// A store open for writing is copied with a Pebble checkpoint (sstables
// hard-linked, the manifest and WAL copied up to a consistent point, all
// while the broker keeps committing). A store opened ReadOnly, or a store
// that cannot be opened at all (the backup `cairn recover --repair` takes
// before touching a damaged store), is copied file by file under the
// store's directory lock: with the lock held nobody writes the directory,
// so the copy is exactly what is on disk. The file copy exists because
// Pebble v2.1.7's Checkpoint fails on a read-only DB (it copies
// OPTIONS-<n> for an n that a read-only open never learns).
//
// sstables are immutable once written, so a hard link is as good as a copy
// and costs nothing; every other file is copied and fsynced.

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// BackupInfo says what a backup wrote.
type BackupInfo struct {
	Dir     string        `json:"dir"`
	Method  string        `json:"method"` // "checkpoint" or "copy"
	Files   int           `json:"files"`
	Bytes   int64         `json:"bytes"`
	LastSeq uint64        `json:"last_seq"`
	Took    time.Duration `json:"took_ns"`
}

// Backup writes a consistent copy of the store into dir, which must not
// exist. The copy holds every commit accepted so far (durable or not) and
// opens with Open like any store.
func (s *Store) Backup(dir string) (BackupInfo, error) {
	start := time.Now()
	info := BackupInfo{Dir: dir, LastSeq: s.LastSeq()}
	if err := s.Checkpoint(dir); err != nil {
		return info, err
	}
	info.Method = "checkpoint"
	if s.opts.ReadOnly {
		info.Method = "copy"
	}
	var err error
	info.Files, info.Bytes, err = dirSize(s.opts.FS, dir)
	info.Took = time.Since(start)
	return info, err
}

// CopyStore copies the store directory src into dst (which must not exist)
// file by file, holding src's lock meanwhile, without opening the store: it
// is how a store too damaged to open is backed up. fs nil means the disk.
func CopyStore(fs vfs.FS, src, dst string) (BackupInfo, error) {
	if fs == nil {
		fs = vfs.Default
	}
	start := time.Now()
	info := BackupInfo{Dir: dst, Method: "copy"}
	lock, err := pebble.LockDirectory(src, fs)
	if err != nil {
		if isLockErr(err) {
			return info, lockedErr(src, err)
		}
		return info, fmt.Errorf("store: lock %s: %w", src, err)
	}
	defer lock.Close()
	if err := copyFiles(fs, src, dst); err != nil {
		return info, err
	}
	info.Files, info.Bytes, err = dirSize(fs, dst)
	info.Took = time.Since(start)
	return info, err
}

// copyFiles copies every file of src but LOCK into the new directory dst.
// The caller holds src's lock.
func copyFiles(fs vfs.FS, src, dst string) error {
	if _, err := fs.Stat(dst); err == nil {
		return fmt.Errorf("store: backup: %s already exists", dst)
	}
	names, err := fs.List(src)
	if err != nil {
		return fmt.Errorf("store: backup: list %s: %w", src, err)
	}
	if err := fs.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	for _, name := range names {
		from, to := fs.PathJoin(src, name), fs.PathJoin(dst, name)
		st, err := fs.Stat(from)
		if err != nil {
			return fmt.Errorf("store: backup: %w", err)
		}
		if name == "LOCK" || st.IsDir() {
			continue
		}
		if strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob") {
			err = vfs.LinkOrCopy(fs, from, to)
		} else {
			err = vfs.Copy(fs, from, to)
		}
		if err != nil {
			return fmt.Errorf("store: backup: copy %s: %w", name, err)
		}
	}
	return syncDir(fs, dst)
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("store: open dir %s: %w", dir, err)
	}
	return errors.Join(d.Sync(), d.Close())
}

// dirSize counts the files of dir and their bytes.
func dirSize(fs vfs.FS, dir string) (files int, bytes int64, err error) {
	names, err := fs.List(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("store: list %s: %w", dir, err)
	}
	for _, name := range names {
		st, err := fs.Stat(fs.PathJoin(dir, name))
		if err != nil {
			return 0, 0, err
		}
		if !st.IsDir() {
			files++
			bytes += st.Size()
		}
	}
	return files, bytes, nil
}

// FS is the filesystem the store lives on.
func (s *Store) FS() vfs.FS { return s.opts.FS }
