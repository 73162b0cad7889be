package topics

import (
	"maps"
	"reflect"
	"testing"
	"unsafe"
)

type subReq struct {
	client, filter string
	sub            Sub
}

func s(client, filter string, qos byte) subReq {
	return subReq{client, filter, Sub{QoS: qos}}
}

func sid(client, filter string, qos byte, id uint32) subReq {
	return subReq{client, filter, Sub{QoS: qos, SubID: id}}
}

func m(client string, qos byte, ids ...uint32) Match {
	return Match{Client: client, QoS: qos, SubIDs: ids}
}

func sh(client string, qos byte, ids ...uint32) Match {
	return Match{Client: client, QoS: qos, SubIDs: ids, Shared: true}
}

type pub struct {
	topic     string
	publisher string
	want      []Match
}

func TestMatchRules(t *testing.T) {
	tests := []struct {
		name string
		subs []subReq
		pubs []pub
	}{
		{
			name: "exact",
			subs: []subReq{s("c", "a/b", 1)},
			pubs: []pub{
				{topic: "a/b", want: []Match{m("c", 1)}},
				{topic: "a/c"}, {topic: "a"}, {topic: "a/b/c"}, {topic: "a/b/"}, {topic: "/a/b"},
			},
		},
		{
			name: "plus matches exactly one level, including an empty one",
			subs: []subReq{s("c", "a/+", 1)},
			pubs: []pub{
				{topic: "a/b", want: []Match{m("c", 1)}},
				{topic: "a/", want: []Match{m("c", 1)}},
				{topic: "a/$x", want: []Match{m("c", 1)}},
				{topic: "a"}, {topic: "a/b/c"}, {topic: "b/a"},
			},
		},
		{
			name: "leading empty level",
			subs: []subReq{s("pp", "+/+", 0), s("sp", "/+", 0), s("p", "+", 0)},
			pubs: []pub{
				{topic: "/finance", want: []Match{m("pp", 0), m("sp", 0)}},
				{topic: "finance", want: []Match{m("p", 0)}},
				{topic: "/", want: []Match{m("pp", 0), m("sp", 0)}},
			},
		},
		{
			name: "empty levels are real levels",
			subs: []subReq{s("exact", "a//b", 0), s("plus", "a/+/b", 0), s("hash", "a/#", 0), s("three", "+/+/+", 0), s("two", "a/b", 0)},
			pubs: []pub{
				{topic: "a//b", want: []Match{m("exact", 0), m("hash", 0), m("plus", 0), m("three", 0)}},
				{topic: "a/b", want: []Match{m("hash", 0), m("two", 0)}},
				{topic: "a//", want: []Match{m("hash", 0), m("three", 0)}},
			},
		},
		{
			name: "hash matches the parent and any number of children",
			subs: []subReq{s("c", "a/#", 2)},
			pubs: []pub{
				{topic: "a", want: []Match{m("c", 2)}},
				{topic: "a/", want: []Match{m("c", 2)}},
				{topic: "a/b", want: []Match{m("c", 2)}},
				{topic: "a/b/c/d", want: []Match{m("c", 2)}},
				{topic: "ab"}, {topic: "b"}, {topic: "b/a"}, {topic: "/a"},
			},
		},
		{
			name: "hash after plus",
			subs: []subReq{s("c", "+/b/#", 0)},
			pubs: []pub{
				{topic: "a/b", want: []Match{m("c", 0)}},
				{topic: "/b/c", want: []Match{m("c", 0)}},
				{topic: "a"}, {topic: "a/c/b"},
			},
		},
		{
			name: "hash alone matches everything but $ topics",
			subs: []subReq{s("c", "#", 0)},
			pubs: []pub{
				{topic: "x", want: []Match{m("c", 0)}},
				{topic: "/", want: []Match{m("c", 0)}},
				{topic: "a/b/c", want: []Match{m("c", 0)}},
				{topic: "a/$SYS", want: []Match{m("c", 0)}},
				{topic: "$SYS/x"}, {topic: "$"}, {topic: "$SYS"},
			},
		},
		{
			name: "$ topics need a literal first level",
			subs: []subReq{s("sysall", "$SYS/#", 0), s("sysplus", "$SYS/+", 0), s("plusx", "+/x", 0), s("plushash", "+/#", 0), s("all", "#", 0), s("plus", "+", 0)},
			pubs: []pub{
				{topic: "$SYS/x", want: []Match{m("sysall", 0), m("sysplus", 0)}},
				{topic: "$SYS", want: []Match{m("sysall", 0)}},
				{topic: "$SYS/x/y", want: []Match{m("sysall", 0)}},
				{topic: "$other/x"},
				{topic: "SYS/x", want: []Match{m("all", 0), m("plushash", 0), m("plusx", 0)}},
				{topic: "z", want: []Match{m("all", 0), m("plus", 0), m("plushash", 0)}},
			},
		},
		{
			name: "overlapping subscriptions aggregate to max QoS with all SubIDs",
			subs: []subReq{
				sid("c", "a/+", 1, 1),
				sid("c", "a/#", 2, 2),
				s("c", "a/b", 0),
				{"c", "+/b", Sub{QoS: 0, SubID: 3, RetainAsPublished: true}},
				sid("d", "a/b", 1, 7),
			},
			pubs: []pub{
				{topic: "a/b", want: []Match{{Client: "c", QoS: 2, RetainAsPublished: true, SubIDs: []uint32{1, 2, 3}}, m("d", 1, 7)}},
				{topic: "a", want: []Match{m("c", 2, 2)}},
				{topic: "a/c", want: []Match{m("c", 2, 1, 2)}},
				{topic: "x/b", want: []Match{{Client: "c", RetainAsPublished: true, SubIDs: []uint32{3}}}},
			},
		},
		{
			name: "NoLocal drops only the publisher's own NoLocal subscriptions",
			subs: []subReq{
				{"c1", "a/b", Sub{QoS: 2, NoLocal: true, SubID: 1}},
				{"c2", "a/b", Sub{QoS: 1, NoLocal: true}},
				{"c3", "a/#", Sub{QoS: 1, NoLocal: true}},
				sid("c3", "a/+", 0, 5),
			},
			pubs: []pub{
				{topic: "a/b", publisher: "c1", want: []Match{m("c2", 1), m("c3", 1, 5)}},
				{topic: "a/b", publisher: "c3", want: []Match{m("c1", 2, 1), m("c2", 1), m("c3", 0, 5)}},
				{topic: "a/b", publisher: "", want: []Match{m("c1", 2, 1), m("c2", 1), m("c3", 1, 5)}},
			},
		},
		{
			name: "shared and ordinary subscriptions of one client give two entries",
			subs: []subReq{s("c", "a/b", 0), sid("c", "$share/g/a/+", 2, 9)},
			pubs: []pub{
				{topic: "a/b", want: []Match{m("c", 0), sh("c", 2, 9)}},
				{topic: "a/c", want: []Match{sh("c", 2, 9)}},
			},
		},
		{
			name: "each group gets one copy; the group key includes the filter",
			subs: []subReq{s("c", "$share/g1/a/b", 1), s("c", "$share/g2/a/b", 1), s("d", "$share/g1/a/+", 0), s("e", "$share/g1/a/#", 2)},
			pubs: []pub{
				{topic: "a/b", want: []Match{sh("c", 1), sh("c", 1), sh("d", 0), sh("e", 2)}},
				{topic: "a", want: []Match{sh("e", 2)}},
			},
		},
		{
			name: "shared filters follow the $ rule",
			subs: []subReq{s("c", "$share/g/#", 0), s("d", "$share/g/$SYS/#", 0), s("e", "$share/h/+/x", 0)},
			pubs: []pub{
				{topic: "$SYS/x", want: []Match{sh("d", 0)}},
				{topic: "y/x", want: []Match{sh("c", 0), sh("e", 0)}},
			},
		},
		{
			name: "malformed shared filters are literal filters",
			subs: []subReq{s("c", "$share/g", 0), s("d", "$share//a", 0)},
			pubs: []pub{
				{topic: "$share/g", want: []Match{m("c", 0)}},
				{topic: "$share//a", want: []Match{m("d", 0)}},
				{topic: "a"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := New()
			for _, r := range tt.subs {
				if !tr.Subscribe(r.client, r.filter, r.sub) {
					t.Fatalf("Subscribe(%q, %q) = false, want new", r.client, r.filter)
				}
			}
			for _, p := range tt.pubs {
				got := normalize(tr.Match(p.topic, p.publisher, nil, nil))
				want := normalize(p.want)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("Match(%q, publisher %q) =\n  %+v\nwant\n  %+v", p.topic, p.publisher, got, want)
				}
				// Cross-check the standalone matcher on the same inputs.
				for _, r := range tt.subs {
					_, f, _ := SplitShared(r.filter)
					if got, want := Matches(r.filter, p.topic), naiveMatch(f, p.topic); got != want {
						t.Errorf("Matches(%q, %q) = %v, want %v", r.filter, p.topic, got, want)
					}
				}
			}
		})
	}
}

func TestMatchAppendsAndReuses(t *testing.T) {
	tr := New()
	tr.Subscribe("c", "a/+", Sub{QoS: 1, SubID: 1})
	tr.Subscribe("c", "a/#", Sub{QoS: 0, SubID: 2})

	// Existing entries of dst are kept and never merged into.
	dst := []Match{{Client: "c", QoS: 0}}
	dst = tr.Match("a/b", "", nil, dst)
	if len(dst) != 2 || dst[0].QoS != 0 || dst[0].SubIDs != nil || dst[1].QoS != 1 || len(dst[1].SubIDs) != 2 {
		t.Fatalf("got %+v", dst)
	}

	// Reusing dst recycles the SubIDs arrays: no allocations at all.
	dst = dst[:0]
	allocs := testing.AllocsPerRun(100, func() {
		dst = tr.Match("a/b", "", nil, dst[:0])
	})
	if allocs != 0 && !raceEnabled {
		t.Errorf("Match with reused dst allocated %v times per run", allocs)
	}
	if got := normalize(dst); !reflect.DeepEqual(got, []Match{m("c", 1, 1, 2)}) {
		t.Errorf("got %+v", got)
	}
	// A reused entry must not leak flags from its previous use.
	dst = []Match{{Client: "old", QoS: 2, RetainAsPublished: true, Shared: true, SubIDs: []uint32{42}}}[:0]
	tr.Unsubscribe("c", "a/#")
	dst = tr.Match("a/b", "", nil, dst)
	if got := normalize(dst); !reflect.DeepEqual(got, []Match{m("c", 1, 1)}) {
		t.Errorf("got %+v", got)
	}
}

func TestMatchLargeFanOut(t *testing.T) {
	// More matching clients than linearMax, each matching through several
	// filters, exercises the indexed merge path.
	tr := New()
	const n = 200
	for i := range n {
		c := clientName(i)
		tr.Subscribe(c, "x/#", Sub{QoS: 0, SubID: 1})
		tr.Subscribe(c, "x/+", Sub{QoS: 1, SubID: 2})
		tr.Subscribe(c, "x/y", Sub{QoS: byte(i % 3)})
	}
	tr.Subscribe("shared", "$share/g/x/y", Sub{QoS: 2})
	got := tr.Match("x/y", "", nil, []Match{{Client: clientName(0)}})
	if len(got) != n+2 {
		t.Fatalf("got %d entries, want %d", len(got), n+2)
	}
	seen := map[string]bool{}
	for _, e := range got[1:] {
		if e.Shared {
			if e.Client != "shared" {
				t.Errorf("unexpected shared entry %+v", e)
			}
			continue
		}
		if seen[e.Client] {
			t.Errorf("duplicate entry for %s", e.Client)
		}
		seen[e.Client] = true
		if e.QoS < 1 || len(e.SubIDs) != 2 {
			t.Errorf("bad aggregation %+v", e)
		}
	}
	allocs := testing.AllocsPerRun(20, func() { got = tr.Match("x/y", "", nil, got[:0]) })
	if allocs != 0 && !raceEnabled {
		t.Errorf("indexed Match allocated %v times per run", allocs)
	}
}

func clientName(i int) string {
	return "client-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
}

func TestSubscribeReplaceUnsubscribe(t *testing.T) {
	tr := New()
	if !tr.Subscribe("c", "a/b", Sub{QoS: 0}) {
		t.Fatal("first Subscribe not new")
	}
	if tr.Subscribe("c", "a/b", Sub{QoS: 2, SubID: 4}) {
		t.Fatal("repeated Subscribe reported new")
	}
	if got := normalize(tr.Match("a/b", "", nil, nil)); !reflect.DeepEqual(got, []Match{m("c", 2, 4)}) {
		t.Fatalf("after replacement got %+v", got)
	}
	if tr.Count() != 1 {
		t.Fatalf("Count = %d, want 1", tr.Count())
	}
	// Replacing a shared subscription's options.
	tr.Subscribe("c", "$share/g/a/b", Sub{QoS: 0})
	if tr.Subscribe("c", "$share/g/a/b", Sub{QoS: 1}) {
		t.Fatal("repeated shared Subscribe reported new")
	}
	if got := normalize(tr.Match("a/b", "", nil, nil)); !reflect.DeepEqual(got, []Match{m("c", 2, 4), sh("c", 1)}) {
		t.Fatalf("after shared replacement got %+v", got)
	}
	tr.Subscribe("d", "a/#", Sub{QoS: 1})

	want := map[string]Sub{"a/b": {QoS: 2, SubID: 4}, "$share/g/a/b": {QoS: 1}}
	got := tr.Subscriptions("c")
	if !maps.Equal(got, want) {
		t.Fatalf("Subscriptions = %v, want %v", got, want)
	}
	got["x"] = Sub{} // the result is a copy
	if len(tr.Subscriptions("c")) != 2 {
		t.Fatal("Subscriptions returned the trie's own map")
	}
	if tr.Subscriptions("nobody") != nil {
		t.Fatal("Subscriptions of an unknown client is not nil")
	}
	if tr.Count() != 3 {
		t.Fatalf("Count = %d, want 3", tr.Count())
	}

	if tr.Unsubscribe("c", "a/+") || tr.Unsubscribe("x", "a/b") || tr.Unsubscribe("c", "$share/h/a/b") {
		t.Fatal("Unsubscribe of a missing subscription reported true")
	}
	if !tr.Unsubscribe("c", "$share/g/a/b") {
		t.Fatal("Unsubscribe shared = false")
	}
	if got := normalize(tr.Match("a/b", "", nil, nil)); !reflect.DeepEqual(got, []Match{m("c", 2, 4), m("d", 1)}) {
		t.Fatalf("after unsubscribe got %+v", got)
	}
	if n := tr.UnsubscribeAll("c"); n != 1 {
		t.Fatalf("UnsubscribeAll = %d, want 1", n)
	}
	if n := tr.UnsubscribeAll("c"); n != 0 {
		t.Fatalf("second UnsubscribeAll = %d, want 0", n)
	}
	if !tr.Unsubscribe("d", "a/#") {
		t.Fatal("Unsubscribe = false")
	}
	if !tr.isEmpty() || tr.nodes() != 0 {
		t.Fatalf("trie not empty after removing everything: %d nodes", tr.nodes())
	}
}

func TestPruneKeepsSharedPrefixes(t *testing.T) {
	tr := New()
	filters := []string{"a/b/c", "a/b", "a/+/c", "a/#", "+/#", "#", "a//", "$share/g/a/b/c", "$share/h/a/b/c", "$share/g/a/+"}
	for _, f := range filters {
		tr.Subscribe("c1", f, Sub{})
		tr.Subscribe("c2", f, Sub{})
	}
	full := tr.nodes()
	for _, f := range filters {
		tr.Unsubscribe("c1", f)
	}
	if tr.nodes() != full {
		t.Fatalf("nodes still used by c2 were pruned: %d, want %d", tr.nodes(), full)
	}
	for _, f := range filters {
		if !tr.Unsubscribe("c2", f) {
			t.Fatalf("Unsubscribe(c2, %q) = false", f)
		}
	}
	if !tr.isEmpty() || tr.nodes() != 0 {
		t.Fatalf("trie not empty: %d nodes", tr.nodes())
	}
}

func TestSubscribeCopiesStrings(t *testing.T) {
	// Simulate a decoder that hands out strings aliasing its read buffer,
	// for a new subscription and for a replacement.
	buf := []byte("client/a/b")
	alias := func() (client, filter string) { return unsafe.String(&buf[0], 6), unsafe.String(&buf[7], 3) }
	tr := New()
	c, f := alias()
	tr.Subscribe(c, f, Sub{QoS: 1})
	c, f = alias()
	tr.Subscribe(c, f, Sub{QoS: 2})
	for i := range buf {
		buf[i] = 'x'
	}
	if got := normalize(tr.Match("a/b", "", nil, nil)); !reflect.DeepEqual(got, []Match{m("client", 2)}) {
		t.Fatalf("got %+v", got)
	}
	if got := tr.Subscriptions("client"); !maps.Equal(got, map[string]Sub{"a/b": {QoS: 2}}) {
		t.Fatalf("Subscriptions = %v", got)
	}
}
