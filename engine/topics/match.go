package topics

import (
	"sync"
	"unsafe"
)

// Match is one client's aggregated view of all its subscriptions matching a
// topic.
type Match struct {
	Client            string
	QoS               byte     // maximum QoS of the matching subscriptions (overlapping subs deliver once, at the max)
	RetainAsPublished bool     // true if any matching subscription has it
	SubIDs            []uint32 // all non-zero subscription ids of matching subscriptions (order unspecified; may be empty but non-nil)
	Shared            bool     // chosen as the member of a shared-subscription group
	Group             string   // with Shared: the group's filter as subscribed, "$share/<name>/<filter>" (for Trie.PickShared)
}

// Match appends to dst one entry per client whose non-shared subscriptions
// match topic, plus, for every shared group with a matching filter, exactly one
// member (round-robin within the group, skipping members for which online
// returns false if any member is online; online may be nil = all online).
//
// publisher is the publishing client id: subscriptions with NoLocal set by
// that same client do not match. A client that matches both through ordinary
// subscriptions and through a shared group gets two entries (the shared one
// with Shared=true), as MQTT 5.0 requires; likewise a client chosen by two
// different groups gets one Shared entry per group, because each group is a
// separate subscription that receives its own copy.
//
// Allocation: Match allocates nothing except when dst or a SubIDs slice must
// grow. To make the steady state allocation-free it reuses the entries in dst's
// spare capacity, including their SubIDs backing arrays: a caller that
// truncates dst (dst = dst[:0]) to reuse it must be done with the SubIDs of the
// previous results, or copy them first.
//
// online is called with the trie's read lock held, so it must not call t's
// methods (a write would deadlock, and so can a nested read while a writer
// waits); it should be a cheap lookup such as a connected-sessions map.
func (t *Trie) Match(topic, publisher string, online func(client string) bool, dst []Match) []Match {
	m := matcherPool.Get().(*matcher)
	m.topic, m.publisher, m.online = topic, publisher, online
	m.dst, m.base = dst, len(dst)
	m.root = &t.root
	m.dollar = len(topic) > 0 && topic[0] == '$'

	t.mu.RLock()
	m.walk(&t.root, 0)
	t.mu.RUnlock()

	dst = m.dst
	m.reset()
	matcherPool.Put(m)
	return dst
}

// linearMax is how many result entries are searched linearly when merging a
// client's overlapping subscriptions. Most publishes match a handful of
// clients, where a scan of dst beats hashing; a fan-out to hundreds switches
// to the pooled index so the merge stays linear overall.
const linearMax = 24

// matcher is the state of one Match call. It is pooled so that routing neither
// allocates a closure nor the client index.
type matcher struct {
	topic     string
	publisher string
	online    func(string) bool
	root      *node
	dollar    bool // topic starts with '$': wildcards at the first level do not match

	dst     []Match
	base    int               // entries before base belong to the caller and are never merged into
	index   map[clientKey]int // client → position in dst of its non-shared entry, once indexed
	indexed bool
}

// clientKey identifies a client by the address of its id's bytes. Every trie
// entry of a client shares the one copy of the id made by Subscribe
// (clientSubs.id), and different clients' copies are different live heap
// allocations, so within one Match (under the read lock) identity of the bytes
// is equality of the ids. Comparing and hashing one word instead of the
// strings' contents removes the work that otherwise dominates merging. The
// empty id has no bytes; it gets key 0, which no allocation has.
type clientKey uintptr

func keyOf(client string) clientKey {
	if len(client) == 0 {
		return 0
	}
	return clientKey(unsafe.Pointer(unsafe.StringData(client)))
}

var matcherPool = sync.Pool{New: func() any { return new(matcher) }}

func (m *matcher) reset() {
	if m.indexed {
		if len(m.index) > 4096 {
			m.index = nil // do not pin the memory of one huge fan-out in the pool
		} else {
			clear(m.index)
		}
	}
	*m = matcher{index: m.index}
}

// walk visits n, which has consumed the topic levels before offset i (i ==
// len(topic)+1 means all of them, see nextLevel), and collects every
// subscription below it that matches the rest of the topic. Each trie node is
// visited at most once per topic, so a subscription is collected at most once.
func (m *matcher) walk(n *node, i int) {
	wild := n != m.root || !m.dollar
	// '#' matches the remaining levels whatever they are, including none
	// ("a/#" matches "a"), so it is collected before looking at them.
	if n.hash != nil && wild {
		m.collect(n.hash)
	}
	if i > len(m.topic) {
		m.collect(n)
		return
	}
	level, next := nextLevel(m.topic, i)
	if c := n.children[level]; c != nil {
		m.walk(c, next)
	}
	if n.plus != nil && wild {
		m.walk(n.plus, next)
	}
}

// collect adds the subscriptions whose filter ends at n.
func (m *matcher) collect(n *node) {
	for i := range n.subs.list {
		s := &n.subs.list[i]
		if s.sub.NoLocal && s.client == m.publisher {
			continue
		}
		e := m.find(s.client)
		if e == nil {
			e = m.push(s.client, false)
		}
		merge(e, &s.sub)
	}
	for _, g := range n.groups {
		if s, ok := g.pick(m.publisher, m.online); ok {
			e := m.push(s.client, true)
			e.Group = g.filter
			merge(e, &s.sub)
		}
	}
}

// merge folds one matching subscription into a client's entry: deliver once,
// at the highest QoS, with every subscription identifier (MQTT 5.0 §3.3.4).
func merge(e *Match, s *Sub) {
	if s.QoS > e.QoS {
		e.QoS = s.QoS
	}
	if s.RetainAsPublished {
		e.RetainAsPublished = true
	}
	if s.SubID != 0 {
		e.SubIDs = append(e.SubIDs, s.SubID)
	}
}

// find returns client's non-shared entry added by this call, or nil.
func (m *matcher) find(client string) *Match {
	k := keyOf(client)
	if m.indexed {
		if i, ok := m.index[k]; ok {
			return &m.dst[i]
		}
		return nil
	}
	for i := m.base; i < len(m.dst); i++ {
		if e := &m.dst[i]; !e.Shared && keyOf(e.Client) == k {
			return e
		}
	}
	return nil
}

// push appends a fresh entry for client, reusing a spare entry's SubIDs array
// when dst has capacity left.
func (m *matcher) push(client string, shared bool) *Match {
	n := len(m.dst)
	if n < cap(m.dst) {
		m.dst = m.dst[:n+1]
		e := &m.dst[n]
		*e = Match{Client: client, Shared: shared, SubIDs: e.SubIDs[:0]}
	} else {
		m.dst = append(m.dst, Match{Client: client, Shared: shared})
	}
	if !shared {
		switch {
		case m.indexed:
			m.index[keyOf(client)] = n
		case n+1-m.base > linearMax:
			m.buildIndex()
		}
	}
	return &m.dst[n]
}

func (m *matcher) buildIndex() {
	if m.index == nil {
		m.index = make(map[clientKey]int, 2*linearMax)
	}
	for i := m.base; i < len(m.dst); i++ {
		if !m.dst[i].Shared {
			m.index[keyOf(m.dst[i].Client)] = i
		}
	}
	m.indexed = true
}
