package topics

import (
	"strings"
	"sync"
)

// Retained is an index of retained messages by topic name, matched by filter
// (the mirror image of [Trie]: here the stored keys are topic names and the
// query is a filter). It is generic over the stored value. It is safe for
// concurrent use.
type Retained[V any] struct {
	mu   sync.RWMutex
	root rnode[V]
	n    int
	// size, if set, gives a stored value's size; bytes is their sum plus
	// what the index itself takes for them (their topic copies, its nodes
	// and maps, see nodeBytes), an estimate of the memory the retained set
	// holds, which the engine's limit on it reads.
	size  func(V) int64
	bytes int64
	// hits pools the snapshot buffers of Match (*[]retainedHit[V]).
	hits sync.Pool
}

// rnode is one topic level of the retained index.
type rnode[V any] struct {
	parent   *rnode[V]
	level    string // key under parent, for pruning
	children map[string]*rnode[V]
	topic    string // the full topic name, kept so Match need not rebuild it; valid when has
	value    V
	has      bool
}

type retainedHit[V any] struct {
	topic string
	v     V
}

// NewRetained returns an empty index.
func NewRetained[V any]() *Retained[V] {
	return &Retained[V]{}
}

// The memory of the index's own parts (amd64, measured with 100,000
// topics one to six levels deep: the estimate is within a tenth of the
// heap they take): a node, and the children map an inner node has.
const (
	nodeBytes = 80
	mapBytes  = 250
)

// NewRetainedSized returns an empty index that keeps an estimate of the
// memory its values and their index take (see [Retained.Bytes]). size must
// be a pure function of the value, the memory the value holds.
func NewRetainedSized[V any](size func(V) int64) *Retained[V] {
	return &Retained[V]{size: size}
}

// sizeOf is v's size, 0 for an index without a size function.
func (r *Retained[V]) sizeOf(v V) int64 {
	if r.size == nil {
		return 0
	}
	return r.size(v)
}

// Set stores v as the retained message of topic, replacing any previous one.
// topic is copied, so it may alias a reusable buffer. (Deleting on an empty
// payload, MQTT §3.3.1.3, is the caller's decision: call [Retained.Delete].)
func (r *Retained[V]) Set(topic string, v V) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.find(topic); n != nil && n.has {
		r.bytes += r.sizeOf(v) - r.sizeOf(n.value)
		n.value = v
		return
	}
	topic = strings.Clone(topic) // node keys below are substrings of this copy
	n := &r.root
	var grown int64 // bytes of the nodes and maps made for topic
	for i := 0; i <= len(topic); {
		level, next := nextLevel(topic, i)
		c := n.children[level]
		if c == nil {
			c = &rnode[V]{parent: n, level: level}
			if n.children == nil {
				n.children = make(map[string]*rnode[V])
				grown += mapBytes
			}
			n.children[level] = c
			grown += nodeBytes
		}
		n, i = c, next
	}
	n.topic, n.value, n.has = topic, v, true
	r.n++
	if r.size != nil {
		r.bytes += r.sizeOf(v) + int64(len(topic)) + grown
	}
}

// Delete removes topic's retained message and reports whether there was one.
func (r *Retained[V]) Delete(topic string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.find(topic)
	if n == nil || !n.has {
		return false
	}
	r.remove(n)
	return true
}

// remove clears n's message and prunes emptied nodes; the caller holds the
// write lock.
func (r *Retained[V]) remove(n *rnode[V]) {
	var zero V
	var freed int64
	if r.size != nil {
		freed = r.sizeOf(n.value) + int64(len(n.topic))
	}
	n.topic, n.value, n.has = "", zero, false // release the payload now, not at prune time
	r.n--
	// Prune emptied nodes so memory follows the live retained set.
	for n != &r.root && !n.has && len(n.children) == 0 {
		p := n.parent
		delete(p.children, n.level)
		freed += nodeBytes
		if len(p.children) == 0 {
			p.children = nil
			freed += mapBytes
		}
		n.parent = nil
		n = p
	}
	if r.size != nil {
		r.bytes -= freed
	}
}

// Get returns topic's retained message.
func (r *Retained[V]) Get(topic string) (V, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if n := r.find(topic); n != nil && n.has {
		return n.value, true
	}
	var zero V
	return zero, false
}

// Len returns the number of retained messages.
func (r *Retained[V]) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.n
}

// SetCost returns what setting a value for topic would add to Bytes beyond
// the value's own size: 0 for a topic already retained, else its topic
// copy and the nodes and maps it needs that are not there yet.
func (r *Retained[V]) SetCost(topic string) int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	cost := int64(len(topic))
	n := &r.root
	for i := 0; i <= len(topic); {
		level, next := nextLevel(topic, i)
		c := n.children[level]
		if c == nil {
			// This level and the rest are new nodes, each but the last an
			// inner one with a children map, as is n if it had none.
			if n.children == nil {
				cost += mapBytes
			}
			for cost += nodeBytes; next <= len(topic); _, next = nextLevel(topic, next) {
				cost += mapBytes + nodeBytes
			}
			return cost
		}
		n, i = c, next
	}
	if n.has {
		return 0
	}
	return cost
}

// Bytes returns the estimate of the memory the stored values and their
// index take (0 without a size function).
func (r *Retained[V]) Bytes() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.bytes
}

// find returns topic's node or nil; the caller holds a lock.
func (r *Retained[V]) find(topic string) *rnode[V] {
	n := &r.root
	for i := 0; i <= len(topic); {
		level, next := nextLevel(topic, i)
		if n = n.children[level]; n == nil {
			return nil
		}
		i = next
	}
	return n
}

// Match calls fn for every retained topic matching filter, in no particular
// order, until fn returns false. filter may be a shared filter "$share/g/f";
// then f is matched (MQTT 5.0 §4.8.2 says retained messages are not sent for
// shared subscriptions, but that is the caller's decision).
//
// The matching messages are snapshotted under the read lock and fn is called
// after it is released: fn typically queues messages to a subscriber, and
// holding the lock across that would stall every retained PUBLISH behind a
// slow client. fn may therefore call r's methods; it sees the values as they
// were when Match started.
func (r *Retained[V]) Match(filter string, fn func(topic string, v V) bool) {
	if _, f, ok := SplitShared(filter); ok {
		filter = f
	}
	bp, _ := r.hits.Get().(*[]retainedHit[V])
	if bp == nil {
		bp = new([]retainedHit[V])
	}
	r.mu.RLock()
	hits := r.match(&r.root, filter, 0, (*bp)[:0])
	r.mu.RUnlock()

	for i := range hits {
		if !fn(hits[i].topic, hits[i].v) {
			break
		}
	}
	clear(hits) // do not keep values alive from the pool
	if cap(hits) <= 1024 {
		*bp = hits[:0]
		r.hits.Put(bp)
	}
}

// match appends the retained messages under n that match the filter levels
// from offset i on (see nextLevel for the offset convention).
func (r *Retained[V]) match(n *rnode[V], filter string, i int, hits []retainedHit[V]) []retainedHit[V] {
	if i > len(filter) {
		if n.has {
			hits = append(hits, retainedHit[V]{n.topic, n.value})
		}
		return hits
	}
	level, next := nextLevel(filter, i)
	atRoot := n == &r.root
	switch level {
	case "#":
		// '#' matches the parent level too ("a/#" matches "a"); the root is
		// not a level and never holds a message.
		if n.has {
			hits = append(hits, retainedHit[V]{n.topic, n.value})
		}
		for key, c := range n.children {
			if atRoot && isDollar(key) {
				continue
			}
			hits = r.all(c, hits)
		}
	case "+":
		for key, c := range n.children {
			if atRoot && isDollar(key) {
				continue
			}
			hits = r.match(c, filter, next, hits)
		}
	default:
		if c := n.children[level]; c != nil {
			hits = r.match(c, filter, next, hits)
		}
	}
	return hits
}

// all appends every retained message in n's subtree.
func (r *Retained[V]) all(n *rnode[V], hits []retainedHit[V]) []retainedHit[V] {
	if n.has {
		hits = append(hits, retainedHit[V]{n.topic, n.value})
	}
	for _, c := range n.children {
		hits = r.all(c, hits)
	}
	return hits
}

// isDollar reports whether a first topic level starts with '$'; such topics
// ("$SYS/...") are not matched by a filter starting with a wildcard.
func isDollar(level string) bool { return len(level) > 0 && level[0] == '$' }
