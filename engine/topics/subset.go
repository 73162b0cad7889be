package topics

// subscriber is one client's subscription stored at a trie node (or one member
// of a shared group).
type subscriber struct {
	client string
	sub    Sub
}

// indexMin is the set size from which a subSet keeps a client → position map.
// Below it a linear scan of the slice is faster than hashing and costs no
// memory; above it the map keeps Subscribe/Unsubscribe O(1) when thousands of
// clients share one filter (a popular "#" or "status/+" subscription), which
// would otherwise make subscribing them all quadratic.
const indexMin = 16

// subSet is a set of subscribers keyed by client id. The slice is what routing
// iterates (contiguous, no map iteration on the hot path); the optional index
// only serves updates.
type subSet struct {
	list  []subscriber
	index map[string]int32 // client → position in list; nil while len(list) < indexMin
}

func (s *subSet) len() int { return len(s.list) }

// find returns the position of client in list, or -1.
func (s *subSet) find(client string) int {
	if s.index != nil {
		if i, ok := s.index[client]; ok {
			return int(i)
		}
		return -1
	}
	for i := range s.list {
		if s.list[i].client == client {
			return i
		}
	}
	return -1
}

// put adds client with sub, or replaces its options; it reports whether the
// client was new to the set.
func (s *subSet) put(client string, sub Sub) (isNew bool) {
	if i := s.find(client); i >= 0 {
		s.list[i].sub = sub
		return false
	}
	s.list = append(s.list, subscriber{client: client, sub: sub})
	switch {
	case s.index != nil:
		s.index[client] = int32(len(s.list) - 1)
	case len(s.list) >= indexMin:
		s.index = make(map[string]int32, len(s.list)*2)
		for i := range s.list {
			s.index[s.list[i].client] = int32(i)
		}
	}
	return true
}

// remove deletes client from the set and reports whether it was present. The
// last element is moved into the hole, so the order of list is not stable.
func (s *subSet) remove(client string) bool {
	i := s.find(client)
	if i < 0 {
		return false
	}
	last := len(s.list) - 1
	if i != last {
		s.list[i] = s.list[last]
		if s.index != nil {
			s.index[s.list[i].client] = int32(i)
		}
	}
	s.list[last] = subscriber{} // drop the string reference for the GC
	s.list = s.list[:last]
	if s.index != nil {
		delete(s.index, client)
		// Hysteresis (drop at half the build size) so a set hovering around
		// indexMin does not rebuild the map on every change.
		if len(s.list) < indexMin/2 {
			s.index = nil
		}
	}
	if len(s.list) == 0 {
		s.list = nil // release the backing array of an emptied node
	} else if cap(s.list) > 64 && len(s.list) < cap(s.list)/4 {
		// Shrink after a mass unsubscribe so a once-popular filter does not
		// pin a large array forever.
		s.list = append([]subscriber(nil), s.list...)
	}
	return true
}
