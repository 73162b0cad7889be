package store

import (
	"math/rand/v2"
	"strings"
)

// workload generates plausible random commits: sessions, subscriptions,
// publishes fanned out to several queues (some retained, some with expiry,
// some carrying an inbound QoS 2 packet id), deliveries, PUBRECs, acks and
// drops of entries that exist (mostly) or not, releases, session drops and
// retained expiry. Queue seqs for acks come from the store's QueueInfo, so
// they usually hit real entries.
type workload struct {
	rng     *rand.Rand
	s       *Store
	clients []string
	topics  []string
}

func newWorkload(s *Store, seed uint64) *workload {
	return &workload{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		s:   s,
		// Ids with '/' and ids that are prefixes of each other check that
		// per-client key prefixes never overlap.
		clients: []string{"a", "a/b", "ab", "dev/1", "dev/10", "c", "d"},
		topics:  []string{"t/1", "t/2", "t/3", "a/b", "x"},
	}
}

func (w *workload) client() string { return w.clients[w.rng.IntN(len(w.clients))] }
func (w *workload) topic() string  { return w.topics[w.rng.IntN(len(w.topics))] }

// commit returns 1..maxEvents events.
func (w *workload) commit(maxEvents int) []*Event {
	n := 1 + w.rng.IntN(maxEvents)
	evs := make([]*Event, n)
	for i := range evs {
		evs[i] = w.event()
	}
	return evs
}

// qseq picks a queue seq of c: usually a live entry, sometimes one past the
// end or long gone (no-ops).
func (w *workload) qseq(c string) uint64 {
	qi := w.s.QueueInfo(c)
	if w.rng.IntN(10) == 0 {
		return uint64(w.rng.IntN(int(qi.Next) + 2))
	}
	return qi.Head + uint64(w.rng.IntN(int(qi.Next-qi.Head)+1))
}

func (w *workload) payload() []byte {
	n := w.rng.IntN(200)
	if w.rng.IntN(20) == 0 {
		n = 3000 + w.rng.IntN(6000) // spans WAL blocks
	}
	return []byte(strings.Repeat(string(rune('a'+w.rng.IntN(26))), n))
}

func (w *workload) event() *Event {
	r := w.rng
	now := int64(1_000_000 + r.IntN(1000))
	c := w.client()
	switch x := r.IntN(100); {
	case x < 6:
		return &Event{Kind: EvSessionOpened, Time: now, Client: c, Session: &Session{ClientID: c, Version: 5, ExpiryInterval: uint32(r.IntN(100)), Connected: true, ConnectedAt: now}}
	case x < 9:
		ses := &Session{ClientID: c, Version: 4, ExpiryInterval: 0xFFFFFFFF, DisconnectedAt: now}
		if r.IntN(2) == 0 {
			ses.Will = &Will{Topic: w.topic(), Payload: w.payload(), QoS: byte(r.IntN(3)), Delay: uint32(r.IntN(10))}
		}
		return &Event{Kind: EvSessionClosed, Time: now, Client: c, Session: ses}
	case x < 10:
		return &Event{Kind: EvWillFired, Time: now, Client: c, Session: &Session{ClientID: c, Version: 5}}
	case x < 14:
		return &Event{Kind: EvSubscribed, Time: now, Client: c, Filter: w.topic(), Sub: &Subscription{QoS: byte(r.IntN(3)), SubID: uint32(r.IntN(3))}}
	case x < 16:
		return &Event{Kind: EvUnsubscribed, Time: now, Client: c, Filter: w.topic()}
	case x < 45:
		ev := &Event{Kind: EvPublished, Time: now, Client: c, Msg: &Message{
			Topic: w.topic(), Payload: w.payload(), QoS: byte(r.IntN(3)), From: c, PublishedAt: now,
		}}
		for range r.IntN(5) {
			tg := Target{Client: w.client(), QoS: byte(r.IntN(3)), Retain: r.IntN(5) == 0}
			if r.IntN(4) == 0 {
				tg.SubIDs = []uint32{uint32(r.IntN(10))}
			}
			ev.Targets = append(ev.Targets, tg)
		}
		if r.IntN(4) == 0 {
			ev.Msg.ExpiresAt = now + int64(r.IntN(2000)) - 500 // 5.0 message expiry: y/ index
		}
		if r.IntN(5) == 0 && len(ev.Targets) > 0 {
			ev.Limit = &QueueLimit{Count: uint32(r.IntN(6)), Bytes: int64(r.IntN(3)) * 300, Policy: LimitPolicy(r.IntN(3))}
			for i := range ev.Targets {
				if r.IntN(2) == 0 {
					ev.Targets[i].SentBelow = w.s.QueueInfo(ev.Targets[i].Client).Head + uint64(r.IntN(3))
				}
			}
		}
		if r.IntN(6) == 0 {
			ev.Msg.Retain = true
			if r.IntN(3) == 0 {
				ev.Msg.RetainUntil = now + int64(r.IntN(2000)) - 500 // server-side retained TTL
			}
			if r.IntN(3) == 0 {
				ev.Msg.Payload = nil // clears the retained message
			}
			if r.IntN(2) == 0 {
				ev.Msg.ExpiresAt = now + int64(r.IntN(2000)) - 500
			}
		}
		if r.IntN(5) == 0 {
			ev.InboundPID = uint16(1 + r.IntN(20))
		}
		return ev
	case x < 62:
		return &Event{Kind: EvAcked, Time: now, Client: c, QSeq: w.qseq(c)}
	case x < 67:
		return &Event{Kind: EvDropped, Time: now, Client: c, QSeq: w.qseq(c), Reason: "expired"}
	case x < 77:
		return &Event{Kind: EvDelivered, Time: now, Client: c, QSeq: w.qseq(c), PacketID: uint16(1 + r.IntN(100))}
	case x < 83:
		return &Event{Kind: EvPubrecReceived, Time: now, Client: c, QSeq: w.qseq(c)}
	case x < 88:
		return &Event{Kind: EvReleased, Time: now, Client: c, PacketID: uint16(1 + r.IntN(20))}
	case x < 90:
		return &Event{Kind: EvSessionDropped, Time: now, Client: c}
	case x < 91:
		return &Event{Kind: EvSessionExpired, Time: now, Client: c}
	default:
		t := now
		if r.IntN(3) == 0 {
			t = 0
		}
		return &Event{Kind: EvRetainedExpired, Time: t, Topic: w.topic()}
	}
}
