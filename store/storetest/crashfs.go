// Package storetest holds file systems for testing code that runs on a
// store under storage failures: power cuts (CrashFS), slow or stuck fsyncs
// (SlowFS) and a volume running out of space (SpaceFS, a fake free-space
// source); failing writes and fsyncs come from Pebble's vfs/errorfs; and a
// log sink to read what the code under test logged (LogBuffer). It
// imports nothing of Cairn, so the store's own tests can use it as well as
// the engine's and the commands'.
package storetest

import (
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// CrashFS is an in-memory file system that can lose power: Clone returns a
// copy holding only what had been synced, as a machine would find its disk
// after a power cut, while Pebble keeps running on the original.
//
// It also works around a deadlock in pebble v2.1.7's MemFS
// (cockroachdb/pebble#5993, fixed upstream after v2.1.7): ReuseForWrite,
// Link and Lock take MemFS.cloneMu.RLock and then call a method that takes
// it again, so a CrashClone waiting for the write lock between the two
// deadlocks them (WAL recycling hits it). Here those three methods and Clone
// exclude each other through mu, so a clone never waits while one of them
// is half way through.
type CrashFS struct {
	*vfs.MemFS
	mu sync.RWMutex
}

// NewCrashFS returns an empty crashable file system.
func NewCrashFS() *CrashFS { return &CrashFS{MemFS: vfs.NewCrashableMem()} }

// Clone simulates a power cut: it returns a new CrashFS with only the synced
// state of this one. The original is unaffected.
func (fs *CrashFS) Clone() *CrashFS {
	return &CrashFS{MemFS: fs.CrashClone(vfs.CrashCloneCfg{})}
}

// CrashClone is MemFS.CrashClone, excluded from the racing methods.
func (fs *CrashFS) CrashClone(cfg vfs.CrashCloneCfg) *vfs.MemFS {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.MemFS.CrashClone(cfg)
}

// ReuseForWrite implements vfs.FS.
func (fs *CrashFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	return fs.MemFS.ReuseForWrite(oldname, newname, category)
}

// Link implements vfs.FS.
func (fs *CrashFS) Link(oldname, newname string) error {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	return fs.MemFS.Link(oldname, newname)
}

// Lock implements vfs.FS.
func (fs *CrashFS) Lock(name string) (io.Closer, error) {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	return fs.MemFS.Lock(name)
}
