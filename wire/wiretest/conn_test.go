package wiretest

import (
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// serve runs a one-connection fake server: it answers CONNECT with a
// CONNACK, echoes PUBLISH packets, and closes on DISCONNECT (after sending a
// 5.0 DISCONNECT back).
func serve(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		r := wire.NewReader(nc, 0)
		var v wire.Version
		for {
			p, err := r.ReadPacket(v)
			if err != nil {
				return
			}
			var out wire.Packet
			switch p := p.(type) {
			case *wire.Connect:
				v = p.Version
				out = &wire.Connack{SessionPresent: p.ClientID == "old"}
			case *wire.Publish:
				out = p
			case *wire.Disconnect:
				if v == wire.V5 {
					b, _ := wire.AppendPacket(nil, &wire.Disconnect{ReasonCode: wire.ServerShuttingDown}, v)
					nc.Write(b)
				}
				return
			}
			b, err := wire.AppendPacket(nil, out, v)
			if err != nil {
				return
			}
			if _, err := nc.Write(b); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

func TestConn(t *testing.T) {
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		t.Run(v.String(), func(t *testing.T) {
			c := Dial(t, serve(t), v)
			if c.NetConn() == nil {
				t.Fatal("no net.Conn")
			}
			ack := c.Connect(t, &wire.Connect{ClientID: "old", CleanStart: true})
			if !ack.SessionPresent || ack.ReasonCode != 0 {
				t.Fatalf("CONNACK %+v", ack)
			}
			if p, err := c.Recv(20 * time.Millisecond); err == nil {
				t.Fatalf("unexpected packet %v", p)
			}
			pub := &wire.Publish{QoS: 1, PacketID: 5, Topic: "a/b", Payload: []byte("hi")}
			c.Send(pub)
			if got := c.Expect(t, Timeout); !reflect.DeepEqual(got, pub) {
				t.Fatalf("echo: %+v", got)
			}
			// A packet split across writes and a timeout in between.
			raw := ByName(v.String() + "/PUBLISH/qos0").Raw
			c.SendRaw(raw[:3])
			if _, err := c.Recv(20 * time.Millisecond); err == nil {
				t.Fatal("half a packet decoded")
			}
			c.SendRaw(raw[3:])
			if got := c.Expect(t, Timeout); !reflect.DeepEqual(got, ByName(v.String()+"/PUBLISH/qos0").Packet) {
				t.Fatalf("echo: %+v", got)
			}
			c.Send(&wire.Disconnect{})
			got := c.ExpectClosed(t, Timeout)
			if v == wire.V5 && (len(got) != 1 || got[0].(*wire.Disconnect).ReasonCode != wire.ServerShuttingDown) {
				t.Fatalf("packets before close: %v", got)
			}
			c.Close()
			c.Close()
		})
	}
}

// TestConnPipe uses NewConn over net.Pipe.
func TestConnPipe(t *testing.T) {
	a, b := net.Pipe()
	c := NewConn(t, a, wire.V5)
	go func() {
		raw := ByName("5.0/PINGRESP").Raw
		b.Write(raw)
		b.Close()
	}()
	if _, ok := c.Expect(t, Timeout).(*wire.Pingresp); !ok {
		t.Fatal("want PINGRESP")
	}
	c.ExpectClosed(t, Timeout)
}
