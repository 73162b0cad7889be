package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// ErrLocked is wrapped by Open's error when another process (or another
// Open in this process) holds the store: Pebble allows one process per
// store, even for reading. `cairn inspect` turns it into a pointer at the
// running broker's admin endpoint.
var ErrLocked = errors.New("store: in use by a running process")

// isLockErr reports whether err is Pebble failing to take the directory
// lock: fcntl answers a bare EAGAIN or EACCES for another process, Pebble's
// own table of locks "lock held by current process" for this one. An
// EACCES inside a *os.PathError is a permission problem creating LOCK, not a
// lock held by someone.
func isLockErr(err error) bool {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "lock held by current process")
}

// lockedErr wraps a lock failure of Open.
func lockedErr(dir string, err error) error {
	return fmt.Errorf("%w: %s is locked by another Open (%v)", ErrLocked, dir, err)
}
