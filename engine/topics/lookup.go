package topics

// Lookup returns client's subscription to filter (given exactly as it was
// subscribed) and whether it exists. The engine uses it to undo a SUBSCRIBE
// whose commit the store refused.
func (t *Trie) Lookup(client, filter string) (Sub, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	cs := t.clients[client]
	if cs == nil {
		return Sub{}, false
	}
	sub, ok := cs.filters[filter]
	return sub, ok
}
