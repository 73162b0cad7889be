package engine_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// A client whose packets are still arriving when the broker ends its
// connection reads the broker's final packet, not a reset: the broker
// half-closes after it and discards the rest of the client's input before
// closing (linger.go). Without the linger, input arriving after the close
// is answered with an RST: the client's writes fail before it has read the
// DISCONNECT (and some systems drop the unread data on a reset).
func TestFinalPacketSurvivesUnreadInput(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	pings := bytes.Repeat([]byte{0xC0, 0x00}, 512) // PINGREQs the client is still sending
	// sendLate writes the violation, gives the broker time to answer and
	// end the connection, then goes on sending, as a client does that has
	// not read the answer yet (the Paho suite's flow-control test answers
	// PUBRECs with PUBRELs). A socket closed outright answers that with an
	// RST, and the client's next write fails with "connection reset" or
	// "broken pipe" before it has read the broker's final packet.
	sendLate := func(t *testing.T, c *rawConn, first []byte) {
		t.Helper()
		if _, err := c.NetConn().Write(first); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			time.Sleep(50 * time.Millisecond)
			if _, err := c.NetConn().Write(pings); err != nil {
				t.Fatalf("write %d after the broker's answer: %v (the broker reset the connection)", i+1, err)
			}
		}
	}

	t.Run("DISCONNECT", func(t *testing.T) {
		c, _ := mustConnect5(t, tb.addr, session5("linger-5", true, 0))
		second, err := wire.AppendPacket(nil, &wire.Connect{Version: wire.V5, ClientID: "again", CleanStart: true}, wire.V5)
		if err != nil {
			t.Fatal(err)
		}
		sendLate(t, c, second)
		c.expectDisconnect(t, wire.ProtocolError)
	})

	t.Run("DISCONNECT over TLS", func(t *testing.T) {
		e := newTLSEnv(t, engine.Options{}, false, "", true)
		c, err := dialTLS(t, e.addr, e.config(), wire.V5)
		if err != nil {
			t.Fatal(err)
		}
		if ack := c.Connect(t, session5("linger-tls", true, 0)); ack.ReasonCode != wire.Success {
			t.Fatalf("CONNACK 0x%02X", byte(ack.ReasonCode))
		}
		second, err := wire.AppendPacket(nil, &wire.Connect{Version: wire.V5, ClientID: "again", CleanStart: true}, wire.V5)
		if err != nil {
			t.Fatal(err)
		}
		sendLate(t, c, second)
		c.expectDisconnect(t, wire.ProtocolError)
	})

	t.Run("refusing CONNACK", func(t *testing.T) {
		r := dialRawV(t, tb.addr, wire.V5)
		bad, err := wire.AppendPacket(nil, &wire.Connect{Version: wire.V5, ClientID: "$bridge/not-yours", CleanStart: true}, wire.V5)
		if err != nil {
			t.Fatal(err)
		}
		sendLate(t, r, bad)
		p := r.Expect(t, 5*time.Second)
		ack, ok := p.(*wire.Connack)
		if !ok || ack.ReasonCode == wire.Success {
			t.Fatalf("got %v, want a refusing CONNACK", p)
		}
		r.expectClosed(t, 5*time.Second)
	})
}
