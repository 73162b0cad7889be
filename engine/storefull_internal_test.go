package engine

import (
	"testing"

	"github.com/cairn-mqtt/cairn/engine/topics"
)

// A SUBSCRIBE refused after it had already changed the trie (the store went
// low between the packet and its commit) is undone: new filters removed,
// replaced options restored, and a filter changed again since left alone.
func TestUndoSubscribe(t *testing.T) {
	tr := topics.New()
	old := topics.Sub{QoS: 1}
	tr.Subscribe("c", "a/#", old)
	tr.Subscribe("c", "keep", old)
	set := topics.Sub{QoS: 2}
	var undo []subUndo
	for _, f := range []string{"a/#", "new/+", "keep", "later"} {
		prev, had := tr.Lookup("c", f)
		undo = append(undo, subUndo{filter: f, set: set, prev: prev, had: had})
		tr.Subscribe("c", f, set)
	}
	// Accepted meanwhile: a later SUBSCRIBE of "later" with other options.
	tr.Subscribe("c", "later", topics.Sub{QoS: 0, NoLocal: true})
	undoSubscribe(tr, "c", undo)
	want := map[string]topics.Sub{"a/#": old, "keep": old, "later": {QoS: 0, NoLocal: true}}
	got := tr.Subscriptions("c")
	if len(got) != len(want) {
		t.Fatalf("after undo: %v, want %v", got, want)
	}
	for f, s := range want {
		if got[f] != s {
			t.Fatalf("after undo %s = %+v, want %+v (all: %v)", f, got[f], s, got)
		}
	}
}
