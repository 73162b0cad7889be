package store

import (
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestRefCacheRing(t *testing.T) {
	defer func(n int) { refCacheMax = n }(refCacheMax)
	refCacheMax = 3
	var c refCache
	c.added(1, 1) // one reference is never shared
	if c.has(1) {
		t.Fatal("a body with one reference cached")
	}
	c.added(1, 2)
	c.added(2, 3)
	c.added(3, 4)
	if n, ok := c.count(2); !ok || n != 3 {
		t.Fatalf("count 2 = %d, %v", n, ok)
	}
	c.set(2, 0) // last reference: forgotten
	if c.has(2) {
		t.Fatal("released body still cached")
	}
	c.added(4, 2) // full ring: the oldest id (1) goes
	if c.has(1) || !c.has(3) || !c.has(4) || len(c.counts) != 2 {
		t.Fatalf("eviction: %v", c.counts)
	}
	c.added(5, 2) // evicts the slot of 2, already gone
	c.added(6, 2) // evicts 3
	if c.has(3) || !c.has(4) || !c.has(5) || !c.has(6) {
		t.Fatalf("eviction order: %v", c.counts)
	}
	c.forget(4)
	c.reset()
	if len(c.counts) != 0 || len(c.ring) != 0 {
		t.Fatal("reset")
	}
	var off refCache
	off.off = true
	off.added(1, 5)
	if off.has(1) {
		t.Fatal("a cache that is off cached")
	}
}

// The acks of a fan-out read no refcount: each subscriber's ack batch is a
// plain (unindexed) batch, the body stays stored once until the last ack,
// and after a reopen (empty cache) the rest is released by the read path
// with the same result.
func TestRefCacheAcksReadNothing(t *testing.T) {
	fs := vfs.NewMem()
	s := openTest(t, fs)
	clients := []string{"c1", "c2", "c3", "c4"}
	commitWait(t, s, true, evPub("t", "x", clients...))
	commitWait(t, s, true, evPub("t", "y", clients...))
	for _, c := range clients[:2] {
		ack := []*Event{evAck(c, 1)}
		if s.anyReads(ack) {
			t.Fatalf("ack of %s needs an indexed batch: the refcount is read", c)
		}
		commitWait(t, s, true, ack...)
	}
	got := projection(t, s)
	if !slices.Contains(got, "m/1") || !slices.Contains(got, "c/1=2") {
		t.Fatalf("after two of four acks: %v", got)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, fs)
	defer s.Close()
	for _, c := range clients[2:] {
		commitWait(t, s, true, evAck(c, 1))
	}
	for _, c := range clients {
		commitWait(t, s, true, evAck(c, 2))
	}
	if got := projection(t, s); slices.ContainsFunc(got, func(k string) bool { return k[0] == 'm' || k[0] == 'c' }) {
		t.Fatalf("bodies left after every ack: %v", got)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}
