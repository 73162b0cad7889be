package session

import (
	"bytes"
	"testing"

	"github.com/cairn-mqtt/cairn/store"
)

func sized(n int) *store.Message {
	return &store.Message{Topic: "t", Payload: bytes.Repeat([]byte("x"), n)}
}

// TestMemBytesClean: a clean session's queue refuses what would take it
// over MemBytes (QoS 0 and QoS 1/2 together), and takes again once sending
// frees room; an empty queue takes any one message.
func TestMemBytesClean(t *testing.T) {
	one := Size(sized(1000))
	o := New(Config{Window: 1, MemCap: 100, QoS0Cap: 100, MemBytes: 3 * one}, 0, 0, 0)
	for i := range 3 {
		if !o.Push(Delivery{QoS: byte(i % 2), Msg: sized(1000)}) {
			t.Fatalf("push %d refused under the byte bound", i)
		}
	}
	if o.Push(Delivery{QoS: 1, Msg: sized(1000)}) || o.Push(Delivery{QoS: 0, Msg: sized(1000)}) {
		t.Fatal("push over the byte bound accepted")
	}
	if _, ok := o.Next(); !ok { // the QoS 0 one leaves memory
		t.Fatal("nothing to send")
	}
	if !o.Push(Delivery{QoS: 0, Msg: sized(1000)}) {
		t.Fatal("room freed by sending not reused")
	}
	big := New(Config{Window: 1, MemCap: 100, QoS0Cap: 100, MemBytes: 10}, 0, 0, 0)
	if !big.Push(Delivery{QoS: 1, Msg: sized(1000)}) {
		t.Fatal("an empty queue refused a message larger than the bound")
	}
	if big.Push(Delivery{QoS: 0, Msg: sized(1)}) {
		t.Fatal("a second message accepted over the bound")
	}
}

// TestMemBytesPersistent: a persistent session keeps what does not fit in
// the store: Push takes it no further, NeedLoad asks for it later.
func TestMemBytesPersistent(t *testing.T) {
	one := Size(sized(1000))
	o := New(Config{Persistent: true, Window: 10, MemCap: 100, MemBytes: 2 * one}, 1, 1, 1)
	for seq := uint64(1); seq <= 5; seq++ {
		if !o.Push(Delivery{Seq: seq, QoS: 1, Msg: sized(1000)}) {
			t.Fatal("a persistent push was refused")
		}
	}
	if o.PendingCount() != 2 {
		t.Fatalf("%d in memory, want 2", o.PendingCount())
	}
	for range 2 {
		if _, ok := o.Next(); !ok {
			t.Fatal("nothing to send")
		}
	}
	from, to, need := o.NeedLoad()
	if !need || from != 3 || to != 6 {
		t.Fatalf("NeedLoad = %d, %d, %v; want 3, 6, true", from, to, need)
	}
	o.Rewind(1)
	if o.bytes != 0 {
		t.Fatalf("bytes after Rewind: %d", o.bytes)
	}
}
