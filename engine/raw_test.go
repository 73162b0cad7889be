package engine_test

import (
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// rawConn is a raw-packet client for the flows paho hides.
type rawConn struct {
	*wiretest.Conn
	v wire.Version
}

type rawWill struct {
	topic, payload string
	qos            byte
	retain         bool
}

func dialRaw(t testing.TB, addr string) *rawConn {
	return dialRawV(t, addr, wire.V311)
}

func dialRawV(t testing.TB, addr string, v wire.Version) *rawConn {
	t.Helper()
	return &rawConn{Conn: wiretest.Dial(t, addr, v), v: v}
}

// connect sends CONNECT and expects an accepting CONNACK; it returns the
// session present flag.
func (r *rawConn) connect(t testing.TB, id string, cleanSession bool, keepAlive uint16, w *rawWill) bool {
	t.Helper()
	c := &wire.Connect{Version: r.v, CleanStart: cleanSession, KeepAlive: keepAlive, ClientID: id}
	if w != nil {
		c.Will = &wire.Will{Topic: w.topic, Payload: []byte(w.payload), QoS: w.qos, Retain: w.retain}
	}
	ack := r.Connect(t, c)
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK refused %s: 0x%02X", id, byte(ack.ReasonCode))
	}
	return ack.SessionPresent
}

func (r *rawConn) subscribe(t testing.TB, pid uint16, filter string, qos byte) *wire.Suback {
	t.Helper()
	r.Send(&wire.Subscribe{PacketID: pid, Subscriptions: []wire.Subscription{{Filter: filter, QoS: qos}}})
	for {
		p := r.Expect(t, 5*time.Second)
		if sa, ok := p.(*wire.Suback); ok {
			if sa.PacketID != pid {
				t.Fatalf("SUBACK for packet id %d, want %d", sa.PacketID, pid)
			}
			return sa
		}
		if _, ok := p.(*wire.Publish); !ok {
			t.Fatalf("waiting for SUBACK got %s", p.Type())
		}
	}
}

// expectPublish reads packets until a PUBLISH arrives.
func (r *rawConn) expectPublish(t testing.TB, timeout time.Duration) *wire.Publish {
	t.Helper()
	p := r.Expect(t, timeout)
	pub, ok := p.(*wire.Publish)
	if !ok {
		t.Fatalf("want PUBLISH, got %s", p.Type())
	}
	return pub
}

// expectAck reads the next packet and checks it is the given ack.
func (r *rawConn) expectAck(t testing.TB, kind wire.PacketType, pid uint16) *wire.Ack {
	t.Helper()
	p := r.Expect(t, 5*time.Second)
	a, ok := p.(*wire.Ack)
	if !ok || a.Kind != kind || a.PacketID != pid {
		t.Fatalf("want %s %d, got %#v", kind, pid, p)
	}
	return a
}

func (r *rawConn) expectClosed(t testing.TB, timeout time.Duration) {
	t.Helper()
	r.ExpectClosed(t, timeout)
}
