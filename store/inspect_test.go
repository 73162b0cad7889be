package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestPreview(t *testing.T) {
	for in, want := range map[string]string{
		"21.5":                     "21.5",
		"":                         "",
		"\x00\xff\x10":             "hex:00ff10",
		"line\nbreak":              "hex:6c696e650a627265616b",
		strings.Repeat("é", 40):    strings.Repeat("é", 32) + "…",
		strings.Repeat("\x01", 20): "hex:" + strings.Repeat("01", 16) + "…",
	} {
		if got := Preview([]byte(in)); got != want {
			t.Errorf("Preview(%q) = %q, want %q", in, got, want)
		}
	}
}

// The inspect rows of a store with known contents, and of the same store
// once records are damaged: a damaged record shows as such instead of
// failing the query.
func TestInspectRows(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	commitWait(t, s, true,
		evOpen("c1"), evSub("c1", "t/#", 1), evOpen("c2"),
		evPub("t/1", "one", "c1", "c2"), evPub("t/2", "two", "c1"),
		evRetain("r/a", "ra", 0), evPubrec("c1", 1),
	)
	rows, err := s.SessionRows()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Client != "c1" || rows[0].Subscriptions != 1 || rows[0].Queued != 2 || rows[0].QueuedBytes != 6 ||
		rows[0].Inflight != 1 || rows[1].Client != "c2" || rows[1].Queued != 1 || rows[1].Damage != "" {
		t.Fatalf("session rows %+v", rows)
	}
	d, err := s.SessionDetail("c1")
	if err != nil {
		t.Fatal(err)
	}
	if d.QueueHead != 1 || d.QueueNext != 3 || len(d.Inflights) != 1 || d.Inflights[0].State != "pubrec" || d.Inflights[0].Topic != "t/1" || len(d.Subs) != 1 {
		t.Fatalf("detail %+v", d)
	}
	if _, err := s.SessionDetail("nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("detail of nobody: %v", err)
	}
	q, err := s.QueueRows("c1", 2, 0)
	if err != nil || len(q) != 1 || q[0].Seq != 2 || q[0].Topic != "t/2" || q[0].Preview != "two" {
		t.Fatalf("queue rows from 2: %+v %v", q, err)
	}
	if q, _ := s.QueueRows("c1", 0, 1); len(q) != 1 || q[0].Seq != 1 || q[0].State != "pubrec" {
		t.Fatalf("queue rows limit 1: %+v", q)
	}
	var evs []EventRow
	if _, err := s.EventRows(EventFilter{Kinds: []EventKind{EvPublished}, Client: "c2"}, func(r EventRow) error { evs = append(evs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Seq != 4 || evs[0].Topic != "t/1" || strings.Join(evs[0].Targets, ",") != "c1#1,c2#1" {
		t.Fatalf("events published for c2: %+v", evs)
	}

	// Damage: c2's session record, the body c1 and c2 share (the others
	// are inline in their entries), the retained value, an event.
	_ = s.db.Set(sessionKey(nil, "c2"), []byte{0xc1}, pebble.Sync)
	_ = s.db.Delete(msgKey(nil, 4), pebble.Sync)
	_ = s.db.Set(retainedKey(nil, "r/a"), []byte{0xc1}, pebble.Sync)
	_ = s.db.Set(eventKey(nil, 2), []byte{1, 0xc1}, pebble.Sync)
	rows, err = s.SessionRows()
	if err != nil || len(rows) != 2 || !strings.Contains(rows[1].Damage, "session record does not decode") {
		t.Fatalf("session rows after damage: %+v %v", rows, err)
	}
	q, err = s.QueueRows("c1", 0, 0)
	if err != nil || len(q) != 2 || q[0].Damage != "message body 4 is missing" || q[1].Damage != "" || q[1].Preview != "two" {
		t.Fatalf("queue rows after damage: %+v %v", q, err)
	}
	r, err := s.RetainedRows(nil)
	if err != nil || len(r) != 1 || !strings.Contains(r[0].Damage, "does not decode") {
		t.Fatalf("retained rows after damage: %+v %v", r, err)
	}
	evs = nil
	if _, err := s.EventRows(EventFilter{To: 3}, func(r EventRow) error { evs = append(evs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[1].Kind != "undecodable" || evs[1].Damage == "" {
		t.Fatalf("events after damage: %+v", evs)
	}
}

func TestParseEventKind(t *testing.T) {
	for k := EvSessionOpened; k <= EvDelivered; k++ {
		got, err := ParseEventKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseEventKind(%q) = %v, %v", k.String(), got, err)
		}
	}
	if _, err := ParseEventKind("nope"); err == nil || !strings.Contains(err.Error(), "published") {
		t.Errorf("ParseEventKind(nope) = %v", err)
	}
}

// An entry in flight shows the packet id its delivery uses, derived from
// its seq, whether or not an EvDelivered recorded it (PUBREC received,
// awaiting PUBCOMP, without one).
func TestInspectInflightPacketID(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	commitWait(t, s, true, evOpen("c"), evPub("t", "x", "c"), evPub("t", "y", "c"))
	commitWait(t, s, true, evPubrec("c", 2))
	d, err := s.SessionDetail("c")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Inflights) != 1 || d.Inflights[0].Seq != 2 || d.Inflights[0].PacketID != PacketIDFor(2) || d.Inflights[0].PacketID == 0 {
		t.Fatalf("in flight %+v, want seq 2 with packet id %d", d.Inflights, PacketIDFor(2))
	}
	rows, err := s.QueueRows("c", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].PacketID != 0 || rows[1].PacketID != PacketIDFor(2) {
		t.Fatalf("queue rows %+v: want no packet id for the queued one, %d for the one in flight", rows, PacketIDFor(2))
	}
}
