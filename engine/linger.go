package engine

import "time"

// The lingering close.
//
// When the broker ends a connection with a final packet — a 5.0 DISCONNECT
// with its reason code, a CONNACK refusing the connection — the client must
// be able to read it. Closing the socket while the client's own packets are
// still arriving defeats that: a socket closed with unread input, or one
// that receives data after the close, answers with a TCP RST, and the
// client's next write fails with "connection reset" or "broken pipe" before
// it has read the reason (some systems also discard unread data on a reset;
// Linux keeps it readable). The Paho interoperability suite's flow-control
// test shows it every time: 65 QoS 2 publishes against a Receive Maximum of
// 64, the client still answering PUBRECs with PUBRELs when the broker's
// DISCONNECT 0x93 arrives, and its PUBREL write fails.
//
// So such a connection lingers, as HTTP servers do: the broker half-closes
// it (FIN after the final packet) and reads and discards whatever the
// client still sends, until the client closes (EOF), lingerTime passes or
// lingerBytes were discarded, whichever comes first; then it closes. The
// linger happens after the session has been detached (wills, take-overs do
// not wait for it), and not at all for a take-over or a shutdown, which
// must not be slowed down by a silent old client.

const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 64 << 10
)

// lingers reports whether closing this connection should linger.
func (c *conn) lingers() bool {
	if !c.sentFinal.Load() {
		return false
	}
	switch c.why {
	case endShutdown, endTakeover:
		return false
	}
	return true
}

// closeSocket closes the connection's socket, lingering first if a final
// packet went out (see above).
func (c *conn) closeSocket() {
	if c.lingers() {
		c.linger()
	}
	c.nc.Close()
}

// linger half-closes the socket and discards the client's input for a
// bounded time and amount. Only a byte stream is half-closed: TCP (through
// the connection limiter's wrapper) or TLS (close_notify); a WebSocket has
// a closing handshake of its own (listen.wsConn.Close) and no CloseWrite.
func (c *conn) linger() {
	hc, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || hc.CloseWrite() != nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	var buf [2048]byte
	for n := 0; n < lingerBytes; {
		k, err := c.nc.Read(buf[:])
		n += k
		if err != nil {
			return
		}
	}
}
