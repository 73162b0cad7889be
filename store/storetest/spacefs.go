package storetest

import (
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SpaceFS is a file system whose free space is whatever the test says: it
// passes every operation to the wrapped FS and answers GetDiskUsage (statfs)
// from SetAvail. It is the fake "free space" source of the store's
// free-space guard; the writes themselves never fail for lack of space (wrap
// an errorfs for that).
type SpaceFS struct {
	vfs.FS
	avail atomic.Uint64
	total uint64
}

// NewSpaceFS wraps fs with avail bytes free on a volume of total bytes.
func NewSpaceFS(fs vfs.FS, avail, total uint64) *SpaceFS {
	s := &SpaceFS{FS: fs, total: total}
	s.avail.Store(avail)
	return s
}

// SetAvail changes the free space the next measurement sees.
func (s *SpaceFS) SetAvail(avail uint64) { s.avail.Store(avail) }

// GetDiskUsage implements vfs.FS.
func (s *SpaceFS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	a := min(s.avail.Load(), s.total)
	return vfs.DiskUsage{AvailBytes: a, TotalBytes: s.total, UsedBytes: s.total - a}, nil
}

// Unwrap implements vfs.FS.
func (s *SpaceFS) Unwrap() vfs.FS { return s.FS }
