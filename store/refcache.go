package store

// The refcount cache: the reference counts of recently stored shared bodies
// (m/<id> of a message queued for two or more sessions), kept in memory so
// that releasing a reference — every ack of a fan-out — is a blind Set or
// Delete of c/<id> (or the body's Delete at the last reference) in the same
// batch, without reading c/<id> through an indexed batch first. The body is
// still stored once (issue 3); only the read goes away.
//
// Invariants (all state is guarded by Store.mu, like the txn that uses it):
//   - Authoritative: for every id in counts, counts[id] is exactly the
//     number of queue entries referencing m/<id> as of the batch being
//     built, i.e. the value of c/<id>, or 1 when c/<id> is absent and m/<id>
//     exists. So a release computes the same writes as the read path, and
//     the store's keys do not depend on whether the cache was used (Verify
//     and replay see the same projections; refcache_test.go checks it).
//   - Only sharedBody adds an id (the batch that creates the body, which
//     knows its count), release decrements it and forgets it at the last
//     reference, bodyCollected forgets it. Nothing else writes c/ or m/.
//   - It changes with the batch being built: a commit that fails clears it
//     (reset), which is always safe — an id not in the cache only means the
//     read path. It starts empty at Open: nothing of it needs recovering.
//   - Bounded: at most refCacheMax ids. They are kept in a ring in the order
//     they were added; adding to a full ring forgets the oldest id (a body
//     still referenced then, e.g. by an offline queue, falls back to reads).
//     Forgetting happens only while a publish is applied; a batch that
//     enqueues and removes is always indexed (anyReads), so a removal that
//     anyReads judged read-free is never in a batch that can evict its id.

// refCacheMax bounds the cached ids (a variable so tests can make it small).
var refCacheMax = 1 << 15 // ids (≈ 1.5 MiB with the map)

type refCache struct {
	counts map[uint64]uint32
	ring   []uint64 // ids in the order added; len <= refCacheMax
	head   int      // index of the oldest id once the ring is full
	off    bool     // tests: no caching at all
}

// added records that shared body id was stored with n references.
func (c *refCache) added(id uint64, n int) {
	if c.off || n < 2 || n > 1<<31 {
		return
	}
	if c.counts == nil {
		c.counts = make(map[uint64]uint32)
	}
	if len(c.ring) < refCacheMax {
		c.ring = append(c.ring, id)
	} else {
		delete(c.counts, c.ring[c.head]) // may be gone already
		c.ring[c.head] = id
		c.head = (c.head + 1) % len(c.ring)
	}
	c.counts[id] = uint32(n)
}

// count returns id's reference count, if known.
func (c *refCache) count(id uint64) (uint32, bool) {
	n, ok := c.counts[id]
	return n, ok
}

// has reports whether id's count is known (anyReads).
func (c *refCache) has(id uint64) bool {
	_, ok := c.counts[id]
	return ok
}

// set records id's new count; 0 forgets it (the body is gone).
func (c *refCache) set(id uint64, n uint32) {
	if n == 0 {
		delete(c.counts, id)
		return
	}
	c.counts[id] = n
}

// forget drops id (its body was collected).
func (c *refCache) forget(id uint64) { delete(c.counts, id) }

// reset empties the cache (a commit failed after changing it).
func (c *refCache) reset() {
	c.counts = nil
	c.ring = c.ring[:0]
	c.head = 0
}
