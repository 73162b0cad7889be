package topics

// DeleteIf removes topic's retained message if cond holds for it, as one
// step under the write lock, and reports whether it did. The compaction task
// uses it to drop an expired value without racing a newer one set meanwhile
// (a Get then Delete could remove the newer value). cond must not call r.
func (r *Retained[V]) DeleteIf(topic string, cond func(V) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.find(topic)
	if n == nil || !n.has || !cond(n.value) {
		return false
	}
	r.remove(n)
	return true
}
