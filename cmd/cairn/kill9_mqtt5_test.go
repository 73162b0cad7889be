package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// TestKillNineMQTT5Deadlines: MQTT 5.0 deadlines are absolute times in the
// store, so a kill -9 and the time the broker stays down count:
//   - a session whose expiry passes while the broker is down is gone at
//     restart, one whose expiry is ahead is kept;
//   - a delayed will whose delay passes while down is published at
//     restart, one whose delay is ahead is not (yet);
//   - a queued message whose expiry passes while down is not delivered,
//     one still valid is delivered with the remaining interval counted down.
func TestKillNineMQTT5Deadlines(t *testing.T) {
	b := startBroker(t)
	conn5 := func(id string, expiry uint32) *wire.Connect {
		return &wire.Connect{Version: wire.V5, ClientID: id, KeepAlive: 60, Props: &wire.Properties{SessionExpiry: &expiry}}
	}
	dial := func() *wiretest.Conn { return wiretest.Dial(t, b.addr, wire.V5) }
	mustAck := func(c *wiretest.Conn, p *wire.Connect) *wire.Connack {
		t.Helper()
		ack := c.Connect(t, p)
		if ack.ReasonCode != 0 {
			t.Fatalf("%s: CONNACK 0x%02x", p.ClientID, byte(ack.ReasonCode))
		}
		return ack
	}
	subscribe := func(id string, expiry uint32, filter string) {
		t.Helper()
		c := dial()
		defer c.Close()
		mustAck(c, conn5(id, expiry))
		c.Send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: filter, QoS: 1}}})
		if _, ok := c.Expect(t, ioTimeout).(*wire.Suback); !ok {
			t.Fatalf("%s: no SUBACK", id)
		}
		c.Send(&wire.Disconnect{})
		c.ExpectClosed(t, ioTimeout)
	}
	subscribe("k5-watch", 3600, "k5/will/#")
	subscribe("k5-sub", 3600, "k5/msg/#")
	subscribe("k5-short", 2, "k5/short")
	subscribe("k5-long", 3600, "k5/long")
	for id, delay := range map[string]uint32{"k5-will-due": 2, "k5-will-later": 600} {
		c := dial()
		p := conn5(id, 3600)
		d := delay
		p.Will = &wire.Will{Topic: "k5/will/" + id, QoS: 1, Payload: []byte(id), Props: &wire.Properties{WillDelay: &d}}
		mustAck(c, p)
		c.Close() // no DISCONNECT: the will delay starts
	}
	pub := dial()
	mustAck(pub, &wire.Connect{Version: wire.V5, ClientID: "k5-pub", CleanStart: true})
	for i, m := range []struct {
		topic  string
		expiry uint32
	}{{"k5/msg/short", 2}, {"k5/msg/long", 600}} {
		e := m.expiry
		pub.Send(&wire.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: m.topic, Payload: []byte(m.topic), Props: &wire.Properties{MessageExpiry: &e}})
		if a, ok := pub.Expect(t, ioTimeout).(*wire.Ack); !ok || a.Kind != wire.PUBACK || a.ReasonCode != 0 {
			t.Fatalf("publish %s: %#v", m.topic, a)
		}
	}
	pub.Close()
	time.Sleep(200 * time.Millisecond) // the abrupt closes are detached (records offline, wills pending)

	b.kill9()
	down := time.Now()
	time.Sleep(3 * time.Second)
	b.restart()

	c := dial()
	if ack := mustAck(c, conn5("k5-short", 2)); ack.SessionPresent {
		t.Fatal("k5-short: session present after its 2 s expiry passed while the broker was down")
	}
	c.Close()
	c = dial()
	if ack := mustAck(c, conn5("k5-long", 3600)); !ack.SessionPresent {
		t.Fatal("k5-long: session lost")
	}
	c.Close()

	collect := func(c *wiretest.Conn) (got []string) {
		for {
			p, err := c.Recv(500 * time.Millisecond)
			if err != nil {
				return got
			}
			if pp, ok := p.(*wire.Publish); ok {
				c.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: pp.PacketID})
				e := "-"
				if pp.Props != nil && pp.Props.MessageExpiry != nil {
					e = fmt.Sprint(*pp.Props.MessageExpiry)
				}
				got = append(got, pp.Topic+" "+e)
			}
		}
	}
	w := dial()
	mustAck(w, conn5("k5-watch", 3600))
	if got := collect(w); len(got) != 1 || got[0] != "k5/will/k5-will-due -" {
		t.Fatalf("wills after the restart: %v, want only k5-will-due's", got)
	}
	s := dial()
	mustAck(s, conn5("k5-sub", 3600))
	got := collect(s)
	slices.Sort(got)
	if len(got) != 1 {
		t.Fatalf("queued messages after the restart: %v, want only k5/msg/long", got)
	}
	var left int
	if _, err := fmt.Sscanf(got[0], "k5/msg/long %d", &left); err != nil {
		t.Fatalf("delivery %q", got[0])
	}
	downFor := int(time.Since(down).Seconds())
	if left > 600-3 || left < 600-downFor-5 {
		t.Fatalf("remaining expiry %d s after %d s down, want about %d", left, downFor, 600-downFor)
	}
	t.Logf("after %v down: remaining message expiry %d s", time.Since(down).Round(time.Millisecond), left)
}
