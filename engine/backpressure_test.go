package engine_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// qos0Burst is n QoS 0 publishes of payload on topic, encoded back to back.
func qos0Burst(t *testing.T, v wire.Version, topic string, payload []byte, n int) []byte {
	t.Helper()
	var buf []byte
	for range n {
		var err error
		if buf, err = wire.AppendPacket(buf, &wire.Publish{Topic: topic, Payload: payload}, v); err != nil {
			t.Fatal(err)
		}
	}
	return buf
}

// A subscriber that keeps reading, however slowly, gets every QoS 0
// message of a publisher much faster than itself: the publisher's reader
// pauses (back-pressure) instead of reading on and dropping.
func TestQoS0BackPressureLosesNothingForASlowReader(t *testing.T) {
	tb := startBroker(t, engine.Options{MaxQueuedQoS0: 32})
	sub := dialRaw(t, tb.addr)
	sub.connect(t, "slow", true, 0, nil)
	sub.subscribe(t, 1, "bp/#", 0)
	pub := dialRaw(t, tb.addr)
	pub.connect(t, "fast", true, 0, nil)

	const n = 3000
	go pub.NetConn().Write(qos0Burst(t, pub.v, "bp/x", []byte("0123456789"), n)) // the socket may block: not the test goroutine
	for i := range n {
		p := sub.expectPublish(t, 10*time.Second)
		if !bytes.Equal(p.Payload, []byte("0123456789")) {
			t.Fatalf("message %d: %q", i, p.Payload)
		}
		if i%200 == 0 {
			time.Sleep(2 * time.Millisecond) // slower than the publisher
		}
	}
	st := tb.b.Stats()
	if d := st.MessagesDropped.Load(); d != 0 {
		t.Fatalf("%d messages dropped for a subscriber that kept reading", d)
	}
	if st.PublisherPauses.Load() == 0 {
		t.Fatal("the publisher never paused")
	}
}

// A subscriber that stops reading costs its publishers one bounded pause:
// then its QoS 0 messages are dropped (counted), and the publisher's other
// traffic goes on.
func TestQoS0BackPressureDoesNotWaitForAStuckReader(t *testing.T) {
	tb := startBroker(t, engine.Options{MaxQueuedQoS0: 32})
	stuck := dialRaw(t, tb.addr)
	stuck.connect(t, "stuck", true, 0, nil)
	stuck.subscribe(t, 1, "bp/#", 0) // and never reads again
	pub := dialRaw(t, tb.addr)
	pub.connect(t, "fast", true, 0, nil)

	payload := bytes.Repeat([]byte("x"), 8<<10)
	start := time.Now()
	burst := qos0Burst(t, pub.v, "bp/big", payload, 3000) // 24 MiB: more than the sockets hold
	ack, err := wire.AppendPacket(nil, &wire.Publish{QoS: 1, PacketID: 7, Topic: "other", Payload: []byte("after")}, pub.v)
	if err != nil {
		t.Fatal(err)
	}
	go pub.NetConn().Write(append(burst, ack...))
	pub.expectAck(t, wire.PUBACK, 7)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the publisher took %v behind a subscriber that does not read", took)
	}
	st := tb.b.Stats()
	if st.MessagesDropped.Load() == 0 {
		t.Fatal("nothing dropped for a subscriber that does not read")
	}
	// A pause that times out marks the subscriber stalled; it pauses its
	// publishers again only after its socket took enough to drain it.
	if p := st.PublisherPauses.Load(); p == 0 || p > 100 {
		t.Fatalf("%d pauses for one stuck subscriber", p)
	}
	stuck.Close()
}
