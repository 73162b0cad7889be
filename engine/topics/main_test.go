package topics

import (
	"cmp"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// normalize returns ms in a canonical form (sorted entries, sorted SubIDs, nil
// for no SubIDs) so results can be compared regardless of traversal order.
func normalize(ms []Match) []Match {
	out := make([]Match, len(ms))
	for i, m := range ms {
		m.Group = "" // which group chose the client: TestPickShared
		m.SubIDs = slices.Clone(m.SubIDs)
		if len(m.SubIDs) == 0 {
			m.SubIDs = nil
		}
		slices.Sort(m.SubIDs)
		out[i] = m
	}
	slices.SortFunc(out, func(a, b Match) int {
		if a.Shared != b.Shared {
			if a.Shared {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Client, b.Client)
	})
	return out
}

// isEmpty reports whether t holds no subscriptions and no nodes at all, i.e.
// removing subscriptions pruned everything they created.
func (t *Trie) isEmpty() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.root.empty() && len(t.clients) == 0 && t.count == 0
}

// nodes counts the trie's nodes below the root.
func (t *Trie) nodes() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var count func(n *node) int
	count = func(n *node) int {
		c := 0
		for _, x := range n.children {
			c += 1 + count(x)
		}
		for _, x := range []*node{n.plus, n.hash} {
			if x != nil {
				c += 1 + count(x)
			}
		}
		return c
	}
	return count(&t.root)
}
