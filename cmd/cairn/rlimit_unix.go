//go:build unix

package main

import (
	"log/slog"
	"syscall"
)

// fdReserve is what the broker needs beside client sockets: the store's
// files, listeners, logs.
const fdReserve = 256

// checkFileLimit warns when the open-file limit is lower than the
// connection limit needs: the broker would then run out of descriptors
// before it refuses connections (it keeps running, retrying accept).
func checkFileLimit(log *slog.Logger, maxConns int) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return
	}
	if maxConns <= 0 || uint64(maxConns)+fdReserve > uint64(r.Cur) {
		log.Warn("the open-file limit is below what max-connections needs; raise it (ulimit -n) or lower --max-connections",
			"nofile", r.Cur, "max_connections", maxConns, "reserve", fdReserve)
	}
}
