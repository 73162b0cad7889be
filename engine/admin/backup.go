package admin

// GET /v1/backup: an online backup of the running broker's store, as a tar
// stream of a fresh Pebble checkpoint.
//
// The checkpoint is made next to the store (same filesystem, so sstables
// are hard links and it takes milliseconds whatever the store's size), then
// streamed file by file and deleted. Streaming rather than writing into a
// directory the client names keeps the endpoint from writing anywhere on
// the broker's host and works from another machine too. The headers carry
// the checkpoint's last seq; the tar holds a flat list of regular files.

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// HeaderLastSeq carries the backup's last seq.
const HeaderLastSeq = "X-Cairn-Last-Seq"

func (s *Server) registerBackup() {
	s.mux.HandleFunc("GET /v1/backup", s.backup)
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	st := s.opts.Store
	fs := st.FS()
	staging, err := stagingDir(fs, st.Dir())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer func() { _ = fs.RemoveAll(staging) }()
	cp := fs.PathJoin(staging, "checkpoint")
	info, err := st.Backup(cp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	names, err := fs.List(cp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set(HeaderLastSeq, strconv.FormatUint(info.LastSeq, 10))
	tw := tar.NewWriter(w)
	for _, name := range names {
		if err := addFile(tw, fs, fs.PathJoin(cp, name), name); err != nil {
			// Headers are gone: the truncated tar (no end marker) tells
			// the client the backup failed.
			s.log.Warn("backup stream failed", "err", err)
			return
		}
	}
	if err := tw.Close(); err != nil {
		s.log.Warn("backup stream failed", "err", err)
		return
	}
	s.log.Info("backup sent", "files", len(names), "bytes", info.Bytes, "last_seq", info.LastSeq)
}

// stagingDir makes a fresh directory beside the store (same filesystem:
// hard links), or in the temp directory when that is not writable.
func stagingDir(fs vfs.FS, storeDir string) (string, error) {
	if fs == vfs.Default {
		dir, err := os.MkdirTemp(filepath.Dir(filepath.Clean(storeDir)), ".cairn-backup-")
		if err == nil {
			return dir, nil
		}
		dir, err2 := os.MkdirTemp("", "cairn-backup-")
		if err2 != nil {
			return "", errors.Join(err, err2)
		}
		return dir, nil
	}
	dir := storeDir + ".backup-staging"
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

func addFile(tw *tar.Writer, fs vfs.FS, path, name string) error {
	st, err := fs.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return nil
	}
	f, err := fs.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: st.Size(), ModTime: st.ModTime(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
