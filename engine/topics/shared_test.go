package topics

import (
	"sync"
	"testing"
)

// sharedPicks publishes n times to topic and counts which member each shared
// entry went to.
func sharedPicks(t *testing.T, tr *Trie, topic, publisher string, online func(string) bool, n int) (map[string]int, []string) {
	t.Helper()
	counts := map[string]int{}
	var order []string
	var dst []Match
	for range n {
		dst = tr.Match(topic, publisher, online, dst[:0])
		for _, e := range dst {
			if e.Shared {
				counts[e.Client]++
				order = append(order, e.Client)
			}
		}
	}
	return counts, order
}

func TestSharedRoundRobin(t *testing.T) {
	tr := New()
	for _, c := range []string{"a", "b", "c"} {
		tr.Subscribe(c, "$share/g/t/+", Sub{QoS: 1})
	}
	counts, order := sharedPicks(t, tr, "t/x", "", nil, 300)
	for _, c := range []string{"a", "b", "c"} {
		if counts[c] != 100 {
			t.Errorf("member %s got %d of 300, want 100 (counts %v)", c, counts[c], counts)
		}
	}
	for i := 3; i < len(order); i++ {
		if order[i] != order[i-3] {
			t.Fatalf("rotation is not periodic at %d: %v", i, order[:i+1])
		}
	}
}

func TestSharedOnlinePreference(t *testing.T) {
	tr := New()
	for _, c := range []string{"a", "b", "c"} {
		tr.Subscribe(c, "$share/g/t", Sub{})
	}
	offline := map[string]bool{"b": true}
	online := func(c string) bool { return !offline[c] }

	// Fair among the online members: the one after the offline member does
	// not get its turn too.
	counts, _ := sharedPicks(t, tr, "t", "", online, 300)
	if counts["a"] != 150 || counts["c"] != 150 || counts["b"] != 0 {
		t.Errorf("with b offline got %v, want a=150 c=150", counts)
	}

	// Nobody online: still exactly one member per message (its session
	// queues it), still rotating.
	offline = map[string]bool{"a": true, "b": true, "c": true}
	counts, _ = sharedPicks(t, tr, "t", "", online, 300)
	if counts["a"] != 100 || counts["b"] != 100 || counts["c"] != 100 {
		t.Errorf("with everyone offline got %v, want 100 each", counts)
	}

	// Only one online: it gets everything.
	offline = map[string]bool{"a": true, "c": true}
	counts, _ = sharedPicks(t, tr, "t", "", online, 10)
	if counts["b"] != 10 {
		t.Errorf("with only b online got %v", counts)
	}
}

func TestSharedNoLocal(t *testing.T) {
	tr := New()
	tr.Subscribe("a", "$share/g/t", Sub{NoLocal: true})
	tr.Subscribe("b", "$share/g/t", Sub{})
	counts, _ := sharedPicks(t, tr, "t", "a", nil, 10)
	if counts["b"] != 10 || counts["a"] != 0 {
		t.Errorf("got %v, want b=10", counts)
	}
	tr.Unsubscribe("b", "$share/g/t")
	if got := tr.Match("t", "a", nil, nil); len(got) != 0 {
		t.Errorf("only member is the NoLocal publisher, got %+v", got)
	}
	if got := tr.Match("t", "x", nil, nil); len(got) != 1 || got[0].Client != "a" {
		t.Errorf("got %+v", got)
	}
}

func TestSharedMembershipChange(t *testing.T) {
	tr := New()
	for _, c := range []string{"a", "b", "c", "d"} {
		tr.Subscribe(c, "$share/g/t/#", Sub{})
	}
	sharedPicks(t, tr, "t/1", "", nil, 5) // move the cursor somewhere
	tr.Unsubscribe("b", "$share/g/t/#")
	tr.UnsubscribeAll("d")
	counts, _ := sharedPicks(t, tr, "t/1", "", nil, 300)
	if counts["a"] != 150 || counts["c"] != 150 || len(counts) != 2 {
		t.Errorf("after members left got %v", counts)
	}
	tr.Unsubscribe("a", "$share/g/t/#")
	tr.Unsubscribe("c", "$share/g/t/#")
	if got := tr.Match("t/1", "", nil, nil); len(got) != 0 {
		t.Errorf("empty group still delivers: %+v", got)
	}
	if !tr.isEmpty() {
		t.Error("group and nodes not pruned")
	}
}

func TestSharedConcurrentFairness(t *testing.T) {
	// The cursor is advanced with compare-and-swap under the read lock, so
	// parallel publishers must still give every member exactly its turn.
	tr := New()
	members := []string{"a", "b", "c"}
	for _, c := range members {
		tr.Subscribe(c, "$share/g/t", Sub{})
	}
	const workers, per = 8, 300
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			local := map[string]int{}
			var dst []Match
			for range per {
				dst = tr.Match("t", "", nil, dst[:0])
				for _, e := range dst {
					local[e.Client]++
				}
			}
			mu.Lock()
			for c, n := range local {
				counts[c] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, c := range members {
		if counts[c] != workers*per/len(members) {
			t.Errorf("counts %v, want %d each", counts, workers*per/len(members))
			break
		}
	}
}
