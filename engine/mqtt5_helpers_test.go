package engine_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// testClock is the broker clock of tests that need time to pass faster than
// it does: real time plus an offset that advance moves forward. Runtime
// timers still run on real time, so a deadline the offset jumps over is
// settled by ExpireSessions or a restart, not by the timer.
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time             { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration)    { c.off.Add(int64(d)) }
func ptrU32(v uint32) *uint32                   { return &v }
func ptrU16(v uint16) *uint16                   { return &v }
func ptrByte(v byte) *byte                      { return &v }
func sub5(f string, qos byte) wire.Subscription { return wire.Subscription{Filter: f, QoS: qos} }

// connect5 dials and sends a 5.0 CONNECT, returning the CONNACK whatever its
// code.
func connect5(t testing.TB, addr string, c *wire.Connect) (*rawConn, *wire.Connack) {
	t.Helper()
	r := dialRawV(t, addr, wire.V5)
	c.Version = wire.V5
	return r, r.Connect(t, c)
}

// mustConnect5 is connect5 that requires an accepting CONNACK.
func mustConnect5(t testing.TB, addr string, c *wire.Connect) (*rawConn, *wire.Connack) {
	t.Helper()
	r, ack := connect5(t, addr, c)
	if ack.ReasonCode != wire.Success {
		t.Fatalf("CONNACK %q refused: 0x%02X %s", c.ClientID, byte(ack.ReasonCode), reasonOf(ack.Props))
	}
	return r, ack
}

// session5 is a 5.0 CONNECT with a session expiry interval (0: none).
func session5(id string, clean bool, expiry uint32) *wire.Connect {
	c := &wire.Connect{Version: wire.V5, ClientID: id, CleanStart: clean, KeepAlive: 60}
	if expiry > 0 {
		c.Props = &wire.Properties{SessionExpiry: ptrU32(expiry)}
	}
	return c
}

func reasonOf(p *wire.Properties) string {
	if p == nil {
		return ""
	}
	return p.ReasonString
}

// subscribe5 sends SUBSCRIBE and returns the SUBACK (PUBLISHes that arrive
// first are skipped).
func (r *rawConn) subscribe5(t testing.TB, pid uint16, props *wire.Properties, subs ...wire.Subscription) *wire.Suback {
	t.Helper()
	r.Send(&wire.Subscribe{PacketID: pid, Props: props, Subscriptions: subs})
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

// expectDisconnect reads until the server's DISCONNECT, checks its reason
// code, and checks that the connection is then closed.
func (r *rawConn) expectDisconnect(t testing.TB, code wire.ReasonCode) *wire.Disconnect {
	t.Helper()
	for {
		p := r.Expect(t, 5*time.Second)
		d, ok := p.(*wire.Disconnect)
		if !ok {
			continue // acks or deliveries queued before it
		}
		if d.ReasonCode != code {
			t.Fatalf("DISCONNECT 0x%02X (%s), want 0x%02X", byte(d.ReasonCode), reasonOf(d.Props), byte(code))
		}
		r.expectClosed(t, 5*time.Second)
		return d
	}
}

// expectSilence checks that nothing arrives for d.
func (r *rawConn) expectSilence(t testing.TB, d time.Duration) {
	t.Helper()
	if p, err := r.Recv(d); err == nil {
		t.Fatalf("expected nothing, got %s %#v", p.Type(), p)
	}
}

// publishQoS1 publishes and waits for the PUBACK, returning it.
func (r *rawConn) publishQoS1(t testing.TB, pid uint16, topic, payload string, props *wire.Properties) *wire.Ack {
	t.Helper()
	r.Send(&wire.Publish{QoS: 1, PacketID: pid, Topic: topic, Payload: []byte(payload), Props: props})
	return r.expectAck(t, wire.PUBACK, pid)
}

// publishQoS2 runs a whole QoS 2 publish (PUBLISH, PUBREC, PUBREL,
// PUBCOMP) and returns the PUBREC.
func (r *rawConn) publishQoS2(t testing.TB, pid uint16, topic, payload string, props *wire.Properties) *wire.Ack {
	t.Helper()
	r.Send(&wire.Publish{QoS: 2, PacketID: pid, Topic: topic, Payload: []byte(payload), Props: props})
	rec := r.expectAck(t, wire.PUBREC, pid)
	r.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: pid})
	r.expectAck(t, wire.PUBCOMP, pid)
	return rec
}

// storedSession reads a client's session record from the store (nil: none).
func storedSession(t testing.TB, tb *testBroker, id string) *store.Session {
	t.Helper()
	all, err := tb.st.LoadSessions()
	if err != nil {
		t.Fatalf("load sessions: %v", err)
	}
	for _, s := range all {
		if s.Session.ClientID == id {
			return &s.Session
		}
	}
	return nil
}

// eventKinds counts the logged events of each kind for a client.
func eventKinds(t testing.TB, tb *testBroker, client string) map[store.EventKind]int {
	t.Helper()
	n := map[store.EventKind]int{}
	err := tb.st.Events(0, func(ev *store.Event) error {
		if ev.Client == client {
			n[ev.Kind]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	return n
}

// crashFor simulates a power cut that keeps the broker down for d on the
// given clock: the clock jumps d, then the broker restarts over what was
// synced (the old broker's clone is taken before it sees the new time run
// anything: its timers wait on real time).
func (tb *testBroker) crashFor(clk *testClock, d time.Duration) {
	tb.t.Helper()
	clk.advance(d)
	tb.crash()
}
