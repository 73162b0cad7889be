package topics

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestConcurrentTrie runs subscribers, unsubscribers and publishers in
// parallel; under -race it checks the locking, and at the end that the trie
// is consistent enough to be emptied completely.
func TestConcurrentTrie(t *testing.T) {
	tr := New()
	filters := []string{"a/b", "a/+", "a/#", "#", "+/b", "$SYS/#", "a//b", "$share/g/a/+", "$share/h/#", "$share/g/+/b"}
	topics := []string{"a/b", "a", "a//b", "$SYS/x", "x/b"}
	const workers, ops = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { // each worker owns two clients, so its own view is deterministic
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			clients := []string{fmt.Sprintf("w%d-0", w), fmt.Sprintf("w%d-1", w)}
			for range ops {
				c := clients[rng.IntN(len(clients))]
				f := filters[rng.IntN(len(filters))]
				switch rng.IntN(6) {
				case 0, 1:
					tr.Subscribe(c, f, Sub{QoS: byte(rng.IntN(3)), SubID: uint32(rng.IntN(3))})
					if _, ok := tr.Subscriptions(c)[f]; !ok {
						t.Errorf("%s lost its own subscription %q", c, f)
						return
					}
				case 2:
					tr.Unsubscribe(c, f)
					if _, ok := tr.Subscriptions(c)[f]; ok {
						t.Errorf("%s still has %q after unsubscribing", c, f)
						return
					}
				case 3:
					if rng.IntN(20) == 0 {
						tr.UnsubscribeAll(c)
					}
				default:
					tr.Count()
				}
			}
		})
	}
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			online := func(c string) bool { return c[len(c)-1] == '0' }
			var dst []Match
			for i := range ops {
				var on func(string) bool
				if i%2 == 0 {
					on = online
				}
				dst = tr.Match(topics[rng.IntN(len(topics))], "w0-0", on, dst[:0])
				seen := map[string]bool{}
				for _, e := range dst {
					if !e.Shared && seen[e.Client] {
						t.Errorf("duplicate entry for %s", e.Client)
						return
					}
					seen[e.Client] = !e.Shared
				}
			}
		})
	}
	wg.Wait()
	for w := range workers {
		tr.UnsubscribeAll(fmt.Sprintf("w%d-0", w))
		tr.UnsubscribeAll(fmt.Sprintf("w%d-1", w))
	}
	if !tr.isEmpty() || tr.nodes() != 0 {
		t.Fatalf("trie not empty: count %d, %d nodes", tr.Count(), tr.nodes())
	}
}

func TestConcurrentRetained(t *testing.T) {
	r := NewRetained[int]()
	topics := []string{"a/b", "a", "a//b", "$SYS/x", "x/b", "a/b/c"}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for i := range 2000 {
				topic := topics[rng.IntN(len(topics))]
				switch rng.IntN(5) {
				case 0:
					r.Set(topic, i)
				case 1:
					r.Delete(topic)
				case 2:
					r.Get(topic)
					r.Len()
				default:
					r.Match([]string{"#", "a/+", "$SYS/#", "+/b"}[rng.IntN(4)], func(string, int) bool { return true })
				}
			}
		})
	}
	wg.Wait()
	for _, topic := range topics {
		r.Delete(topic)
	}
	if r.Len() != 0 || r.root.children != nil {
		t.Fatalf("not empty: len %d", r.Len())
	}
}
