package store

// The entry cache: what removing a queue entry needs to know about it (its
// entryRef: message id, size, expiry, inline body), kept in memory for the
// entries enqueued recently, so that the ack of a message a subscriber is
// keeping up with reads nothing from Pebble. Without it every ack is a Get
// through an indexed batch — an iterator over the batch, the memtables and
// every level — which was the largest single cost of the ack path.
//
// Invariants (all state is guarded by Store.mu, like the txn that uses it):
//   - A window holds the refs of the consecutive seqs [base, base+len(slots))
//     of one client's queue, exactly: a live slot is an entry that exists
//     with that ref, a dead slot an entry that was removed. Seqs outside the
//     window say nothing (the store reads Pebble as before).
//   - A complete window covers the whole queue, [Head, Next): every entry of
//     the client is in it, so removals of that client need no read at all —
//     existence, ref and the next head all come from the window. A window
//     is complete when it was started on an empty queue, and becomes so when
//     the head passes its base; it stops being complete when it is capped
//     (it stops growing at the per-client or global limit) until the queue
//     empties.
//   - The cache changes with the batch being built, before Pebble accepts
//     it: a commit that fails clears the whole cache (reset), which is
//     always safe — an empty cache only means reads.
//   - Memory is bounded: at most entryCacheMax slots in all, entryWindowMax
//     per client; a session's window goes with its queue (dropSession).
//   - A page read from a snapshot (ReadQueue) may extend a window past its
//     end (prefill), so that the acks of a backlog drained from disk read
//     nothing either. The page is the truth at its snapshot; it is still the
//     truth for the seqs at or past the window's end unless one of them was
//     removed since, and every such removal is one the cache did not cover,
//     which bumps uncached (as do reset and dropped). So a page is added
//     only if uncached is what it was when the snapshot was taken (under
//     Store.mu, like every change of the cache), and only past w.end(): a
//     seq below it that was in the window may have been removed through the
//     cache since, which uncached does not count.

// The limits (variables so that tests can make them small).
var (
	entryCacheMax  = 1 << 18 // slots, all clients (32 bytes each: 8 MiB)
	entryWindowMax = 1 << 14 // slots per client
)

type entrySlot struct {
	ref  entryRef
	live bool
}

type entryWindow struct {
	base     uint64 // seq of slots[0]
	slots    []entrySlot
	buf      []entrySlot // the front of slots' array, reused once it empties
	complete bool
	capped   bool
}

// windowKeep is the largest array an emptied window keeps for reuse.
const windowKeep = 256

func (w *entryWindow) end() uint64 { return w.base + uint64(len(w.slots)) }

// slot returns the slot of seq, nil outside the window.
func (w *entryWindow) slot(seq uint64) *entrySlot {
	if seq < w.base || seq >= w.end() {
		return nil
	}
	return &w.slots[seq-w.base]
}

type entryCache struct {
	clients map[string]*entryWindow
	total   int  // slots held
	off     bool // tests: no caching at all
	// uncached counts the removals of entries no window covered, and every
	// reset and dropped window: a page read from a snapshot taken at another
	// count may be stale past the windows' ends (prefill).
	uncached uint64
}

func (c *entryCache) window(client string) *entryWindow {
	if c.clients == nil {
		return nil
	}
	return c.clients[client]
}

// added records the entry enqueued at seq; qi is the queue before it.
func (c *entryCache) added(client string, seq uint64, ref entryRef, qi QueueInfo) {
	w := c.window(client)
	if w == nil {
		if c.off || c.total >= entryCacheMax {
			return
		}
		if c.clients == nil {
			c.clients = make(map[string]*entryWindow)
		}
		// On an empty queue the window covers everything from the start.
		w = &entryWindow{base: seq, complete: qi.Count == 0}
		c.clients[client] = w
	}
	if w.capped || seq != w.end() || len(w.slots) >= entryWindowMax || c.total >= entryCacheMax {
		w.capped, w.complete = true, false
		return
	}
	c.push(w, entrySlot{ref: ref, live: true})
}

// push appends sl at the window's end.
func (c *entryCache) push(w *entryWindow, sl entrySlot) {
	n := cap(w.slots)
	w.slots = append(w.slots, sl)
	if cap(w.slots) != n {
		w.buf = w.slots[:0]
	}
	c.total++
}

// popDead drops the removed slots at the window's front, so that base is
// the lowest live seq; an emptied window keeps a small array for reuse.
func (c *entryCache) popDead(w *entryWindow) {
	n := 0
	for n < len(w.slots) && !w.slots[n].live {
		n++
	}
	if n == 0 {
		return
	}
	w.slots = w.slots[n:]
	w.base += uint64(n)
	c.total -= n
	if len(w.slots) == 0 {
		if cap(w.buf) <= windowKeep {
			w.slots = w.buf[:0]
		} else {
			w.slots, w.buf = nil, nil // let a large array go
		}
	}
}

// take returns the ref of the live entry at seq and marks it removed. state
// is entryLive (ref valid), entryDead (known removed) or entryUnknown.
func (c *entryCache) take(client string, seq uint64) (entryRef, slotState) {
	w := c.window(client)
	if w == nil {
		return entryRef{}, entryUnknown
	}
	sl := w.slot(seq)
	if sl == nil {
		return entryRef{}, entryUnknown
	}
	if !sl.live {
		return entryRef{}, entryDead
	}
	ref := sl.ref
	sl.live = false
	c.popDead(w)
	return ref, entryLive
}

type slotState uint8

const (
	entryUnknown slotState = iota
	entryLive
	entryDead
)

// settled updates the window after a removal left the queue at qi: an empty
// queue restarts a complete window at Next; a head at or past base makes an
// uncapped window complete.
func (c *entryCache) settled(client string, qi QueueInfo) {
	w := c.window(client)
	if w == nil {
		return
	}
	if qi.Count == 0 {
		c.total -= len(w.slots)
		buf := w.buf
		if cap(buf) > windowKeep {
			buf = nil
		}
		clear(w.slots)
		*w = entryWindow{base: qi.Next, slots: buf[:0], buf: buf, complete: true}
		return
	}
	if !w.complete && !w.capped && qi.Head >= w.base && w.end() == qi.Next {
		w.complete = true
	}
}

// dropped forgets client's window (its queue is gone).
func (c *entryCache) dropped(client string) {
	c.uncached++
	if w := c.window(client); w != nil {
		c.total -= len(w.slots)
		delete(c.clients, client)
	}
}

// removedUncached records the removal of an entry no window covered.
func (c *entryCache) removedUncached() { c.uncached++ }

// prefill adds a page of client's queue, read from a snapshot taken when
// uncached was token, to the window: page holds the entries (ascending
// seqs, inline bodies not yet moved out) the snapshot had in [from, end),
// so every other seq of the range was removed. qi is the queue now. Only
// seqs at or past the window's end are added (see the invariants); nothing
// at all if an uncovered removal happened since the snapshot or the range
// does not adjoin the window. Reaching the queue's end, the window grows
// with new entries again and covers the whole queue once the head is in it.
func (c *entryCache) prefill(client string, token, from, end uint64, page []QueuedMessage, qi QueueInfo) {
	if c.off || token != c.uncached || from >= end || c.total >= entryCacheMax {
		return
	}
	w := c.window(client)
	start := from
	switch {
	case w == nil:
		if c.clients == nil {
			c.clients = make(map[string]*entryWindow)
		}
		w = &entryWindow{base: from, capped: true}
		c.clients[client] = w
	case len(w.slots) == 0:
		// Every seq below base was removed through the window or was
		// never in it; the window restarts at the page (or at base).
		start = max(from, w.base)
		w.base = start
	case w.end() < from:
		return // a gap the page does not fill
	default:
		start = w.end()
	}
	i := 0
	for i < len(page) && page[i].Seq < start {
		i++
	}
	full := false
	for seq := start; seq < end; seq++ {
		if len(w.slots) >= entryWindowMax || c.total >= entryCacheMax {
			w.capped, w.complete, full = true, false, true
			break
		}
		sl := entrySlot{} // removed before the snapshot
		if i < len(page) && page[i].Seq == seq {
			sl = entrySlot{ref: page[i].Entry.ref(), live: true}
			i++
		}
		c.push(w, sl)
	}
	c.popDead(w)
	if !full && end == qi.Next {
		w.capped = false
		w.complete = qi.Count == 0 || qi.Head >= w.base
	}
}

// readFree reports whether removing seq from client's queue (now qi) needs
// no read: the window is complete and the entry is outside the queue, already
// removed, or has its body inline or shared with a refcount that refs knows
// (otherwise the refcount must be read).
func (c *entryCache) readFree(client string, seq uint64, qi QueueInfo, refs *refCache) bool {
	w := c.window(client)
	if w == nil || !w.complete {
		return false
	}
	if seq < qi.Head || seq >= qi.Next {
		return true
	}
	sl := w.slot(seq)
	return sl != nil && (!sl.live || sl.ref.inline || refs.has(sl.ref.msgID))
}

// complete reports whether client's window covers its whole queue.
func (c *entryCache) complete(client string) bool {
	w := c.window(client)
	return w != nil && w.complete
}

// reset empties the cache (a commit failed after changing it).
func (c *entryCache) reset() {
	c.clients = nil
	c.total = 0
	c.uncached++
}
