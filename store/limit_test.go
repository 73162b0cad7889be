package store

import (
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func limited(ev *Event, count uint32, bytes int64, p LimitPolicy) *Event {
	ev.Limit = &QueueLimit{Count: count, Bytes: bytes, Policy: p}
	return ev
}

// Queue limits are enforced in the commit against the exact queue size, and
// every decision is recorded in the logged event.
func TestQueueLimit(t *testing.T) {
	type check func(t *testing.T, evs [][]*Event)
	noop := func(*testing.T, [][]*Event) {}
	cases := []struct {
		name    string
		commits [][]*Event
		want    []string
		check   check
	}{
		{"under the limit: stored as usual", [][]*Event{{limited(evPub("t", "a", "c1"), 2, 0, LimitReject)}},
			[]string{"n/c1=h1,n2,c1,b1", "q/c1/1+body"}, noop},
		{"reject: nothing stored, full queue named", [][]*Event{
			{evPub("t", "a", "c1"), evPub("t", "b", "c1")},
			{func() *Event {
				e := limited(evPub("t", "new", "c2", "c1"), 2, 0, LimitReject)
				e.Msg.Retain = true
				e.InboundPID = 9
				return e
			}()}},
			[]string{"n/c1=h1,n3,c2,b2", "q/c1/1+body", "q/c1/2+body"},
			func(t *testing.T, evs [][]*Event) {
				ev := evs[1][0]
				if ev.QueueFull != "c1" || ev.Targets[0].Seq != 0 {
					t.Fatalf("QueueFull %q, target seqs %+v", ev.QueueFull, ev.Targets)
				}
			}},
		{"reject counts a client matched twice twice", [][]*Event{{evPub("t", "a", "c1")}, {limited(evPub("t", "b", "c1", "c1"), 2, 0, LimitReject)}},
			[]string{"n/c1=h1,n2,c1,b1", "q/c1/1+body"}, noop},
		{"reject by bytes", [][]*Event{{evPub("t", "aaaa", "c1")}, {limited(evPub("t", "bbb", "c1"), 0, 6, LimitReject)}},
			[]string{"n/c1=h1,n2,c1,b4", "q/c1/1+body"}, noop},
		{"skip: the full queue does without, the others get it", [][]*Event{{evPub("t", "a", "c1")}, {limited(evPub("t", "b", "c1", "c2"), 1, 0, LimitSkip)}},
			[]string{"n/c1=h1,n2,c1,b1", "n/c2=h1,n2,c1,b1", "q/c1/1+body", "q/c2/1+body"},
			func(t *testing.T, evs [][]*Event) {
				if tg := evs[1][0].Targets; tg[0].Seq != 0 || tg[1].Seq != 1 {
					t.Fatalf("targets %+v", tg)
				}
			}},
		{"skip with two enqueued: one shared body, refcount 2", [][]*Event{{evPub("t", "a", "c1")}, {limited(evPub("t", "b", "c1", "c2", "c3"), 1, 0, LimitSkip)}},
			[]string{"c/2=2", "m/2", "n/c1=h1,n2,c1,b1", "n/c2=h1,n2,c1,b1", "n/c3=h1,n2,c1,b1", "q/c1/1+body", "q/c2/1", "q/c3/1"}, noop},
		{"skip: no target enqueued, no body stored", [][]*Event{{evPub("t", "a", "c1")}, {limited(evPub("t", "b", "c1"), 1, 0, LimitSkip)}},
			[]string{"n/c1=h1,n2,c1,b1", "q/c1/1+body"}, noop},
		{"drop-oldest drops the head", [][]*Event{{evPub("t", "a", "c1")}, {evPub("t", "bb", "c1")}, {limited(evPub("t", "ccc", "c1"), 2, 0, LimitDropOldest)}},
			[]string{"n/c1=h2,n4,c2,b5", "q/c1/2+body", "q/c1/3+body"},
			func(t *testing.T, evs [][]*Event) {
				if d := evs[2][0].Dropped; !slices.Equal(d, []QueueRef{{"c1", 1}}) {
					t.Fatalf("Dropped %+v", d)
				}
			}},
		{"drop-oldest by bytes drops as many as needed", [][]*Event{{evPub("t", "aa", "c1"), evPub("t", "bb", "c1"), evPub("t", "cc", "c1")}, {limited(evPub("t", "dddd", "c1"), 0, 6, LimitDropOldest)}},
			[]string{"n/c1=h3,n5,c2,b6", "q/c1/3+body", "q/c1/4+body"}, noop},
		{"drop-oldest spares entries that may be in flight and PUBREC'd ones", [][]*Event{
			{evPub("t", "a", "c1"), evPub("t", "b", "c1"), evPub("t", "c", "c1"), evPub("t", "d", "c1")},
			{evPubrec("c1", 3)},
			{func() *Event {
				e := limited(evPub("t", "e", "c1"), 4, 0, LimitDropOldest)
				e.Targets[0].SentBelow = 3
				return e
			}()}},
			[]string{"n/c1=h1,n6,c4,b4", "q/c1/1+body", "q/c1/2+body", "q/c1/3+body", "q/c1/5+body"},
			func(t *testing.T, evs [][]*Event) {
				if d := evs[2][0].Dropped; !slices.Equal(d, []QueueRef{{"c1", 4}}) {
					t.Fatalf("Dropped %+v", d)
				}
			}},
		{"drop-oldest with nothing droppable skips the target", [][]*Event{{evPub("t", "a", "c1")}, {func() *Event {
			e := limited(evPub("t", "b", "c1"), 1, 0, LimitDropOldest)
			e.Targets[0].SentBelow = 2
			return e
		}()}},
			[]string{"n/c1=h1,n2,c1,b1", "q/c1/1+body"}, noop},
		{"drop-oldest never drops the event's own entry", [][]*Event{{limited(evPub("t", "a", "c1", "c1"), 1, 0, LimitDropOldest)}},
			[]string{"n/c1=h1,n2,c1,b1", "q/c1/1+body"}, noop},
		{"a message larger than the byte limit is never queued", [][]*Event{{limited(evPub("t", "toolong", "c1"), 0, 3, LimitDropOldest)}},
			nil, noop},
		{"drop-oldest keeps the queue expiry index in step", [][]*Event{
			{func() *Event { e := evPub("t", "a", "c1"); e.Msg.ExpiresAt = 500; return e }()},
			{limited(evPub("t", "b", "c1"), 1, 0, LimitDropOldest)}},
			[]string{"n/c1=h2,n3,c1,b1", "q/c1/2+body"}, noop},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, vfs.NewMem())
			defer s.Close()
			for _, evs := range tc.commits {
				commitWait(t, s, true, evs...)
			}
			if got := projection(t, s); !slices.Equal(got, tc.want) {
				t.Fatalf("projection:\n got %q\nwant %q", got, tc.want)
			}
			tc.check(t, tc.commits)
			if err := s.Verify(); err != nil {
				t.Fatal(err)
			}
			// The log alone rebuilds the same state: decisions are recorded.
			dst := openTest(t, vfs.NewMem())
			defer dst.Close()
			if err := s.Events(0, dst.ReplayEvent); err != nil {
				t.Fatal(err)
			}
			sameState(t, "replay", s, dst)
		})
	}
}
