package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

func TestConnectRefusals(t *testing.T) {
	tb := startBroker(t, engine.Options{MaxClientIDLen: 64})
	cases := []struct {
		name string
		raw  []byte // sent as is
		want *wire.Connack
	}{
		{
			name: "unsupported protocol level",
			// CONNECT "MQTT" level 6
			raw:  []byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3c, 0x00, 0x01, 'x'},
			want: &wire.Connack{ReasonCode: wire.ConnRefusedProtocolVersion},
		},
		{
			name: "empty client id without clean session",
			raw:  []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x00, 0x00, 0x3c, 0x00, 0x00},
			want: &wire.Connack{ReasonCode: wire.ConnRefusedIdentifier},
		},
		{
			name: "3.1 empty client id",
			raw:  []byte{0x10, 0x0e, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00, 0x3c, 0x00, 0x00},
			want: &wire.Connack{ReasonCode: wire.ConnRefusedIdentifier},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, tb.addr)
			defer r.Close()
			r.SendRaw(tc.raw)
			p := r.Expect(t, 5*time.Second)
			ack, ok := p.(*wire.Connack)
			if !ok || ack.ReasonCode != tc.want.ReasonCode || ack.SessionPresent {
				t.Fatalf("got %#v, want CONNACK 0x%02X", p, byte(tc.want.ReasonCode))
			}
			r.expectClosed(t, 5*time.Second)
		})
	}
}

func TestConnectAccepts(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	for _, v := range []wire.Version{wire.V31, wire.V311, wire.V5} {
		t.Run(v.String(), func(t *testing.T) {
			r := dialRawV(t, tb.addr, v)
			defer r.Close()
			id := "acc-" + v.String()
			if v != wire.V31 {
				id = "" // an empty id is assigned one (3.1.1 clean session, 5.0)
			}
			ack := r.Connect(t, &wire.Connect{Version: v, CleanStart: true, KeepAlive: 30, ClientID: id})
			if ack.ReasonCode != 0 {
				t.Fatalf("refused: 0x%02X", byte(ack.ReasonCode))
			}
			if v == wire.V5 && (ack.Props == nil || ack.Props.AssignedClientID == "") {
				t.Fatalf("5.0 CONNACK without an assigned client id: %#v", ack.Props)
			}
			r.Send(&wire.Pingreq{})
			if _, ok := r.Expect(t, 5*time.Second).(*wire.Pingresp); !ok {
				t.Fatal("no PINGRESP")
			}
		})
	}
}

func TestProtocolViolationsClose(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	connected := []struct {
		name string
		send []byte
	}{
		{"second CONNECT", []byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 'y'}},
		{"PUBLISH QoS 3", []byte{0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01}},
		{"SUBSCRIBE with flags 0", []byte{0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}},
		{"SUBSCRIBE with no topic", []byte{0x82, 0x02, 0x00, 0x01}},
		{"PUBLISH topic with wildcard", []byte{0x30, 0x05, 0x00, 0x03, 'a', '/', '#'}},
		{"remaining length of 5 bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"CONNACK from a client", []byte{0x20, 0x02, 0x00, 0x00}},
		{"PUBACK packet id 0", []byte{0x40, 0x02, 0x00, 0x00}},
	}
	for _, tc := range connected {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, tb.addr)
			defer r.Close()
			r.connect(t, "", true, 30, nil)
			r.SendRaw(tc.send)
			r.expectClosed(t, 5*time.Second)
		})
	}
	t.Run("first packet not CONNECT", func(t *testing.T) {
		r := dialRaw(t, tb.addr)
		defer r.Close()
		r.Send(&wire.Pingreq{})
		r.expectClosed(t, 5*time.Second)
	})
	t.Run("password without username (3.1.1)", func(t *testing.T) {
		r := dialRaw(t, tb.addr)
		defer r.Close()
		r.SendRaw([]byte{0x10, 0x0f, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x42, 0x00, 0x3c, 0x00, 0x01, 'p', 0x00, 0x00})
		r.expectClosed(t, 5*time.Second)
	})
	// The broker keeps serving others.
	r := dialRaw(t, tb.addr)
	defer r.Close()
	r.connect(t, "still-here", true, 30, nil)
}

func TestConnectTimeout(t *testing.T) {
	tb := startBroker(t, engine.Options{ConnectTimeout: 300 * time.Millisecond})
	r := dialRaw(t, tb.addr)
	defer r.Close()
	r.expectClosed(t, 5*time.Second)
}

// An invalid topic filter is a malformed SUBSCRIBE: the wire decoder rejects
// it and the connection is closed (3.1.1 §4.7.1, §4.8).
func TestInvalidFilterClosesConnection(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	for _, filter := range []string{"bad/#/x", "a+", "+a/b", "#/"} {
		t.Run(filter, func(t *testing.T) {
			r := dialRaw(t, tb.addr)
			defer r.Close()
			r.connect(t, "", true, 30, nil)
			body := []byte{0x00, 0x03, 0x00, byte(len(filter))}
			body = append(body, filter...)
			body = append(body, 0x01)
			r.SendRaw(append([]byte{0x82, byte(len(body))}, body...))
			r.expectClosed(t, 5*time.Second)
		})
	}
}

func TestInboundQoS2ExactlyOnce(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprintf("persistent=%v", persistent), func(t *testing.T) {
			tb := startBroker(t, engine.Options{})
			got := newReceived()
			sub := connect(t, tb.addr, "q2-sub")
			defer sub.Disconnect(100)
			subscribe(t, sub, "q2/t", 2, got.handler)

			r := dialRaw(t, tb.addr)
			defer r.Close()
			r.connect(t, "q2-pub", !persistent, 30, nil)
			pub := &wire.Publish{QoS: 2, Topic: "q2/t", PacketID: 7, Payload: []byte("once")}
			r.Send(pub)
			r.expectAck(t, wire.PUBREC, 7)
			dup := *pub
			dup.Dup = true
			r.Send(&dup) // the client did not see PUBREC and retries
			r.expectAck(t, wire.PUBREC, 7)
			if persistent {
				// Even across a broker crash the packet id is remembered.
				r.Close()
				tb.crash()
				r = dialRaw(t, tb.addr)
				defer r.Close()
				r.connect(t, "q2-pub", false, 30, nil)
				r.Send(&dup)
				r.expectAck(t, wire.PUBREC, 7)
			}
			r.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: 7})
			r.expectAck(t, wire.PUBCOMP, 7)
			if !persistent {
				got.waitN(t, 1, 5*time.Second)
				time.Sleep(100 * time.Millisecond)
				if got.count() != 1 {
					t.Fatalf("delivered %d times, want exactly once", got.count())
				}
			}
		})
	}
}

// MQTT 3.1 marks a re-delivered PUBREL, SUBSCRIBE or UNSUBSCRIBE with DUP
// (3.1 §2.1); a 3.1 client resending PUBREL after a reconnect must get its
// PUBCOMP, not a closed connection (3.1.1 fixed the flags at 0010).
func TestMQTT31DupResends(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	r := dialRawV(t, tb.addr, wire.V31)
	defer r.Close()
	r.connect(t, "dup31", false, 30, nil)
	r.Send(&wire.Publish{QoS: 2, PacketID: 11, Topic: "q2/t", Payload: []byte("x")})
	r.expectAck(t, wire.PUBREC, 11)
	r.Close()
	// The PUBCOMP is lost: the client reconnects and resends PUBREL, DUP set.
	r = dialRawV(t, tb.addr, wire.V31)
	defer r.Close()
	r.connect(t, "dup31", false, 30, nil)
	r.SendRaw([]byte{0x6A, 0x02, 0x00, 0x0B})
	r.expectAck(t, wire.PUBCOMP, 11)
	r.SendRaw([]byte{0x8A, 0x08, 0x00, 0x09, 0x00, 0x03, 'd', '/', '1', 0x01}) // SUBSCRIBE, DUP
	if sa, ok := r.Expect(t, 5*time.Second).(*wire.Suback); !ok || sa.PacketID != 9 || len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != 1 {
		t.Fatalf("SUBSCRIBE with DUP: got %#v, want SUBACK 9 granting QoS 1", sa)
	}
	r.SendRaw([]byte{0xAA, 0x07, 0x00, 0x0A, 0x00, 0x03, 'd', '/', '1'}) // UNSUBSCRIBE, DUP
	if ua, ok := r.Expect(t, 5*time.Second).(*wire.Unsuback); !ok || ua.PacketID != 10 {
		t.Fatalf("UNSUBSCRIBE with DUP: got %#v, want UNSUBACK 10", ua)
	}
}

// Serve closes its listener when it returns, also when Shutdown came
// first: left open, the listener kept its port, so a broker restarted on
// the port could not bind (a bridge test's remote restarted quickly after
// a restart saw "address already in use").
func TestServeAfterShutdownClosesListener(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tb.b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := tb.b.Serve(l); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Serve after Shutdown: %v, want ErrClosed", err)
	}
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port is still taken after Serve returned: %v", err)
	}
	l2.Close()
}
