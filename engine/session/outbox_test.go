package session

import (
	"testing"

	"github.com/cairn-mqtt/cairn/store"
)

func msg(s string) *store.Message { return &store.Message{Topic: "t", Payload: []byte(s)} }

func TestPidForIsStableAndInRange(t *testing.T) {
	cases := []struct {
		seq uint64
		pid uint16
	}{{1, 1}, {2, 2}, {65535, 65535}, {65536, 1}, {65537, 2}, {131071, 1}}
	for _, c := range cases {
		if got := pidFor(c.seq); got != c.pid {
			t.Errorf("pidFor(%d) = %d, want %d", c.seq, got, c.pid)
		}
	}
}

func TestWindowAndOrder(t *testing.T) {
	o := New(Config{Window: 2, MemCap: 10, QoS0Cap: 10}, 0, 0, 0)
	for i := 0; i < 4; i++ {
		if !o.Push(Delivery{QoS: 1, Msg: msg("m")}) {
			t.Fatal("clean push refused below capacity")
		}
	}
	a1, ok1 := o.Next()
	a2, ok2 := o.Next()
	if _, ok := o.Next(); ok || !ok1 || !ok2 {
		t.Fatalf("window of 2 gave ok=%v,%v and a third", ok1, ok2)
	}
	if a1.PacketID == a2.PacketID || a1.Delivery.Seq >= a2.Delivery.Seq {
		t.Fatalf("packet ids %d,%d seqs %d,%d", a1.PacketID, a2.PacketID, a1.Delivery.Seq, a2.Delivery.Seq)
	}
	if res, _ := o.Ack(4, a1.PacketID); res != AckCompleted {
		t.Fatalf("PUBACK: %v", res)
	}
	if res, _ := o.Ack(4, a1.PacketID); res != AckUnknown {
		t.Fatalf("second PUBACK: %v", res)
	}
	a3, ok := o.Next()
	if !ok || a3.Delivery.Seq != a2.Delivery.Seq+1 {
		t.Fatalf("after ack: ok=%v seq=%d", ok, a3.Delivery.Seq)
	}
}

func TestQoS2Flow(t *testing.T) {
	o := New(Config{Window: 4}, 0, 0, 0)
	o.Push(Delivery{QoS: 2, Msg: msg("x")})
	a, _ := o.Next()
	if res, _ := o.Ack(7, a.PacketID); res != AckUnknown {
		t.Fatal("PUBCOMP before PUBREC accepted")
	}
	if res, _ := o.Ack(4, a.PacketID); res != AckUnknown {
		t.Fatal("PUBACK for a QoS 2 delivery accepted")
	}
	if res, _ := o.Ack(5, a.PacketID); res != AckPubrecDone {
		t.Fatal("PUBREC not accepted")
	}
	if res, _ := o.Ack(5, a.PacketID); res != AckPubrecDone {
		t.Fatal("repeated PUBREC must be answered with PUBREL again")
	}
	if res, _ := o.Ack(7, a.PacketID); res != AckCompleted {
		t.Fatal("PUBCOMP not accepted")
	}
	if o.InflightCount() != 0 {
		t.Fatal("still in flight")
	}
}

func TestPersistentLoadsFromStoreAndResumes(t *testing.T) {
	// Queue has seqs 5..9 in the store; memory holds at most 2.
	o := New(Config{Persistent: true, Window: 2, MemCap: 2}, 5, 5, 5)
	for s := uint64(5); s < 10; s++ {
		o.Push(Delivery{Seq: s, QoS: 1, Msg: msg("m")})
	}
	if o.PendingCount() != 2 || !o.Backlog() {
		t.Fatalf("pending=%d backlog=%v; want 2 in memory and a backlog", o.PendingCount(), o.Backlog())
	}
	var sent []uint64
	for {
		a, ok := o.Next()
		if !ok {
			from, to, need := o.NeedLoad()
			if !need {
				break
			}
			if from != 7 || to != 10 {
				t.Fatalf("NeedLoad [%d,%d), want [7,10)", from, to)
			}
			o.Loaded([]Delivery{{Seq: 7, QoS: 1, Msg: msg("7")}, {Seq: 9, QoS: 2, Msg: msg("9"), State: store.StatePubrec}}, to, true)
			continue
		}
		sent = append(sent, a.Delivery.Seq)
		if a.Kind == SendPublish {
			o.Ack(4, a.PacketID)
		}
		if a.Delivery.Seq == 9 && a.Kind != SendPubrel {
			t.Fatal("an entry stored in PUBREC state must resume with PUBREL")
		}
		if a.Dup {
			t.Fatalf("seq %d marked DUP on first send", a.Delivery.Seq)
		}
	}
	if len(sent) != 4 || sent[0] != 5 || sent[3] != 9 {
		t.Fatalf("sent %v, want [5 6 7 9]", sent)
	}
	// Reconnect: everything not acknowledged comes again from the head,
	// with DUP.
	o.Rewind(5)
	o.Loaded([]Delivery{{Seq: 5, QoS: 1, Msg: msg("5")}}, 10, false)
	a, _ := o.Next()
	if !a.Dup || a.PacketID != pidFor(5) {
		t.Fatalf("redelivery dup=%v pid=%d", a.Dup, a.PacketID)
	}
}

func TestBoundsRefuseCleanOverflow(t *testing.T) {
	o := New(Config{Window: 1, MemCap: 2, QoS0Cap: 1}, 0, 0, 0)
	if !o.Push(Delivery{QoS: 0, Msg: msg("a")}) || o.Push(Delivery{QoS: 0, Msg: msg("b")}) {
		t.Fatal("QoS 0 cap of 1 not enforced")
	}
	o.Push(Delivery{QoS: 1, Msg: msg("1")})
	o.Push(Delivery{QoS: 1, Msg: msg("2")})
	if o.Push(Delivery{QoS: 1, Msg: msg("3")}) {
		t.Fatal("clean session memory cap not enforced")
	}
}

func TestPacketIDNotReusedAcrossWrap(t *testing.T) {
	o := New(Config{Persistent: true, Window: 3, MemCap: 3}, 1, 1, 1)
	o.Push(Delivery{Seq: 1, QoS: 1, Msg: msg("old")})
	first, _ := o.Next() // seq 1 stays unacknowledged
	// Jump: seq 65536 maps to the same packet id as seq 1.
	o.Loaded([]Delivery{{Seq: 65536, QoS: 1, Msg: msg("wrapped")}}, 65537, true)
	if _, ok := o.Next(); ok {
		t.Fatal("sent a delivery whose packet id is still in flight")
	}
	o.Ack(4, first.PacketID)
	if a, ok := o.Next(); !ok || a.PacketID != first.PacketID {
		t.Fatalf("after the ack: ok=%v pid=%d", ok, a.PacketID)
	}
}

// A 5.0 PUBREC with an error code ends a QoS 2 delivery: Refused frees the
// window slot; it applies only to a QoS 2 delivery still awaiting PUBREC.
func TestRefused(t *testing.T) {
	o := New(Config{Window: 1, MemCap: 10, QoS0Cap: 10}, 0, 0, 0)
	o.Push(Delivery{QoS: 2, Msg: msg("a")})
	o.Push(Delivery{QoS: 1, Msg: msg("b")})
	a, _ := o.Next()
	if _, ok := o.Next(); ok {
		t.Fatal("window of 1 gave a second")
	}
	d, ok := o.Refused(a.PacketID)
	if !ok || string(d.Msg.Payload) != "a" || o.InflightCount() != 0 {
		t.Fatalf("Refused = %v, %v; in flight %d", d, ok, o.InflightCount())
	}
	b, ok := o.Next()
	if !ok || string(b.Delivery.Msg.Payload) != "b" {
		t.Fatal("the slot was not freed")
	}
	if _, ok := o.Refused(b.PacketID); ok {
		t.Fatal("Refused applied to a QoS 1 delivery")
	}
	o.Push(Delivery{QoS: 2, Msg: msg("c")})
	o.Ack(4, b.PacketID)
	c, _ := o.Next()
	if res, _ := o.Ack(5, c.PacketID); res != AckPubrecDone {
		t.Fatal("PUBREC not taken")
	}
	if _, ok := o.Refused(c.PacketID); ok {
		t.Fatal("Refused applied after a successful PUBREC")
	}
}

// Unacknowledged lists, in queue order, what the client has not
// acknowledged: in flight without PUBREC, then pending; not what is done, not
// QoS 0, not a QoS 2 delivery whose PUBREC arrived.
func TestUnacknowledged(t *testing.T) {
	o := New(Config{Window: 3, MemCap: 10, QoS0Cap: 10}, 0, 0, 0)
	msg := &store.Message{Topic: "t"}
	for _, q := range []byte{1, 2, 2, 0, 1, 1} {
		if !o.Push(Delivery{QoS: q, Msg: msg}) {
			t.Fatal("push refused")
		}
	}
	var sent []Action
	for {
		a, ok := o.Next()
		if !ok {
			break
		}
		sent = append(sent, a)
	}
	if len(sent) != 4 { // the QoS 0 one and a window of 3
		t.Fatalf("sent %d, want 4", len(sent))
	}
	var ids []uint16
	for _, a := range sent {
		if a.Delivery.QoS > 0 {
			ids = append(ids, a.PacketID)
		}
	}
	o.Ack(4, ids[0]) // PUBACK of the first QoS 1: done
	o.Ack(5, ids[1]) // PUBREC of the first QoS 2: received
	got := o.Unacknowledged(func(*Delivery) bool { return true })
	var qos []byte
	for _, d := range got {
		qos = append(qos, d.QoS)
	}
	// In flight: the second QoS 2; pending: the two QoS 1 behind the window.
	if len(got) != 3 || qos[0] != 2 || qos[1] != 1 || qos[2] != 1 || !(got[0].Seq < got[1].Seq && got[1].Seq < got[2].Seq) {
		t.Fatalf("Unacknowledged = %+v", got)
	}
	if none := o.Unacknowledged(func(d *Delivery) bool { return d.Group != "" }); none != nil {
		t.Fatalf("Unacknowledged with a filter that keeps none = %+v", none)
	}
}
