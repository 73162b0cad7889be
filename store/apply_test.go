package store

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Event constructors for tests.

func evOpen(c string) *Event {
	return &Event{Kind: EvSessionOpened, Client: c, Session: &Session{ClientID: c, Version: 5, ExpiryInterval: 0xFFFFFFFF, Connected: true}}
}
func evClosed(c string) *Event {
	return &Event{Kind: EvSessionClosed, Client: c, Session: &Session{ClientID: c, Version: 5, ExpiryInterval: 60}}
}
func evSub(c, f string, qos byte) *Event {
	return &Event{Kind: EvSubscribed, Client: c, Filter: f, Sub: &Subscription{QoS: qos}}
}
func evUnsub(c, f string) *Event { return &Event{Kind: EvUnsubscribed, Client: c, Filter: f} }
func evPub(topic, payload string, targets ...string) *Event {
	ev := &Event{Kind: EvPublished, Client: "pub", Msg: &Message{Topic: topic, Payload: []byte(payload), QoS: 1}}
	for _, c := range targets {
		ev.Targets = append(ev.Targets, Target{Client: c, QoS: 1})
	}
	return ev
}
func evRetain(topic, payload string, expiresAt int64) *Event {
	ev := evPub(topic, payload)
	ev.Msg.Retain, ev.Msg.ExpiresAt = true, expiresAt
	return ev
}
func evAck(c string, q uint64) *Event { return &Event{Kind: EvAcked, Client: c, QSeq: q} }
func evDrop(c string, q uint64) *Event {
	return &Event{Kind: EvDropped, Client: c, QSeq: q, Reason: "expired"}
}
func evPubrec(c string, q uint64) *Event { return &Event{Kind: EvPubrecReceived, Client: c, QSeq: q} }
func evDelivered(c string, q uint64, pid uint16) *Event {
	return &Event{Kind: EvDelivered, Client: c, QSeq: q, PacketID: pid}
}
func evReleased(c string, pid uint16) *Event {
	return &Event{Kind: EvReleased, Client: c, PacketID: pid}
}
func evDropSession(c string) *Event   { return &Event{Kind: EvSessionDropped, Client: c} }
func evExpireSession(c string) *Event { return &Event{Kind: EvSessionExpired, Client: c} }
func evRetainedExpired(topic string, at int64) *Event {
	return &Event{Kind: EvRetainedExpired, Topic: topic, Time: at}
}

func TestApply(t *testing.T) {
	withPID := func(ev *Event, pid uint16) *Event { ev.InboundPID = pid; return ev }
	cases := []struct {
		name    string
		commits [][]*Event
		want    []string
	}{
		{"session opened", [][]*Event{{evOpen("c1")}}, []string{"s/c1"}},
		{"session closed keeps record", [][]*Event{{evOpen("c1")}, {evClosed("c1")}}, []string{"s/c1"}},
		{"client id with slash", [][]*Event{{evOpen("a/b"), evSub("a/b", "x/#", 1)}}, []string{"s/a/b", "u/a/b/x/#"}},
		{"subscribe", [][]*Event{{evSub("c1", "a/+", 1), evSub("c1", "b", 2)}}, []string{"u/c1/a/+", "u/c1/b"}},
		{"unsubscribe", [][]*Event{{evSub("c1", "a/+", 1), evSub("c1", "b", 2)}, {evUnsub("c1", "b")}}, []string{"u/c1/a/+"}},
		{"publish fan-out 1: body inline in the entry, no m/, no refcount", [][]*Event{{evPub("t", "hello", "c1")}},
			[]string{"n/c1=h1,n2,c1,b5", "q/c1/1+body"}},
		{"publish fan-out 3: one body, refcount 3", [][]*Event{{evPub("t", "abc", "c1", "c2", "c3")}},
			[]string{"c/1=3", "m/1", "n/c1=h1,n2,c1,b3", "n/c2=h1,n2,c1,b3", "n/c3=h1,n2,c1,b3", "q/c1/1", "q/c2/1", "q/c3/1"}},
		{"publish with zero targets stores no body", [][]*Event{{evPub("t", "abc")}}, nil},
		{"fan-out 1 ack deletes body", [][]*Event{{evPub("t", "hello", "c1")}, {evAck("c1", 1)}},
			[]string{"n/c1=h2,n2,c0,b0"}},
		{"fan-out 3, one ack", [][]*Event{{evPub("t", "abc", "c1", "c2", "c3")}, {evAck("c2", 1)}},
			[]string{"c/1=2", "m/1", "n/c1=h1,n2,c1,b3", "n/c2=h2,n2,c0,b0", "n/c3=h1,n2,c1,b3", "q/c1/1", "q/c3/1"}},
		{"fan-out 3, two acks drop the refcount key", [][]*Event{{evPub("t", "abc", "c1", "c2", "c3")}, {evAck("c2", 1), evDrop("c1", 1)}},
			[]string{"m/1", "n/c1=h2,n2,c0,b0", "n/c2=h2,n2,c0,b0", "n/c3=h1,n2,c1,b3", "q/c3/1"}},
		{"fan-out 3, all acked: body gone", [][]*Event{{evPub("t", "abc", "c1", "c2", "c3")}, {evAck("c2", 1)}, {evAck("c3", 1)}, {evAck("c1", 1)}},
			[]string{"n/c1=h2,n2,c0,b0", "n/c2=h2,n2,c0,b0", "n/c3=h2,n2,c0,b0"}},
		{"one event acks several", [][]*Event{{evPub("a", "1", "c1"), evPub("b", "22", "c1"), evPub("c", "333", "c1")},
			{&Event{Kind: EvAcked, Client: "c1", QSeq: 1, QSeqs: []uint64{3, 9}}}},
			[]string{"n/c1=h2,n4,c1,b2", "q/c1/2+body"}},
		{"publish and ack in one batch", [][]*Event{{evPub("t", "abc", "c1"), evAck("c1", 1)}},
			[]string{"n/c1=h2,n2,c0,b0"}},
		{"same client twice", [][]*Event{{evPub("t", "ab", "c1", "c1")}, {evAck("c1", 1)}},
			[]string{"m/1", "n/c1=h2,n3,c1,b2", "q/c1/2"}},
		{"ack of missing entry is a no-op", [][]*Event{{evPub("t", "ab", "c1")}, {evAck("c1", 7), evAck("c9", 1), evPubrec("c1", 9), evDelivered("c1", 9, 3)}},
			[]string{"n/c1=h1,n2,c1,b2", "q/c1/1+body"}},
		{"out-of-order acks move the head", [][]*Event{{evPub("a", "1", "c1")}, {evPub("b", "22", "c1")}, {evPub("c", "333", "c1")}, {evAck("c1", 2)}, {evAck("c1", 1)}},
			[]string{"n/c1=h3,n4,c1,b3", "q/c1/3+body"}},
		{"dropped entry", [][]*Event{{evPub("a", "1", "c1")}, {evPub("b", "22", "c1")}, {evDrop("c1", 1)}},
			[]string{"n/c1=h2,n3,c1,b2", "q/c1/2+body"}},
		{"inbound pid, then released", [][]*Event{{withPID(evPub("t", "x"), 7), withPID(evPub("t", "y"), 8)}, {evReleased("pub", 7)}},
			[]string{"i/pub/8"}},
		{"retained set", [][]*Event{{evRetain("t", "v", 0)}}, []string{"r/t"}},
		{"retained set with expiry", [][]*Event{{evRetain("t", "v", 100)}}, []string{"r/t", "x/100/t"}},
		{"retained replaced: old index entry removed", [][]*Event{{evRetain("t", "v", 100)}, {evRetain("t", "w", 200)}},
			[]string{"r/t", "x/200/t"}},
		{"retained replaced by one without expiry", [][]*Event{{evRetain("t", "v", 100)}, {evRetain("t", "w", 0)}}, []string{"r/t"}},
		{"retained cleared by empty payload", [][]*Event{{evRetain("t", "v", 100), evRetain("u", "v", 0)}, {evRetain("t", "", 0)}}, []string{"r/u"}},
		{"retained with targets: body and retained copy", [][]*Event{{func() *Event { e := evRetain("t", "v", 0); e.Targets = []Target{{Client: "c1"}}; return e }()}},
			[]string{"n/c1=h1,n2,c1,b1", "q/c1/1+body", "r/t"}},
		{"retained expired", [][]*Event{{evRetain("t", "v", 100), evRetain("u", "v", 300)}, {evRetainedExpired("t", 150), evRetainedExpired("u", 150)}},
			[]string{"r/u", "x/300/u"}},
		{"retained expired without time is unconditional", [][]*Event{{evRetain("t", "v", 0)}, {evRetainedExpired("t", 0), evRetainedExpired("nope", 0)}}, nil},
		{"retained expired spares a newer value", [][]*Event{{evRetain("t", "v", 100)}, {evRetain("t", "w", 500)}, {evRetainedExpired("t", 150)}},
			[]string{"r/t", "x/500/t"}},
		{"session dropped releases refs", [][]*Event{
			{evOpen("c1"), evSub("c1", "t", 1), evOpen("c2"), evPub("t", "abc", "c1", "c2"), evPub("t", "d", "c1"), withPID(evPub("x", "y"), 5)},
			{evDelivered("c1", 1, 1)},
			{evDropSession("c1"), evDropSession("pub")}},
			[]string{"m/4", "n/c2=h1,n2,c1,b3", "q/c2/1", "s/c2"}}, // msg id = event seq
		{"session expired releases everything", [][]*Event{
			{evOpen("c1"), evOpen("c2"), evPub("t", "abc", "c1", "c2", "c3"), evPub("t", "d", "c1")},
			{evExpireSession("c1"), evDropSession("c2"), evDropSession("c3")}},
			nil},
		{"dropped then re-created queue restarts at 1", [][]*Event{{evPub("t", "a", "c1"), evPub("t", "b", "c1")}, {evDropSession("c1"), evPub("t", "c", "c1")}},
			[]string{"n/c1=h1,n2,c1,b1", "q/c1/1+body"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, vfs.NewMem())
			defer s.Close()
			n := 0
			for _, evs := range tc.commits {
				commitWait(t, s, true, evs...)
				n += len(evs)
			}
			got := projection(t, s)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("projection:\n got %q\nwant %q", got, tc.want)
			}
			if s.LastSeq() != uint64(n) {
				t.Fatalf("LastSeq %d, want %d", s.LastSeq(), n)
			}
			logged := 0
			if err := s.Events(0, func(ev *Event) error { logged++; return nil }); err != nil {
				t.Fatal(err)
			}
			if logged != n {
				t.Fatalf("%d events logged, want %d (no-ops are logged too)", logged, n)
			}
			if err := s.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestApplyEntryState(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	pub := evPub("t", "abc", "c1", "c1", "c1")
	pub.Targets[1].QoS, pub.Targets[1].SubIDs = 2, []uint32{4, 5}
	commitWait(t, s, true, pub)
	commitWait(t, s, false, evDelivered("c1", 1, 11), evDelivered("c1", 2, 12), evPubrec("c1", 2))
	qm, err := s.ReadQueue("c1", 0, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(qm) != 3 {
		t.Fatalf("got %d entries", len(qm))
	}
	want := []QueueEntry{
		{MsgID: 1, QoS: 1, State: StateSent, PacketID: 11, Size: 3},
		{MsgID: 1, QoS: 2, SubIDs: []uint32{4, 5}, State: StatePubrec, PacketID: 12, Size: 3},
		{MsgID: 1, QoS: 1, Size: 3},
	}
	for i, q := range qm {
		if q.Seq != uint64(i+1) || !equalEntry(q.Entry, want[i]) || q.Msg == nil || string(q.Msg.Payload) != "abc" {
			t.Fatalf("entry %d: %+v %+v, want %+v", i, q, q.Msg, want[i])
		}
	}
}

func equalEntry(a, b QueueEntry) bool {
	return a.MsgID == b.MsgID && a.QoS == b.QoS && a.Retain == b.Retain && slices.Equal(a.SubIDs, b.SubIDs) &&
		a.State == b.State && a.PacketID == b.PacketID && a.Size == b.Size
}

func TestCommitAssignsSequences(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	a := evPub("t", "x", "c1", "c2")
	b := evPub("t", "y", "c2")
	c := evOpen("c3")
	commitWait(t, s, true, a, b)
	commitWait(t, s, false, c)
	if a.Seq != 1 || b.Seq != 2 || c.Seq != 3 || a.MsgID != 1 || b.MsgID != 2 {
		t.Fatalf("seqs %d %d %d msgids %d %d", a.Seq, b.Seq, c.Seq, a.MsgID, b.MsgID)
	}
	if a.Targets[0].Seq != 1 || a.Targets[1].Seq != 1 || b.Targets[0].Seq != 2 {
		t.Fatalf("target seqs %+v %+v", a.Targets, b.Targets)
	}
	if qi := s.QueueInfo("c2"); qi != (QueueInfo{Head: 1, Next: 3, Count: 2, Bytes: 2}) {
		t.Fatalf("QueueInfo c2 = %+v", qi)
	}
	if qi := s.QueueInfo("nobody"); qi != (QueueInfo{Head: 1, Next: 1}) {
		t.Fatalf("QueueInfo of unknown client = %+v", qi)
	}
	var got []uint64
	if err := s.Events(2, func(ev *Event) error { got = append(got, ev.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("Events(2) = %v", got)
	}
}

// A commit that fails validation applies nothing: not its valid events, not
// its queue bookkeeping, not its sequence numbers.
func TestCommitErrorAppliesNothing(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	commitWait(t, s, true, evPub("t", "x", "c1"))
	before := dump(t, s)
	bad := [][]*Event{
		{evPub("t", "y", "c1"), {Kind: EvSessionOpened, Client: "c1"}},           // missing session
		{evPub("t", "y", "c1"), {Kind: 99}},                                      // unknown kind
		{evPub("t", "y", "c1"), {Kind: EvPublished}},                             // missing message
		{evPub("t", "y", "c1"), evSub("", "f", 1)},                               // empty client
		{evPub("t", "y", "c1"), {Kind: EvSubscribed, Client: "c1", Filter: "f"}}, // missing sub
		{evPub("t", "y", "c1"), nil},
		{evPub("t", "y", strings.Repeat("x", 70000))},
	}
	for i, evs := range bad {
		called := false
		err := s.Commit(evs, true, func(error) { called = true })
		if err == nil {
			t.Fatalf("bad commit %d succeeded", i)
		}
		if called {
			t.Fatalf("bad commit %d called done", i)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	sameDump(t, before, dump(t, s))
	if s.LastSeq() != 1 || s.QueueInfo("c1") != (QueueInfo{Head: 1, Next: 2, Count: 1, Bytes: 1}) {
		t.Fatalf("state moved: seq %d qi %+v", s.LastSeq(), s.QueueInfo("c1"))
	}
	// The next good commit continues the sequence without a gap.
	ev := evPub("t", "z", "c1")
	commitWait(t, s, true, ev)
	if ev.Seq != 2 || ev.Targets[0].Seq != 2 {
		t.Fatalf("next commit got seq %d, queue seq %d", ev.Seq, ev.Targets[0].Seq)
	}
}

func sameDump(t *testing.T, a, b []kv) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("dumps differ in length: %d vs %d", len(a), len(b))
	}
	for i := range a {
		if string(a[i].k) != string(b[i].k) || string(a[i].v) != string(b[i].v) {
			t.Fatalf("dumps differ at %s", renderKey(a[i].k, a[i].v))
		}
	}
}

func TestReadQueueBounds(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	for i := 0; i < 10; i++ {
		commitWait(t, s, false, evPub("t", strings.Repeat("p", i+1), "c1"))
	}
	commitWait(t, s, true, evAck("c1", 1), evAck("c1", 2), evAck("c1", 5))
	seqs := func(from, to uint64, limit int) []uint64 {
		t.Helper()
		qm, err := s.ReadQueue("c1", from, to, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, q := range qm {
			if int(q.Msg.Payload[0]) != 'p' || len(q.Msg.Payload) != int(q.Seq) {
				t.Fatalf("entry %d joined with wrong body %q", q.Seq, q.Msg.Payload)
			}
			out = append(out, q.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		from, to uint64
		limit    int
		want     []uint64
	}{
		{0, 100, 0, []uint64{3, 4, 6, 7, 8, 9, 10}},
		{0, 100, 3, []uint64{3, 4, 6}},
		{4, 8, 0, []uint64{4, 6, 7}},
		{5, 6, 0, nil},
		{10, 11, 0, []uint64{10}},
		{11, 100, 0, nil},
		{8, 4, 0, nil},
	} {
		if got := seqs(tc.from, tc.to, tc.limit); !slices.Equal(got, tc.want) {
			t.Errorf("ReadQueue(%d, %d, %d) = %v, want %v", tc.from, tc.to, tc.limit, got, tc.want)
		}
	}
	if qm, err := s.ReadQueue("nobody", 0, 100, 0); err != nil || qm != nil {
		t.Fatalf("unknown client: %v %v", qm, err)
	}
	if qi := s.QueueInfo("c1"); qi != (QueueInfo{Head: 3, Next: 11, Count: 7, Bytes: 3 + 4 + 6 + 7 + 8 + 9 + 10}) {
		t.Fatalf("QueueInfo = %+v", qi)
	}
}

func TestLoadSessions(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	pub := evPub("t", "abc", "b/1")
	pub.Client, pub.InboundPID = "a", 9
	commitWait(t, s, true,
		evOpen("b/1"), evSub("b/1", "t/#", 1), evSub("b/1", "u", 2),
		&Event{Kind: EvSessionOpened, Client: "a", Session: &Session{Version: 4, Will: &Will{Topic: "w", Payload: []byte("bye")}}},
		pub, evSub("orphan", "x", 0))
	got, err := s.LoadSessions()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Session.ClientID != "a" || got[1].Session.ClientID != "b/1" {
		t.Fatalf("sessions %+v", got)
	}
	a, b := got[0], got[1]
	if a.Session.Will == nil || string(a.Session.Will.Payload) != "bye" || !slices.Equal(a.InboundPIDs, []uint16{9}) || len(a.Subs) != 0 {
		t.Fatalf("a = %+v", a)
	}
	if len(b.Subs) != 2 || b.Subs["u"].QoS != 2 || b.Queue != (QueueInfo{Head: 1, Next: 2, Count: 1, Bytes: 3}) {
		t.Fatalf("b = %+v", b)
	}
}

func TestForEachRetained(t *testing.T) {
	now := int64(1000)
	fs := vfs.NewMem()
	opts := testOptions(fs)
	opts.Now = func() time.Time { return time.Unix(0, now) }
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commitWait(t, s, true, evRetain("a", "1", 0), evRetain("b", "2", 500), evRetain("c", "3", 2000), evRetain("d", "4", 1000))
	var topics []string
	if err := s.ForEachRetained(func(m *Message) error { topics = append(topics, m.Topic); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(topics, []string{"a", "c"}) {
		t.Fatalf("retained %v", topics)
	}
	exp, err := s.ExpiredRetained(time.Unix(0, now), 0)
	if err != nil || !slices.Equal(exp, []string{"b", "d"}) {
		t.Fatalf("expired %v %v", exp, err)
	}
	stop := errors.New("stop")
	if err := s.ForEachRetained(func(*Message) error { return stop }); err != stop {
		t.Fatalf("callback error not returned: %v", err)
	}
}

// TestReadQueueConsistentWithConcurrentRemoval: a commit that removes a
// queue's entry and, with the last reference, its shared body while
// ReadQueue is between reading the entries and reading the bodies (an
// acknowledgement of another subscriber plus a drop-oldest limit or an
// expiry of this one) does not make the page fail with a missing body:
// ReadQueue reads both from one snapshot.
func TestReadQueueConsistentWithConcurrentRemoval(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	commitWait(t, s, true, evPub("t", "shared", "a", "b")) // m/<id> with two references
	s.queueReadHook = func() {
		s.queueReadHook = nil
		commitWait(t, s, true, evAck("b", 1), evDrop("a", 1)) // the last reference goes: the body is deleted
	}
	q, err := s.ReadQueue("a", 0, 100, 0)
	if err != nil {
		t.Fatalf("read queue during a concurrent removal: %v", err)
	}
	if len(q) != 1 || string(q[0].Msg.Payload) != "shared" {
		t.Fatalf("read %+v, want the entry as it was when the read began", q)
	}
	if q, err := s.ReadQueue("a", 0, 100, 0); err != nil || len(q) != 0 {
		t.Fatalf("after the removal: %+v, %v; want an empty queue", q, err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestQueueHasShared: only an entry a shared subscription queued (its group
// recorded) counts, inline or with a shared body, and only until the
// entries are gone.
func TestQueueHasShared(t *testing.T) {
	s := openTest(t, vfs.NewMem())
	defer s.Close()
	shared := evPub("t", "x", "plain")
	shared.Targets = append(shared.Targets, Target{Client: "member", QoS: 1, Group: "g"})
	inline := evPub("t", "y")
	inline.Targets = []Target{{Client: "alone", QoS: 1, Group: "g"}}
	commitWait(t, s, true, shared, inline, evPub("t", "z", "member"))
	for client, want := range map[string]bool{"plain": false, "member": true, "alone": true, "nobody": false} {
		if got, err := s.QueueHasShared(client); err != nil || got != want {
			t.Errorf("QueueHasShared(%s) = %v, %v; want %v", client, got, err, want)
		}
	}
	commitWait(t, s, true, evAck("member", 1), evAck("alone", 1))
	if got, _ := s.QueueHasShared("member"); got {
		t.Error("member: the shared entry was acknowledged, its plain one remains")
	}
	if got, _ := s.QueueHasShared("alone"); got {
		t.Error("alone: an empty queue")
	}
}
