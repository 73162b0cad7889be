package topics

// ClientHas returns the number of client's subscriptions and whether one of
// them is to filter (as given, including any "$share/<group>/" prefix): a
// per-client subscription limit counts only new filters.
func (t *Trie) ClientHas(client, filter string) (n int, has bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	cs := t.clients[client]
	if cs == nil {
		return 0, false
	}
	_, has = cs.filters[filter]
	return len(cs.filters), has
}
