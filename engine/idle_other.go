//go:build !linux

package engine

import "net"

// waitReadable is a no-op where there is no peeking probe: the read that
// follows waits with its buffer.
func waitReadable(net.Conn) error { return nil }
