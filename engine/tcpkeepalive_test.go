package engine_test

import (
	"context"
	"net"
	"syscall"
	"testing"

	"github.com/cairn-mqtt/cairn/engine"
)

// soKeepAlive reads SO_KEEPALIVE of a TCP socket.
func soKeepAlive(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// The listeners of cairn serve accept without Go's default TCP keep-alive
// (four setsockopt calls per connection); the broker turns it on for a
// client whose MQTT keep alive is 0 (nothing else would ever find its peer
// gone) and leaves it off where MQTT's keep alive does that job.
func TestTCPKeepAliveOnlyWithoutMQTTKeepAlive(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		keepAlive uint16
		want      int
	}{{0, 1}, {30, 0}} {
		accepted := make(chan *net.TCPConn, 1)
		go func() {
			nc, err := l.Accept()
			if err != nil {
				accepted <- nil
				return
			}
			accepted <- nc.(*net.TCPConn)
			tb.b.ServeConn(nc)
		}()
		c := dialRaw(t, l.Addr().String())
		server := <-accepted
		if server == nil {
			t.Fatal("accept failed")
		}
		if got := soKeepAlive(t, server); got != 0 {
			t.Fatalf("SO_KEEPALIVE before CONNECT = %d; the listener should not set it", got)
		}
		c.connect(t, "ka", true, tc.keepAlive, nil) // fails the test unless accepted
		if got := soKeepAlive(t, server); got != tc.want {
			t.Errorf("MQTT keep alive %d: SO_KEEPALIVE = %d, want %d", tc.keepAlive, got, tc.want)
		}
		c.Close()
	}
}
