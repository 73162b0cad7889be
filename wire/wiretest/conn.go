package wiretest

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// Timeout bounds dialing, each write, and the CONNACK wait of Connect.
const Timeout = 5 * time.Second

// Conn is a raw MQTT client connection for tests. It has no protocol logic:
// it writes the packets (or bytes) it is given and decodes what the server
// sends, as version v. Its methods must be called from the test goroutine
// (they call t.Fatalf).
type Conn struct {
	t    testing.TB
	nc   net.Conn
	v    wire.Version
	r    *wire.Reader
	once sync.Once
}

// Dial connects to addr over TCP; the connection is closed when the test
// ends. v is the version packets are encoded and decoded with.
func Dial(t testing.TB, addr string, v wire.Version) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("wiretest: dial %s: %v", addr, err)
	}
	return NewConn(t, nc, v)
}

// NewConn wraps an established connection (for example one end of
// net.Pipe); it is closed when the test ends.
func NewConn(t testing.TB, nc net.Conn, v wire.Version) *Conn {
	c := &Conn{t: t, nc: nc, v: v, r: wire.NewReader(nc, 0)}
	t.Cleanup(c.Close)
	return c
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Send encodes p for the connection's version and writes it; an encoding or
// write error fails the test.
func (c *Conn) Send(p wire.Packet) {
	c.t.Helper()
	b, err := wire.AppendPacket(nil, p, c.v)
	if err != nil {
		c.t.Fatalf("wiretest: encode %T: %v", p, err)
	}
	c.SendRaw(b)
}

// SendRaw writes b as is; a write error fails the test.
func (c *Conn) SendRaw(b []byte) {
	c.t.Helper()
	if err := c.nc.SetWriteDeadline(time.Now().Add(Timeout)); err != nil {
		c.t.Fatalf("wiretest: set write deadline: %v", err)
	}
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("wiretest: write: %v", err)
	}
}

// Recv reads the next packet, waiting at most timeout. A timeout in the
// middle of a packet does not lose it: the next Recv resumes.
func (c *Conn) Recv(timeout time.Duration) (wire.Packet, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout)) // see ExpectClosed
	return c.r.ReadPacket(c.v)
}

// Expect is Recv that fails the test on error.
func (c *Conn) Expect(t testing.TB, timeout time.Duration) wire.Packet {
	t.Helper()
	p, err := c.Recv(timeout)
	if err != nil {
		t.Fatalf("wiretest: expected a packet within %v: %v", timeout, err)
	}
	return p
}

// ExpectClosed asserts that the server closes the connection within timeout:
// a read ends with EOF or a connection reset. Packets received before the
// close (a 5.0 DISCONNECT, say) are returned. A timeout, an undecodable
// packet or any other error fails the test.
func (c *Conn) ExpectClosed(t testing.TB, timeout time.Duration) []wire.Packet {
	t.Helper()
	// A deadline cannot be set on a connection the peer already closed
	// (net.Pipe); the read then reports the close.
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	var got []wire.Packet
	for {
		p, err := c.r.ReadPacket(c.v)
		switch {
		case err == nil:
			got = append(got, p)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
			return got
		default:
			t.Fatalf("wiretest: expected the server to close the connection within %v (after %d packets): %v",
				timeout, len(got), err)
			return got
		}
	}
}

// Connect sends p (with the connection's version if p.Version is 0) and
// expects a CONNACK within Timeout, which it returns whatever its reason
// code; anything else fails the test.
func (c *Conn) Connect(t testing.TB, p *wire.Connect) *wire.Connack {
	t.Helper()
	if p.Version == 0 {
		cp := *p
		cp.Version = c.v
		p = &cp
	}
	b, err := wire.AppendPacket(nil, p, c.v)
	if err != nil {
		t.Fatalf("wiretest: encode CONNECT: %v", err)
	}
	c.SendRaw(b)
	got := c.Expect(t, Timeout)
	ack, ok := got.(*wire.Connack)
	if !ok {
		t.Fatalf("wiretest: expected CONNACK, got %s", got.Type())
	}
	return ack
}

// Close closes the connection; it may be called more than once.
func (c *Conn) Close() {
	c.once.Do(func() { _ = c.nc.Close() })
}
