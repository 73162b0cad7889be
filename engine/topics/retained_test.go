package topics

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"pgregory.net/rapid"
)

func retainedTopics[V any](r *Retained[V], filter string) []string {
	var got []string
	r.Match(filter, func(topic string, _ V) bool {
		got = append(got, topic)
		return true
	})
	slices.Sort(got)
	return got
}

func TestRetainedSetGetDelete(t *testing.T) {
	r := NewRetained[int]()
	if _, ok := r.Get("a"); ok || r.Len() != 0 {
		t.Fatal("new index not empty")
	}
	r.Set("a/b", 1)
	r.Set("a", 2)
	r.Set("a/b", 3) // replace
	if v, ok := r.Get("a/b"); !ok || v != 3 {
		t.Fatalf("Get(a/b) = %v, %v; want 3", v, ok)
	}
	if r.Len() != 2 {
		t.Fatalf("Len = %d, want 2", r.Len())
	}
	if _, ok := r.Get("a/b/c"); ok {
		t.Fatal("Get of an unset child found something")
	}
	if _, ok := r.Get("a/"); ok {
		t.Fatal(`"a/" is not "a"`)
	}
	if r.Delete("a/b/c") || r.Delete("x") {
		t.Fatal("Delete of a missing topic = true")
	}
	if !r.Delete("a") {
		t.Fatal("Delete(a) = false")
	}
	if _, ok := r.Get("a"); ok {
		t.Fatal("deleted topic still there")
	}
	if v, ok := r.Get("a/b"); !ok || v != 3 {
		t.Fatal("deleting the parent lost the child")
	}
	if r.Delete("a") {
		t.Fatal("second Delete = true")
	}
	r.Delete("a/b")
	if r.Len() != 0 || len(r.root.children) != 0 {
		t.Fatalf("index not pruned to empty: len %d, %d root children", r.Len(), len(r.root.children))
	}
}

func TestRetainedMatch(t *testing.T) {
	r := NewRetained[int]()
	all := []string{"a", "a/b", "a/b/c", "a/c", "a/", "a//b", "/a", "/", "b", "$SYS", "$SYS/x", "$SYS/x/y", "a/$x", "$share/g"}
	for i, topic := range all {
		r.Set(topic, i)
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"a/b", []string{"a/b"}},
		{"a/+", []string{"a/", "a/$x", "a/b", "a/c"}},
		{"a/#", []string{"a", "a/", "a//b", "a/$x", "a/b", "a/b/c", "a/c"}},
		{"a/+/+", []string{"a//b", "a/b/c"}},
		{"+", []string{"a", "b"}},
		{"+/+", []string{"/", "/a", "a/", "a/$x", "a/b", "a/c"}},
		{"/+", []string{"/", "/a"}},
		{"#", []string{"/", "/a", "a", "a/", "a//b", "a/$x", "a/b", "a/b/c", "a/c", "b"}},
		{"+/#", []string{"/", "/a", "a", "a/", "a//b", "a/$x", "a/b", "a/b/c", "a/c", "b"}},
		{"$SYS/#", []string{"$SYS", "$SYS/x", "$SYS/x/y"}},
		{"$SYS/+", []string{"$SYS/x"}},
		{"+/x", nil},
		{"$share/g/a/+", []string{"a/", "a/$x", "a/b", "a/c"}}, // shared: the filter part is matched
		{"$share/g", []string{"$share/g"}},                     // malformed shared: literal
		{"x/#", nil},
		{"a/b/c/#", []string{"a/b/c"}},
	}
	for _, tt := range tests {
		slices.Sort(tt.want)
		if got := retainedTopics(r, tt.filter); !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) = %q, want %q", tt.filter, got, tt.want)
		}
	}
}

func TestRetainedMatchValuesStopAndReentry(t *testing.T) {
	r := NewRetained[string]()
	for _, topic := range []string{"a/1", "a/2", "a/3", "a/4"} {
		r.Set(topic, "v"+topic)
	}
	n := 0
	r.Match("a/+", func(topic, v string) bool {
		if v != "v"+topic {
			t.Errorf("value %q for %q", v, topic)
		}
		n++
		return n < 2
	})
	if n != 2 {
		t.Fatalf("fn called %d times after returning false, want 2", n)
	}
	// fn runs without the lock, so it may modify the index (it sees the
	// snapshot taken when Match started).
	seen := 0
	r.Match("#", func(topic, _ string) bool {
		seen++
		r.Delete(topic)
		r.Set("b/"+topic, "x")
		return true
	})
	if seen != 4 || r.Len() != 4 || len(retainedTopics(r, "b/#")) != 4 {
		t.Fatalf("seen %d, len %d", seen, r.Len())
	}
}

func TestRetainedCopiesTopic(t *testing.T) {
	buf := []byte("a/b")
	r := NewRetained[int]()
	r.Set(unsafe.String(&buf[0], len(buf)), 1) // aliasing a reusable buffer
	r.Set(unsafe.String(&buf[0], len(buf)), 2) // and replacing through it
	buf[0] = 'x'
	if got := retainedTopics(r, "a/b"); !slices.Equal(got, []string{"a/b"}) {
		t.Fatalf("got %q", got)
	}
}

// TestRetainedAgainstReference compares Retained.Match with filtering all
// topics through the reference matcher.
func TestRetainedAgainstReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := NewRetained[int]()
		model := map[string]int{}
		for i, topic := range rapid.SliceOfN(genTopic(), 0, 30).Draw(t, "topics") {
			r.Set(topic, i)
			model[topic] = i
		}
		for _, topic := range rapid.SliceOfN(genTopic(), 0, 10).Draw(t, "deletes") {
			_, ok := model[topic]
			if r.Delete(topic) != ok {
				t.Fatalf("Delete(%q) != %v", topic, ok)
			}
			delete(model, topic)
		}
		if r.Len() != len(model) {
			t.Fatalf("Len = %d, want %d", r.Len(), len(model))
		}
		for range 5 {
			filter := genFilter(true).Draw(t, "filter")
			_, plain, _ := SplitShared(filter)
			var want []string
			for topic := range model {
				if naiveMatch(plain, topic) {
					want = append(want, topic)
				}
			}
			slices.Sort(want)
			got := []string{}
			r.Match(filter, func(topic string, v int) bool {
				if v != model[topic] {
					t.Fatalf("value %d for %q, want %d", v, topic, model[topic])
				}
				got = append(got, topic)
				return true
			})
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("Match(%q) = %q, want %q", filter, got, want)
			}
		}
		for topic := range model {
			r.Delete(topic)
		}
		if r.Len() != 0 || r.root.children != nil {
			t.Fatalf("not pruned to empty: %v", strings.Join(slices.Sorted(maps.Keys(r.root.children)), ","))
		}
	})
}

// A sized index's Bytes is the sum of its values' sizes, their topics and
// its nodes and maps, counted afresh, through every kind of change: set,
// replace, delete, conditional delete.
func TestRetainedBytes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := NewRetainedSized(func(v string) int64 { return int64(len(v)) })
		model := map[string]string{}
		topic := rapid.SampledFrom([]string{"a", "a/b", "a/b/c", "a/b/c/d/e", "x", "x/+y", "$SYS/z", "", "/", "a//b"})
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			tp := topic.Draw(t, "topic")
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0:
				v := strings.Repeat("v", rapid.IntRange(0, 40).Draw(t, "len"))
				before, cost := r.Bytes(), r.SetCost(tp)
				old, had := model[tp]
				r.Set(tp, v)
				if want := before + cost + int64(len(v)-len(old)); r.Bytes() != want {
					t.Fatalf("Set(%q) after SetCost %d (retained before: %v): Bytes %d, want %d", tp, cost, had, r.Bytes(), want)
				}
				model[tp] = v
			case 1:
				r.Delete(tp)
				delete(model, tp)
			case 2:
				short := func(v string) bool { return len(v) < 20 }
				v, had := model[tp]
				want := had && short(v)
				if got := r.DeleteIf(tp, short); got != want {
					t.Fatalf("DeleteIf(%q) = %v, want %v", tp, got, want)
				}
				if want {
					delete(model, tp)
				}
			}
			var want int64
			for tp, v := range model {
				want += int64(len(v) + len(tp))
			}
			nodes, maps := indexParts(&r.root)
			want += nodes*nodeBytes + maps*mapBytes
			if r.Bytes() != want || r.Len() != len(model) {
				t.Fatalf("Bytes %d Len %d, want %d and %d", r.Bytes(), r.Len(), want, len(model))
			}
		}
	})
}

// indexParts counts the nodes under n and the children maps from n down.
func indexParts[V any](n *rnode[V]) (nodes, maps int64) {
	if n.children != nil {
		maps++
	}
	for _, c := range n.children {
		cn, cm := indexParts(c)
		nodes, maps = nodes+1+cn, maps+cm
	}
	return nodes, maps
}
