package session

// Dropping queued deliveries the store no longer holds (a full queue under
// the drop-oldest policy). The store drops only entries at or above
// SentBelow, which were never handed to the client, so they can only be in
// pending (in memory) or still on disk (at or above loaded, where a later
// load will not find them).

// SentBelow is the "may have been sent" watermark: deliveries with a lower
// seq may be in flight toward the client (or were sent on an earlier
// connection) and must not be dropped to make room.
func (o *Outbox) SentBelow() uint64 { return o.sentNext }

// Discard removes the pending deliveries with the given seqs (the store
// dropped them). Seqs not pending are ignored.
func (o *Outbox) Discard(seqs []uint64) {
	if len(seqs) == 0 || len(o.pending) == 0 {
		return
	}
	drop := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		drop[s] = true
	}
	kept := o.pending[:0]
	for _, d := range o.pending {
		if !drop[d.Seq] {
			kept = append(kept, d)
		}
	}
	clear(o.pending[len(kept):])
	o.pending = kept
}
