package engine

import (
	"crypto/tls"
	"net"
)

// TCP keep-alive only where MQTT has none.
//
// Go turns TCP keep-alive on for every accepted connection, which costs four
// setsockopt calls per connection (a few percent of the broker's CPU in a
// connect storm). MQTT has its own keep alive: the broker closes a
// connection that is silent for 1.5 × the client's interval, which finds a
// dead peer without TCP's help. Only a client that asks for no keep alive
// (0) could leave a half-open connection holding its session forever, so
// the listeners cairn serve opens disable Go's default
// (net.ListenConfig.KeepAlive < 0) and the broker enables TCP keep-alive,
// with Go's default timing, on exactly those connections.

// enableTCPKeepAlive turns TCP keep-alive on for c's socket when the
// negotiated MQTT keep alive is 0. Connections that are not TCP underneath
// (WebSocket wrappers without Unwrap, pipes in tests) are left alone.
func (c *conn) enableTCPKeepAlive() {
	if c.keepAlive > 0 {
		return
	}
	tc := tcpConnOf(c.nc)
	if tc == nil {
		return
	}
	if err := tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true}); err != nil {
		c.log.Debug("could not enable TCP keep-alive", "err", err)
	}
}

// tcpConnOf finds the *net.TCPConn under the broker's wrappers (the
// connection limiter's, TLS), or nil.
func tcpConnOf(nc net.Conn) *net.TCPConn {
	for range 4 {
		switch x := nc.(type) {
		case *net.TCPConn:
			return x
		case *tls.Conn:
			nc = x.NetConn()
		case interface{ Unwrap() net.Conn }:
			nc = x.Unwrap()
		default:
			return nil
		}
	}
	return nil
}
