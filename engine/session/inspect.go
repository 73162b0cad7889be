package session

// InflightByPacketID returns a copy of the in-flight deliveries keyed by
// packet id, for inspection (`cairn inspect session` of a clean session,
// whose in-flight state lives only here).
func (o *Outbox) InflightByPacketID() map[uint16]Inflight {
	out := make(map[uint16]Inflight, len(o.inflight))
	for pid, in := range o.inflight {
		out[pid] = in
	}
	return out
}
