package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// rawConn is a wiretest connection that reports errors instead of failing
// the test, so that it can be used from worker goroutines and survive the
// broker being killed under it. Receiving goes through wiretest.Conn.Recv;
// sending encodes with package wire. One goroutine may send while another
// receives.
type rawConn struct {
	rc  *wiretest.Conn
	nc  net.Conn
	v   wire.Version
	buf []byte
}

const ioTimeout = 5 * time.Second

// dialRaw connects to addr; the connection is closed when the test ends at
// the latest.
func dialRaw(t testing.TB, addr string, v wire.Version) (*rawConn, error) {
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, err
	}
	return &rawConn{rc: wiretest.NewConn(t, nc, v), nc: nc, v: v}, nil
}

// send encodes ps and writes them with one write.
func (c *rawConn) send(ps ...wire.Packet) error {
	c.buf = c.buf[:0]
	for _, p := range ps {
		var err error
		if c.buf, err = wire.AppendPacket(c.buf, p, c.v); err != nil {
			return fmt.Errorf("encode %s: %w", p.Type(), err)
		}
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(c.buf)
	return err
}

// recv reads the next packet, waiting at most d (a timeout does not lose a
// partly read packet).
func (c *rawConn) recv(d time.Duration) (wire.Packet, error) { return c.rc.Recv(d) }

// connect sends CONNECT (with the connection's version) and waits for a
// successful CONNACK.
func (c *rawConn) connect(p *wire.Connect) (*wire.Connack, error) {
	cp := *p
	cp.Version = c.v
	if err := c.send(&cp); err != nil {
		return nil, err
	}
	pkt, err := c.recv(ioTimeout)
	if err != nil {
		return nil, fmt.Errorf("waiting for CONNACK: %w", err)
	}
	ack, ok := pkt.(*wire.Connack)
	if !ok {
		return nil, fmt.Errorf("expected CONNACK, got %s", pkt.Type())
	}
	if ack.ReasonCode != 0 {
		return ack, fmt.Errorf("CONNACK refused: code 0x%02x", byte(ack.ReasonCode))
	}
	return ack, nil
}

func (c *rawConn) close() { c.rc.Close() }

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// persistentConnect is the CONNECT of a persistent session in version v
// (clean session 0; a 5.0 session expiry of an hour).
func persistentConnect(id string, v wire.Version) *wire.Connect {
	p := &wire.Connect{ClientID: id, Version: v}
	if v == wire.V5 {
		exp := uint32(3600)
		p.Props = &wire.Properties{SessionExpiry: &exp}
	}
	return p
}

// subscribePersistent creates (or resumes) the persistent session id,
// subscribes it and disconnects, on the test goroutine.
func subscribePersistent(t testing.TB, addr, id string, v wire.Version, subs ...wire.Subscription) {
	t.Helper()
	c := wiretest.Dial(t, addr, v)
	defer c.Close()
	if ack := c.Connect(t, persistentConnect(id, v)); ack.ReasonCode != 0 {
		t.Fatalf("%s: CONNACK code 0x%02x", id, byte(ack.ReasonCode))
	}
	c.Send(&wire.Subscribe{PacketID: 1, Subscriptions: subs})
	p := c.Expect(t, ioTimeout)
	sa, ok := p.(*wire.Suback)
	if !ok {
		t.Fatalf("%s: expected SUBACK, got %s", id, p.Type())
	}
	for i, code := range sa.ReasonCodes {
		if i >= len(subs) || byte(code) != subs[i].QoS {
			t.Fatalf("%s: SUBACK codes %v for %+v", id, sa.ReasonCodes, subs)
		}
	}
	if len(sa.ReasonCodes) != len(subs) {
		t.Fatalf("%s: SUBACK has %d codes for %d filters", id, len(sa.ReasonCodes), len(subs))
	}
	c.Send(&wire.Disconnect{})
	c.ExpectClosed(t, ioTimeout)
}

// flood publishes QoS 0 messages to topic, a batch per write, as fast as the
// connection takes them, until stop is closed, a write fails or limit
// passes. The broker's reader of such a connection always has a packet to
// read. It counts the messages written in sent and returns why it stopped.
func flood(t testing.TB, addr, id, topic string, sent *atomic.Int64, stop <-chan struct{}, limit time.Duration) error {
	c, err := dialRaw(t, addr, wire.V311)
	if err != nil {
		return err
	}
	defer c.close()
	if _, err := c.connect(&wire.Connect{ClientID: id, CleanStart: true}); err != nil {
		return err
	}
	batch := make([]wire.Packet, 100)
	for i := range batch {
		batch[i] = &wire.Publish{Topic: topic, Payload: []byte("flood")}
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := c.send(batch...); err != nil {
			return err
		}
		sent.Add(int64(len(batch)))
	}
	return fmt.Errorf("the broker still reads after %v", limit)
}

// waitFor polls cond every few milliseconds until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
