package engine_test

import (
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// restartKinds are the ways a subscriber's connection can be lost while a
// delivery is in flight.
var restartKinds = []string{"reconnect", "restart", "crash"}

func (tb *testBroker) bounce(kind string) {
	switch kind {
	case "restart":
		tb.restart()
	case "crash":
		tb.crash()
	}
}

// inFlight connects the persistent 3.1.1 subscriber id to prefix+"/t" at
// QoS 1 and publishes payload to it from prefix+"-pub": it returns the
// subscriber's connection, the publisher and the delivery, which the
// subscriber has not acknowledged.
func inFlight(t *testing.T, tb *testBroker, id, prefix, payload string) (*rawConn, paho.Client, *wire.Publish) {
	t.Helper()
	r := dialRaw(t, tb.addr)
	r.connect(t, id, false, 0, nil)
	r.subscribe(t, 1, prefix+"/t", 1)
	pub := connect(t, tb.addr, prefix+"-pub")
	publish(t, pub, prefix+"/t", 1, false, payload)
	return r, pub, r.expectPublish(t, 5*time.Second)
}

// resumeRedelivered reconnects the persistent session id and wants first,
// the delivery it left unacknowledged, sent again with DUP and the same
// packet id. It returns the connection (closed when the test ends).
func resumeRedelivered(t *testing.T, tb *testBroker, id string, first *wire.Publish) (*rawConn, *wire.Publish) {
	t.Helper()
	r := dialRaw(t, tb.addr)
	t.Cleanup(func() { r.Close() })
	if !r.connect(t, id, false, 0, nil) {
		t.Fatal("session not present")
	}
	again := r.expectPublish(t, 5*time.Second)
	if !again.Dup || again.PacketID != first.PacketID || string(again.Payload) != string(first.Payload) {
		t.Fatalf("redelivery dup=%v pid=%d (first %d) payload=%q (first %q)", again.Dup, again.PacketID, first.PacketID, again.Payload, first.Payload)
	}
	return r, again
}

// An unacknowledged QoS 1 delivery is sent again, with DUP and the same
// packet id, when the persistent session reconnects.
func TestRedeliveryWithDup(t *testing.T) {
	for _, kind := range restartKinds {
		t.Run(kind, func(t *testing.T) {
			tb := startBroker(t, engine.Options{})
			r, pub, first := inFlight(t, tb, "dup-sub", "dup", "again")
			pub.Disconnect(100)
			if first.Dup || first.QoS != 1 || first.PacketID == 0 {
				t.Fatalf("first delivery dup=%v qos=%d pid=%d", first.Dup, first.QoS, first.PacketID)
			}
			r.Close() // no PUBACK
			time.Sleep(50 * time.Millisecond)
			tb.bounce(kind)
			r, again := resumeRedelivered(t, tb, "dup-sub", first)
			r.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: again.PacketID})
			// Acknowledged: not sent a third time.
			r.Close()
			time.Sleep(50 * time.Millisecond)
			r = dialRaw(t, tb.addr)
			defer r.Close()
			r.connect(t, "dup-sub", false, 0, nil)
			if p, err := r.Recv(300 * time.Millisecond); err == nil {
				t.Fatalf("acknowledged message sent again: %#v", p)
			}
		})
	}
}

// DUP says "sent before" and nothing else (MQTT-3.3.1-3): after a restart
// or a power cut, a message queued while the persistent subscriber was away
// goes out the first time with DUP 0, and only the one that was in flight
// when it left is marked DUP.
func TestFirstDeliveryAfterRestartHasNoDup(t *testing.T) {
	for _, kind := range restartKinds {
		t.Run(kind, func(t *testing.T) {
			tb := startBroker(t, engine.Options{})
			r, pub, first := inFlight(t, tb, "nodup-sub", "nodup", "in-flight")
			r.Close() // no PUBACK: it stays in flight
			time.Sleep(50 * time.Millisecond)
			for i := range 3 {
				publish(t, pub, "nodup/t", 1, false, fmt.Sprintf("queued-%d", i))
			}
			pub.Disconnect(100)
			tb.bounce(kind)
			r, _ = resumeRedelivered(t, tb, "nodup-sub", first)
			for i := range 3 {
				p := r.expectPublish(t, 5*time.Second)
				if p.Dup || string(p.Payload) != fmt.Sprintf("queued-%d", i) {
					t.Fatalf("first delivery of %q with dup=%v, want queued-%d with DUP 0", p.Payload, p.Dup, i)
				}
			}
		})
	}
}

// A session a crash left connected has no recorded "may have been sent"
// watermark; the first window of its queue is assumed sent (DUP on its
// redelivery), but nothing published after the restart is: those go out
// with DUP 0 (MQTT-3.3.1-1).
func TestNoDupForMessagesAfterACrash(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	r, pub, first := inFlight(t, tb, "cut-sub", "cut", "in-flight")
	pub.Disconnect(100)
	tb.crash() // with the subscriber connected
	r.Close()
	r, again := resumeRedelivered(t, tb, "cut-sub", first)
	r.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: again.PacketID})
	pub = connect(t, tb.addr, "cut-pub")
	defer pub.Disconnect(100)
	for i := range 3 {
		publish(t, pub, "cut/t", 1, false, fmt.Sprintf("new-%d", i))
		p := r.expectPublish(t, 5*time.Second)
		if p.Dup || string(p.Payload) != fmt.Sprintf("new-%d", i) {
			t.Fatalf("first delivery of %q with dup=%v, want new-%d with DUP 0", p.Payload, p.Dup, i)
		}
		r.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
	}
}

// A QoS 2 delivery whose PUBREC the broker received is resumed with PUBREL,
// never with the PUBLISH again (which the client would deliver twice).
func TestOutboundQoS2ResumesWithPubrel(t *testing.T) {
	for _, kind := range restartKinds {
		t.Run(kind, func(t *testing.T) {
			tb := startBroker(t, engine.Options{})
			r := dialRaw(t, tb.addr)
			r.connect(t, "q2out", false, 0, nil)
			r.subscribe(t, 1, "q2out/t", 2)
			pub := connect(t, tb.addr, "q2out-pub")
			publish(t, pub, "q2out/t", 2, false, "exactly once")
			pub.Disconnect(100)
			p := r.expectPublish(t, 5*time.Second)
			r.Send(&wire.Ack{Kind: wire.PUBREC, PacketID: p.PacketID})
			r.expectAck(t, wire.PUBREL, p.PacketID)
			r.Close() // no PUBCOMP
			time.Sleep(50 * time.Millisecond)
			tb.bounce(kind)
			r = dialRaw(t, tb.addr)
			defer r.Close()
			r.connect(t, "q2out", false, 0, nil)
			r.expectAck(t, wire.PUBREL, p.PacketID)
			r.Send(&wire.Ack{Kind: wire.PUBCOMP, PacketID: p.PacketID})
			if x, err := r.Recv(300 * time.Millisecond); err == nil {
				t.Fatalf("after PUBCOMP got %#v", x)
			}
		})
	}
}

// The in-flight window bounds unacknowledged deliveries; the rest wait, in
// order, and packet ids are never reused while in flight.
func TestInflightWindow(t *testing.T) {
	tb := startBroker(t, engine.Options{MaxInflight: 3})
	r := dialRaw(t, tb.addr)
	defer r.Close()
	r.connect(t, "window", true, 0, nil)
	r.subscribe(t, 1, "w/t", 1)
	pub := connect(t, tb.addr, "window-pub")
	defer pub.Disconnect(100)
	for i := 0; i < 10; i++ {
		publish(t, pub, "w/t", 1, false, fmt.Sprint(i))
	}
	inflight := map[uint16]bool{}
	var order []string
	for len(order) < 3 {
		p := r.expectPublish(t, 5*time.Second)
		if inflight[p.PacketID] {
			t.Fatalf("packet id %d reused while in flight", p.PacketID)
		}
		inflight[p.PacketID] = true
		order = append(order, string(p.Payload))
	}
	if p, err := r.Recv(200 * time.Millisecond); err == nil {
		t.Fatalf("a 4th message was sent with a window of 3: %#v", p)
	}
	for id := range inflight {
		r.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: id})
		delete(inflight, id)
		p := r.expectPublish(t, 5*time.Second)
		if string(p.Payload) != "3" {
			t.Fatalf("got %q, want 3: order lost", p.Payload)
		}
		if inflight[p.PacketID] {
			t.Fatalf("packet id %d reused while in flight", p.PacketID)
		}
		break
	}
}
