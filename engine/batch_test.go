package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// sendPublishes writes n QoS qos PUBLISH packets (packet ids 1..n) to topic
// in one write, so that the broker finds them in one read buffer.
func sendPublishes(t *testing.T, r *rawConn, topic string, qos byte, n int) {
	t.Helper()
	var buf []byte
	for i := 1; i <= n; i++ {
		var err error
		buf, err = wire.AppendPacket(buf, &wire.Publish{QoS: qos, Topic: topic, PacketID: uint16(i), Payload: []byte(fmt.Sprint(i))}, r.v)
		if err != nil {
			t.Fatal(err)
		}
	}
	r.SendRaw(buf)
}

// expectAcks reads n acknowledgements of kind for packet ids 1..n, in order.
func expectAcks(t *testing.T, r *rawConn, kind wire.PacketType, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		p := r.Expect(t, 10*time.Second)
		a, ok := p.(*wire.Ack)
		if !ok || a.Kind != kind || a.PacketID != uint16(i) {
			t.Fatalf("ack %d: got %v %+v, want %v for packet id %d", i, p.Type(), p, kind, i)
		}
	}
}

// The publishes a client writes at once share one store commit (batch.go),
// are acknowledged in order, and every acknowledged one survives a power cut.
func TestPublishesOfOneReadShareACommit(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	sub := dialRaw(t, tb.addr)
	sub.connect(t, "sub", false, 0, nil)
	sub.subscribe(t, 1, "batch/#", 1)
	sub.Send(&wire.Disconnect{})
	sub.Close()
	// The session's close is committed after the socket closes: let it land
	// before counting events.
	if !waitUntil(5*time.Second, func() bool { r := storedSession(t, tb, "sub"); return r != nil && !r.Connected }) {
		t.Fatal("the subscriber's disconnect was not committed")
	}

	pub := dialRaw(t, tb.addr)
	pub.connect(t, "pub", true, 0, nil)
	const n = 40
	before := tb.st.CommitStats()
	sendPublishes(t, pub, "batch/x", 1, n)
	expectAcks(t, pub, wire.PUBACK, n)
	after := tb.st.CommitStats()
	// One commit per read buffer: a single write of 40 small publishes is
	// normally one read (allow a split in two); one commit each would be 40.
	if d := after.Commits - before.Commits; d < 1 || d > 2 {
		t.Fatalf("%d publishes in one write took %d commits, want 1 (or 2 if the read split)", n, d)
	}
	if d := after.Events - before.Events; d != n {
		t.Fatalf("%d events committed, want %d", d, n)
	}
	pub.Close()

	tb.crash() // only what was synced survives
	sub = dialRaw(t, tb.addr)
	if !sub.connect(t, "sub", false, 0, nil) {
		t.Fatal("session lost in the crash")
	}
	for i := 1; i <= n; i++ {
		p, ok := sub.Expect(t, 10*time.Second).(*wire.Publish)
		if !ok || string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d after the crash: %+v", i, p)
		}
		sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
	}
}

// A reader whose pipeline is full commits its batch before it waits for
// room: otherwise it would wait for steps whose commit it holds itself.
func TestBatchFlushedBeforePipelineWait(t *testing.T) {
	tb := startBroker(t, engine.Options{MaxPipeline: 2})
	sub := dialRaw(t, tb.addr)
	sub.connect(t, "sub", false, 0, nil)
	sub.subscribe(t, 1, "batch/#", 2)
	sub.Send(&wire.Disconnect{})
	sub.Close()

	pub := dialRaw(t, tb.addr)
	pub.connect(t, "pub", false, 0, nil)
	const n = 30
	sendPublishes(t, pub, "batch/y", 2, n) // QoS 2: PUBREC after the commit
	expectAcks(t, pub, wire.PUBREC, n)
	var buf []byte
	for i := 1; i <= n; i++ {
		buf, _ = wire.AppendPacket(buf, &wire.Ack{Kind: wire.PUBREL, PacketID: uint16(i)}, pub.v)
	}
	pub.SendRaw(buf)
	expectAcks(t, pub, wire.PUBCOMP, n)
}

// The acknowledgements a subscriber writes at once are one commit and one
// logged event (EvAcked with QSeqs), and they remove every entry.
func TestAcksOfOneReadAreOneEvent(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	sub := dialRaw(t, tb.addr)
	sub.connect(t, "sub", false, 0, nil)
	sub.subscribe(t, 1, "acks/#", 1)
	pub := dialRaw(t, tb.addr)
	pub.connect(t, "pub", true, 0, nil)
	const n = 20
	sendPublishes(t, pub, "acks/x", 1, n)
	expectAcks(t, pub, wire.PUBACK, n)
	var buf []byte
	for range n {
		p := sub.expectPublish(t, 10*time.Second)
		buf, _ = wire.AppendPacket(buf, &wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID}, sub.v)
	}
	before := tb.st.CommitStats()
	sub.SendRaw(buf)
	deadline := time.Now().Add(10 * time.Second)
	for tb.st.QueueInfo("sub").Count != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %+v", tb.st.QueueInfo("sub"))
		}
		time.Sleep(time.Millisecond)
	}
	after := tb.st.CommitStats()
	if c, e := after.Commits-before.Commits, after.Events-before.Events; c > 2 || e > 2 {
		t.Fatalf("%d acks in one write took %d commits and %d events, want 1 (2 if the read split)", n, c, e)
	}
}
