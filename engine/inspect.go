package engine

// Inspection of what only the broker knows. Clean sessions (3.x clean
// session 1, 5.0 session expiry 0) end with their connection and are never
// stored, so `cairn inspect` against a running broker (engine/admin) adds
// them to the store's rows. And the in-flight window of a connected session
// is not in the store either: a QoS 1/2 delivery's packet id follows from
// its queue seq, so sending it writes nothing (only a QoS 2 PUBREC is
// stored); Inflight reports the window of a connected session instead.
// Everything else about a persistent session comes from the store, the same
// way online and offline.

import (
	"slices"
	"sort"
	"time"

	"github.com/cairn-mqtt/cairn/engine/session"
	"github.com/cairn-mqtt/cairn/store"
)

// CleanSessions describes every clean session the broker holds, sorted by
// client id.
func (b *Broker) CleanSessions() []store.SessionRow {
	var out []store.SessionRow
	for _, s := range b.cleanSessions() {
		d := b.cleanDetail(s)
		out = append(out, d.SessionRow)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Client < out[j].Client })
	return out
}

// CleanSession describes one clean session, or returns nil when id has
// none (a persistent session is the store's to describe).
func (b *Broker) CleanSession(id string) *store.SessionDetail {
	s := b.lookup(id)
	if s == nil || s.persistent {
		return nil
	}
	return b.cleanDetail(s)
}

func (b *Broker) cleanSessions() []*Session {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []*Session
	for _, s := range b.sessions {
		if !s.persistent {
			out = append(out, s)
		}
	}
	return out
}

func utc(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func (b *Broker) cleanDetail(s *Session) *store.SessionDetail {
	subs := b.subs.Subscriptions(s.id)
	s.mu.Lock()
	rec, online, will := s.rec, s.conn != nil, s.will
	inflight := s.out.InflightByPacketID()
	pending := s.out.PendingCount()
	inbound := make([]uint16, 0, len(s.inbound))
	for pid := range s.inbound {
		inbound = append(inbound, pid)
	}
	s.mu.Unlock()
	d := &store.SessionDetail{
		SessionRow: store.SessionRow{
			Client: s.id, Clean: true, Version: rec.Version, Connected: online,
			ConnectedAt: utc(rec.ConnectedAt), Subscriptions: len(subs),
			Queued: pending + len(inflight), Inflight: len(inflight), InboundQoS2: len(inbound),
			Will: will != nil, Username: rec.Username,
		},
		Subs: []store.SubRow{}, Inflights: []store.InflightRow{}, InboundPIDs: inbound,
	}
	for _, in := range inflight {
		if in.Delivery.Msg != nil {
			d.QueuedBytes += int64(len(in.Delivery.Msg.Payload))
		}
	}
	if will != nil {
		d.WillMsg = &store.WillRow{Topic: will.Topic, QoS: will.QoS, Retain: will.Retain, Delay: will.Delay, Size: len(will.Payload), Preview: store.Preview(will.Payload)}
	}
	for f, sub := range subs {
		d.Subs = append(d.Subs, store.SubRow{Filter: f, QoS: sub.QoS, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, SubID: sub.SubID})
	}
	sort.Slice(d.Subs, func(i, j int) bool { return d.Subs[i].Filter < d.Subs[j].Filter })
	d.Inflights = inflightRows(inflight)
	slices.Sort(d.InboundPIDs)
	return d
}

// Inflight returns the in-flight window of id's session, in seq order, and
// true while a connection is attached to it; false when the session is
// offline or unknown (the store then holds all there is).
func (b *Broker) Inflight(id string) ([]store.InflightRow, bool) {
	s := b.lookup(id)
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	online := s.conn != nil
	inflight := s.out.InflightByPacketID()
	s.mu.Unlock()
	if !online {
		return nil, false
	}
	return inflightRows(inflight), true
}

func inflightRows(inflight map[uint16]session.Inflight) []store.InflightRow {
	out := []store.InflightRow{}
	for pid, in := range inflight {
		st := store.StateSent
		if in.PubrecIn {
			st = store.StatePubrec
		}
		row := store.InflightRow{Seq: in.Delivery.Seq, PacketID: pid, State: store.StateName(st), QoS: in.Delivery.QoS}
		if in.Delivery.Msg != nil {
			row.Topic = in.Delivery.Msg.Topic
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}
