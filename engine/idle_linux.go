package engine

import (
	"net"
	"syscall"
)

// waitReadable blocks until nc has data (or an end of stream or error,
// which the following read reports), without a read buffer: the runtime
// poller waits, and a one-byte MSG_PEEK probe (which consumes nothing)
// tells readiness from a spurious wake-up.
func waitReadable(nc net.Conn) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var probe [1]byte
	return rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := syscall.Recvfrom(int(fd), probe[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // nothing yet: the poller waits
			}
			return true // data, end of stream or an error: the read tells which
		}
	})
}
