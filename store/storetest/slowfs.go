package storetest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SlowFS is a file system whose fsyncs are slow, or stuck: every Sync,
// SyncData and SyncTo of a file (and of a directory) written through it
// first waits Delay, and while the FS is held it waits until Release. Reads
// and writes are not slowed: it models a disk whose cache flushes are the
// bottleneck, which is what an fsync-bound broker sees.
type SlowFS struct {
	vfs.FS
	delay   atomic.Int64 // nanoseconds
	syncs   atomic.Int64
	waiting atomic.Int64

	mu   sync.Mutex
	gate chan struct{} // closed: syncs pass; nil: never held
}

// NewSlowFS wraps fs with every fsync taking delay.
func NewSlowFS(fs vfs.FS, delay time.Duration) *SlowFS {
	s := &SlowFS{FS: fs}
	s.delay.Store(int64(delay))
	return s
}

// SetDelay changes the delay of the fsyncs that start from now on.
func (s *SlowFS) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// Hold makes every fsync that starts from now on wait for Release.
func (s *SlowFS) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
}

// Release lets the held fsyncs (and all later ones) through.
func (s *SlowFS) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

// Syncs counts the fsyncs that completed; Waiting those in progress.
func (s *SlowFS) Syncs() int64   { return s.syncs.Load() }
func (s *SlowFS) Waiting() int64 { return s.waiting.Load() }

func (s *SlowFS) slow() {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.syncs.Add(1)
}

func (s *SlowFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &slowFile{File: f, fs: s}, nil
}

// Create implements vfs.FS.
func (s *SlowFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return s.wrap(s.FS.Create(name, category))
}

// OpenReadWrite implements vfs.FS.
func (s *SlowFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return s.wrap(s.FS.OpenReadWrite(name, category, opts...))
}

// ReuseForWrite implements vfs.FS.
func (s *SlowFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return s.wrap(s.FS.ReuseForWrite(oldname, newname, category))
}

// OpenDir implements vfs.FS.
func (s *SlowFS) OpenDir(name string) (vfs.File, error) { return s.wrap(s.FS.OpenDir(name)) }

// Unwrap implements vfs.FS.
func (s *SlowFS) Unwrap() vfs.FS { return s.FS }

type slowFile struct {
	vfs.File
	fs *SlowFS
}

func (f *slowFile) Sync() error {
	f.fs.slow()
	return f.File.Sync()
}

func (f *slowFile) SyncData() error {
	f.fs.slow()
	return f.File.SyncData()
}

func (f *slowFile) SyncTo(length int64) (bool, error) {
	f.fs.slow()
	return f.File.SyncTo(length)
}
