package topics

import "sync/atomic"

// group is one shared subscription group: the clients that subscribed with
// "$share/<name>/<filter>". It lives at the trie node of <filter>, so the group
// key (name, filter) of MQTT 5.0 §4.8.2 is (node, name), and the same name
// under a different filter is a different group.
type group struct {
	name    string
	filter  string // as subscribed, "$share/<name>/<filter>": the group's identity outside the trie
	members subSet
	// next is the round-robin cursor: the position in members.list where the
	// search for the next receiver starts. It is advanced atomically because
	// Match runs under the read lock, concurrently with other Matches.
	next atomic.Uint64
}

// pick chooses the member that receives the next message sent to the group,
// or reports false when no member is eligible.
//
// Members whose subscription has NoLocal set are not eligible for their own
// messages (MQTT 5.0 makes NoLocal on a shared subscription a protocol error,
// so this only matters if a caller lets one through; skipping is the reading
// closest to the option's meaning). Among eligible members, the first online
// one at or after the cursor is chosen; if none is online the first eligible
// one is, so the message is queued for an offline session rather than lost.
// The cursor then moves just past the chosen member, which makes the rotation
// fair among the online members instead of favouring the member that follows an
// offline one.
func (g *group) pick(publisher string, online func(string) bool) (*subscriber, bool) {
	list := g.members.list
	n := uint64(len(list))
	if n == 0 {
		return nil, false
	}
	for {
		cur := g.next.Load()
		start := cur % n
		chosen, fallback := -1, -1
		for k := uint64(0); k < n; k++ {
			i := int((start + k) % n)
			s := &list[i]
			if s.sub.NoLocal && s.client == publisher {
				continue
			}
			if fallback < 0 {
				fallback = i
			}
			if online == nil || online(s.client) {
				chosen = i
				break
			}
		}
		if chosen < 0 {
			chosen = fallback
		}
		if chosen < 0 {
			return nil, false
		}
		// A lost race means another publisher just advanced the cursor;
		// retrying keeps every member's turn taken exactly once.
		if g.next.CompareAndSwap(cur, uint64(chosen)+1) {
			return &list[chosen], true
		}
	}
}

// PickShared chooses a member of the shared group filter ("$share/<name>/
// <filter>", as subscribed) the way Match would for its next message, for a
// message that must go to another member (its first member's session ended
// before the message was acknowledged). It reports false when the group has
// no members left. online is as for Match.
func (t *Trie) PickShared(filter string, online func(client string) bool) (Match, bool) {
	name, f, shared := SplitShared(filter)
	if !shared {
		return Match{}, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := t.walk(f, false)
	if n == nil {
		return Match{}, false
	}
	for _, g := range n.groups {
		if g.name != name {
			continue
		}
		s, ok := g.pick("", online)
		if !ok {
			return Match{}, false
		}
		m := Match{Client: s.client, Shared: true, Group: g.filter, SubIDs: []uint32{}}
		merge(&m, &s.sub)
		return m, true
	}
	return Match{}, false
}
