package topics

import (
	"maps"
	"strings"
	"sync"
)

// Sub is one subscription's options (MQTT 5.0 subscription options; MQTT 3.x
// uses QoS only).
type Sub struct {
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubID             uint32 // 0 = none
}

// Trie holds all subscriptions of all clients, organised by filter level so
// that routing a topic only visits filters that can match it. It is safe for
// concurrent use: updates take the write lock, [Trie.Match] the read lock, so
// publishes route in parallel.
type Trie struct {
	mu      sync.RWMutex
	root    node
	clients map[string]*clientSubs
	count   int
}

// node is one filter level. The wildcard children are kept out of the map:
// routing probes them at every level, and a field test is cheaper than a map
// lookup.
type node struct {
	parent   *node
	level    string // key under parent (for pruning); "+" / "#" for the wildcard children
	children map[string]*node
	plus     *node
	hash     *node
	subs     subSet   // ordinary subscriptions whose filter ends here
	groups   []*group // shared groups whose filter ends here; few per node, so a slice
}

func (n *node) empty() bool {
	return len(n.children) == 0 && n.plus == nil && n.hash == nil && n.subs.len() == 0 && len(n.groups) == 0
}

// clientSubs is the per-client view the trie needs for [Trie.UnsubscribeAll]
// and [Trie.Subscriptions], which would otherwise have to search the tree.
type clientSubs struct {
	id      string         // the trie's own copy of the client id, shared by all its nodes' entries (Match relies on it, see clientKey)
	filters map[string]Sub // filter as given (including "$share/...") → options
}

// New returns an empty Trie.
func New() *Trie {
	return &Trie{clients: make(map[string]*clientSubs)}
}

// Subscribe adds or replaces client's subscription to filter and reports
// whether it was new (false: an existing subscription's options were
// replaced, as MQTT requires for a repeated SUBSCRIBE). filter may be a shared
// subscription "$share/<group>/<filter>"; the caller has already validated it.
// client and filter are copied, so they may alias reusable buffers.
func (t *Trie) Subscribe(client, filter string, sub Sub) (isNew bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.clients[client]
	if cs == nil {
		id := strings.Clone(client)
		cs = &clientSubs{id: id, filters: make(map[string]Sub, 1)}
		t.clients[id] = cs
	}
	_, exists := cs.filters[filter]
	if !exists {
		t.count++
	}
	// Copied even on replacement: assigning to an existing string key stores
	// the new key string, and node keys created below are substrings of it.
	filter = strings.Clone(filter)
	cs.filters[filter] = sub

	name, f, shared := SplitShared(filter)
	n := t.walk(f, true)
	if !shared {
		n.subs.put(cs.id, sub)
		return !exists
	}
	var g *group
	for _, x := range n.groups {
		if x.name == name {
			g = x
			break
		}
	}
	if g == nil {
		g = &group{name: name, filter: filter}
		n.groups = append(n.groups, g)
	}
	g.members.put(cs.id, sub)
	return !exists
}

// Unsubscribe removes client's subscription to filter (given exactly as it
// was subscribed, including any "$share/<group>/" prefix) and reports whether
// it existed.
func (t *Trie) Unsubscribe(client, filter string) (existed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.clients[client]
	if cs == nil {
		return false
	}
	if _, ok := cs.filters[filter]; !ok {
		return false
	}
	delete(cs.filters, filter)
	if len(cs.filters) == 0 {
		delete(t.clients, client)
	}
	t.remove(cs.id, filter)
	return true
}

// UnsubscribeAll removes all of client's subscriptions (at session end) and
// returns how many there were.
func (t *Trie) UnsubscribeAll(client string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.clients[client]
	if cs == nil {
		return 0
	}
	delete(t.clients, client)
	for filter := range cs.filters {
		t.remove(cs.id, filter)
	}
	return len(cs.filters)
}

// Subscriptions returns a copy of client's subscriptions: filter (as given,
// including "$share/...") → options. It returns nil if the client has none.
func (t *Trie) Subscriptions(client string) map[string]Sub {
	t.mu.RLock()
	defer t.mu.RUnlock()
	cs := t.clients[client]
	if cs == nil {
		return nil
	}
	return maps.Clone(cs.filters)
}

// Count returns the number of subscriptions (shared ones included).
func (t *Trie) Count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}

// walk returns the node of filter f, creating the missing path if create is
// set; without create it returns nil when the path does not exist. The caller
// holds the write lock when create is set.
func (t *Trie) walk(f string, create bool) *node {
	n := &t.root
	for i := 0; i <= len(f); {
		level, next := nextLevel(f, i)
		var c *node
		switch level {
		case "+":
			c = n.plus
		case "#":
			c = n.hash
		default:
			c = n.children[level]
		}
		if c == nil {
			if !create {
				return nil
			}
			c = &node{parent: n, level: level}
			switch level {
			case "+":
				n.plus = c
			case "#":
				n.hash = c
			default:
				if n.children == nil {
					n.children = make(map[string]*node)
				}
				n.children[level] = c
			}
		}
		n, i = c, next
	}
	return n
}

// remove deletes client's entry for filter from its node and prunes the nodes
// left empty, so the trie's memory tracks the live subscriptions rather than
// every filter ever used. The caller holds the write lock and has already
// updated the client's filter map.
func (t *Trie) remove(client, filter string) {
	name, f, shared := SplitShared(filter)
	n := t.walk(f, false)
	if n == nil {
		return // unreachable while clients and the tree agree
	}
	var removed bool
	if !shared {
		removed = n.subs.remove(client)
	} else {
		for i, g := range n.groups {
			if g.name != name {
				continue
			}
			removed = g.members.remove(client)
			if g.members.len() == 0 {
				last := len(n.groups) - 1
				n.groups[i] = n.groups[last]
				n.groups[last] = nil
				n.groups = n.groups[:last]
				if last == 0 {
					n.groups = nil
				}
			}
			break
		}
	}
	if removed {
		t.count--
	}
	t.prune(n)
}

// prune unlinks n and then each ancestor that has become empty.
func (t *Trie) prune(n *node) {
	for n != &t.root && n.empty() {
		p := n.parent
		switch n.level {
		case "+":
			p.plus = nil
		case "#":
			p.hash = nil
		default:
			delete(p.children, n.level)
			if len(p.children) == 0 {
				p.children = nil // a map never shrinks; drop it so the memory does
			}
		}
		n.parent = nil
		n = p
	}
}
