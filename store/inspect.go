package store

// Read-only queries for `cairn inspect`: typed rows describing sessions,
// queues, retained messages and the event log.
//
// Offline (`--data`, a store opened ReadOnly) and live (the admin endpoint of
// a running broker, reading the broker's own open store) run exactly these
// functions, so the two modes cannot drift apart; the rows are JSON-ready
// and the CLI renders the same rows the same way whichever side produced
// them.
//
// Invariants:
//   - Every query reads one Pebble snapshot, so a row set is consistent with
//     itself even while a live broker commits (a session row's queue depth and
//     in-flight count come from the same instant).
//   - Nothing here writes, and nothing here fails on a record it cannot
//     decode: the row carries a Damage string instead, because inspecting a
//     damaged store is exactly when these commands matter most. `cairn
//     recover --check` is the tool that judges damage; inspect only shows it.
//   - Rows carry absolute times (UTC), never ages: ages depend on when the
//     rows are rendered, and the JSON output must not.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// snapshotRead runs fn on a consistent snapshot of the store.
func (s *Store) snapshotRead(what string, fn func(r pebble.Reader) error) error {
	if err := s.enterRead(); err != nil {
		return err
	}
	defer s.exitRead()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	if err := fn(snap); err != nil {
		if pebble.IsCorruptionError(err) {
			return s.readErr(what, err)
		}
		return err
	}
	return nil
}

// iterRange calls fn for every key in [lower, upper) of r in order; key and
// val are valid only during the call. errStop from fn ends the scan quietly.
func iterRange(r pebble.Reader, lower, upper []byte, fn func(key, val []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		val, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key(), val)
		}
		if err != nil {
			_ = it.Close()
			if err == errStop {
				return nil
			}
			return err
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// errStop (compact.go) ends an iterRange early without an error.

func iterFamily(r pebble.Reader, fam byte, fn func(key, val []byte) error) error {
	p := familyPrefix(fam)
	return iterRange(r, p, prefixEnd(p), fn)
}

// readQueueInfo reads n/<client> from r (emptyQueue when absent).
func readQueueInfo(r pebble.Reader, client string) (QueueInfo, error) {
	val, closer, err := r.Get(qinfoKey(nil, client))
	if errors.Is(err, pebble.ErrNotFound) {
		return emptyQueue, nil
	}
	if err != nil {
		return QueueInfo{}, err
	}
	defer closer.Close()
	qi, err := decodeQueueInfo(val)
	if err != nil {
		return QueueInfo{}, fmt.Errorf("queue info of %q: %w", client, err)
	}
	return qi, nil
}

// readMessage reads body m/<id> from r; nil, nil when it is absent.
func readMessage(r pebble.Reader, id uint64) (*Message, error) {
	key := msgKey(nil, id)
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	m := &Message{}
	if err := decode(key, val, m); err != nil {
		return nil, err
	}
	return m, nil
}

// sessionRowOf fills a row from a decoded session record.
func sessionRowOf(client string, ses *Session) SessionRow {
	row := SessionRow{
		Client:         client,
		Version:        ses.Version,
		Connected:      ses.Connected,
		ConnectedAt:    nsTime(ses.ConnectedAt),
		DisconnectedAt: nsTime(ses.DisconnectedAt),
		Expiry:         ses.ExpiryInterval,
		Will:           ses.Will != nil,
		Username:       ses.Username,
		ExpiresAt:      nsTime(ses.ExpiresAt),
		WillAt:         nsTime(ses.WillAt),
	}
	return row
}

// SessionRows returns one row per stored session, sorted by client id. A
// client that owns queued messages, subscriptions or packet ids but has no
// readable session record gets a row too, with Damage set.
func (s *Store) SessionRows() ([]SessionRow, error) {
	rows := make(map[string]*SessionRow)
	row := func(client string) *SessionRow {
		r := rows[client]
		if r == nil {
			r = &SessionRow{Client: client, Damage: "no session record"}
			rows[client] = r
		}
		return r
	}
	err := s.snapshotRead("inspect sessions", func(r pebble.Reader) error {
		err := iterFamily(r, famSession, func(key, val []byte) error {
			client, _, err := splitClient(key)
			if err != nil {
				return err
			}
			var ses Session
			if err := decode(key, val, &ses); err != nil {
				rows[client] = &SessionRow{Client: client, Damage: "session record does not decode: " + cause(err)}
				return nil
			}
			sr := sessionRowOf(client, &ses)
			rows[client] = &sr
			return nil
		})
		if err != nil {
			return err
		}
		err = iterFamily(r, famSub, func(key, _ []byte) error {
			client, _, err := splitClient(key)
			if err != nil {
				return err
			}
			row(client).Subscriptions++
			return nil
		})
		if err != nil {
			return err
		}
		err = iterFamily(r, famInbound, func(key, _ []byte) error {
			client, _, err := splitClient(key)
			if err != nil {
				return err
			}
			row(client).InboundQoS2++
			return nil
		})
		if err != nil {
			return err
		}
		err = iterFamily(r, famQInfo, func(key, val []byte) error {
			client, _, err := splitClient(key)
			if err != nil {
				return err
			}
			sr := row(client)
			qi, err := decodeQueueInfo(val)
			if err != nil {
				sr.Damage = joinDamage(sr.Damage, "queue summary does not decode")
				return nil
			}
			sr.Queued, sr.QueuedBytes = qi.Count, qi.Bytes
			return nil
		})
		if err != nil {
			return err
		}
		// In-flight counts need the entries' states: one pass over every
		// queue entry, decoding only the state.
		return iterFamily(r, famQueue, func(key, val []byte) error {
			client, _, err := queueKeySeq(key)
			if err != nil {
				return err
			}
			var e entryState
			if err := decode(key, val, &e); err != nil {
				sr := row(client)
				sr.Damage = joinDamage(sr.Damage, "undecodable queue entries")
				return nil
			}
			if e.State != StateQueued {
				row(client).Inflight++
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]SessionRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Client < out[j].Client })
	return out, nil
}

// entryState decodes only the state of a queue entry.
type entryState struct {
	State byte `msgpack:"st,omitempty"`
}

func joinDamage(a, b string) string {
	switch {
	case a == "":
		return b
	case strings.Contains(a, b):
		return a
	}
	return a + "; " + b
}

// SessionDetail returns everything stored about client. It returns an error
// wrapping ErrNotFound when the store holds nothing for it.
func (s *Store) SessionDetail(client string) (*SessionDetail, error) {
	if err := checkClient(client); err != nil {
		return nil, err
	}
	d := &SessionDetail{Subs: []SubRow{}, Inflights: []InflightRow{}, InboundPIDs: []uint16{}}
	d.Client = client
	found := false
	err := s.snapshotRead("inspect session", func(r pebble.Reader) error {
		key := sessionKey(nil, client)
		val, closer, err := r.Get(key)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			d.Damage = "no session record"
		case err != nil:
			return err
		default:
			found = true
			var ses Session
			if derr := decode(key, val, &ses); derr != nil {
				d.Damage = "session record does not decode: " + cause(derr)
			} else {
				d.SessionRow = sessionRowOf(client, &ses)
				if w := ses.Will; w != nil {
					d.WillMsg = &WillRow{Topic: w.Topic, QoS: w.QoS, Retain: w.Retain, Delay: w.Delay, Size: len(w.Payload), Preview: Preview(w.Payload)}
				}
			}
			_ = closer.Close()
		}
		p := clientPrefix(nil, famSub, client)
		err = iterRange(r, p, prefixEnd(p), func(key, val []byte) error {
			found = true
			_, filter, _ := splitClient(key)
			row := SubRow{Filter: string(filter)}
			var sub Subscription
			if err := decode(key, val, &sub); err != nil {
				row.Damage = "does not decode: " + cause(err)
			} else {
				row.QoS, row.NoLocal, row.RetainAsPublished, row.RetainHandling, row.SubID = sub.QoS, sub.NoLocal, sub.RetainAsPublished, sub.RetainHandling, sub.SubID
			}
			d.Subs = append(d.Subs, row)
			return nil
		})
		if err != nil {
			return err
		}
		d.Subscriptions = len(d.Subs)
		p = clientPrefix(nil, famInbound, client)
		err = iterRange(r, p, prefixEnd(p), func(key, _ []byte) error {
			found = true
			_, rest, _ := splitClient(key)
			if len(rest) == 2 {
				d.InboundPIDs = append(d.InboundPIDs, binary.BigEndian.Uint16(rest))
			}
			return nil
		})
		if err != nil {
			return err
		}
		d.InboundQoS2 = len(d.InboundPIDs)
		qi, err := readQueueInfo(r, client)
		if err != nil {
			d.Damage = joinDamage(d.Damage, err.Error())
			qi = emptyQueue
		}
		d.QueueHead, d.QueueNext, d.Queued, d.QueuedBytes = qi.Head, qi.Next, qi.Count, qi.Bytes
		found = found || qi.Count > 0 || qi.Next > 1
		// The whole queue is scanned for in-flight entries: they are usually
		// at its head, but an entry acknowledged out of order leaves later
		// sent entries behind, so stopping early could miss some.
		p = clientPrefix(nil, famQueue, client)
		return iterRange(r, p, prefixEnd(p), func(key, val []byte) error {
			found = true
			_, seq, err := queueKeySeq(key)
			if err != nil {
				return err
			}
			var e QueueEntry
			if err := decode(key, val, &e); err != nil {
				d.Damage = joinDamage(d.Damage, "undecodable queue entries")
				return nil
			}
			if e.State == StateQueued {
				return nil
			}
			row := InflightRow{Seq: seq, PacketID: PacketIDFor(seq), State: StateName(e.State), QoS: e.QoS}
			if e.Body != nil {
				row.Topic = e.Body.Topic
			} else if m, err := readMessage(r, e.MsgID); err == nil && m != nil {
				row.Topic = m.Topic
			}
			d.Inflights = append(d.Inflights, row)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: no session %q", ErrNotFound, client)
	}
	d.Inflight = len(d.Inflights)
	return d, nil
}

// QueueRows returns up to limit (<= 0: all) entries of client's queue with
// seq >= from, in order, each joined with its message. An entry whose body
// is missing or unreadable is still listed, with Damage set.
func (s *Store) QueueRows(client string, from uint64, limit int) ([]QueueRow, error) {
	if err := checkClient(client); err != nil {
		return nil, err
	}
	out := []QueueRow{}
	err := s.snapshotRead("inspect queue", func(r pebble.Reader) error {
		// Start at the known head when it is readable: consumed entries
		// below it are tombstones that cost time to skip.
		if qi, err := readQueueInfo(r, client); err == nil {
			from = max(from, qi.Head)
		}
		p := clientPrefix(nil, famQueue, client)
		err := iterRange(r, queueKey(nil, client, from), prefixEnd(p), func(key, val []byte) error {
			_, seq, err := queueKeySeq(key)
			if err != nil {
				return err
			}
			row := QueueRow{Seq: seq}
			var e QueueEntry
			if err := decode(key, val, &e); err != nil {
				row.Damage = "entry does not decode: " + cause(err)
			} else {
				row.MsgID, row.QoS, row.Retain, row.State, row.Size = e.MsgID, e.QoS, e.Retain, StateName(e.State), e.Size
				if e.State != StateQueued {
					row.PacketID = PacketIDFor(seq)
				}
				if m := e.Body; m != nil { // inline: the entry is the body's only reference
					row.Topic, row.PublishedAt, row.ExpiresAt, row.Preview, row.inline = m.Topic, nsTime(m.PublishedAt), nsTime(m.ExpiresAt), Preview(m.Payload), true
				}
			}
			out = append(out, row)
			if limit > 0 && len(out) >= limit {
				return errStop
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := range out {
			row := &out[i]
			if row.Damage != "" || row.inline {
				continue
			}
			m, err := readMessage(r, row.MsgID)
			switch {
			case err != nil && pebble.IsCorruptionError(err):
				return err
			case err != nil:
				row.Damage = "message body does not decode: " + cause(err)
			case m == nil:
				row.Damage = fmt.Sprintf("message body %d is missing", row.MsgID)
			default:
				row.Topic, row.PublishedAt, row.ExpiresAt, row.Preview = m.Topic, nsTime(m.PublishedAt), nsTime(m.ExpiresAt), Preview(m.Payload)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RetainedRows returns the retained messages whose topic match accepts (nil:
// all), in topic order, expired ones included (their ExpiresAt tells).
func (s *Store) RetainedRows(match func(topic string) bool) ([]RetainedRow, error) {
	out := []RetainedRow{}
	err := s.snapshotRead("inspect retained", func(r pebble.Reader) error {
		return iterFamily(r, famRetained, func(key, val []byte) error {
			topic := string(key[2:])
			if match != nil && !match(topic) {
				return nil
			}
			row := RetainedRow{Topic: topic}
			var m Message
			if err := decode(key, val, &m); err != nil {
				row.Damage = "does not decode: " + cause(err)
			} else {
				row.QoS, row.Size, row.From, row.PublishedAt, row.ExpiresAt, row.Preview = m.QoS, len(m.Payload), m.From, nsTime(m.PublishedAt), nsTime(m.ExpiresAt), Preview(m.Payload)
			}
			out = append(out, row)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EventRows calls fn for every logged event f selects, in seq order. An
// event that does not decode is passed with Damage set (and Kind
// "undecodable") rather than stopping the scan. fn's error stops the scan
// and is returned as is; EventRows returns the seq after the last event it
// looked at, from which a follower continues.
func (s *Store) EventRows(f EventFilter, fn func(EventRow) error) (next uint64, err error) {
	next = max(f.From, 1)
	upper := prefixEnd(familyPrefix(famEvent))
	if f.To > 0 {
		upper = eventKey(nil, f.To+1)
	}
	err = s.snapshotRead("inspect events", func(r pebble.Reader) error {
		return iterRange(r, eventKey(nil, f.From), upper, func(key, val []byte) error {
			seq, _, err := splitU64(key)
			if err != nil {
				return err
			}
			next = seq + 1
			ev, err := decodeEvent(seq, val)
			if err != nil {
				if len(f.Kinds) > 0 || f.Client != "" {
					return nil // cannot tell whether it matches
				}
				return fn(EventRow{Seq: seq, Kind: "undecodable", Damage: err.Error()})
			}
			if !f.match(ev) {
				return nil
			}
			return fn(EventRowOf(ev))
		})
	})
	return next, err
}

// EventRowOf describes one event.
func EventRowOf(ev *Event) EventRow {
	row := EventRow{
		Seq: ev.Seq, Time: nsTime(ev.Time), Kind: ev.Kind.String(), Client: ev.Client,
		Topic: ev.Topic, Filter: ev.Filter, QSeq: ev.QSeq, Reason: ev.Reason,
		InboundPID: ev.InboundPID,
	}
	switch ev.Kind {
	case EvDelivered, EvReleased:
		row.PacketID = ev.PacketID
	}
	if ses := ev.Session; ses != nil {
		if row.Client == "" {
			row.Client = ses.ClientID
		}
		on, exp := ses.Connected, ses.ExpiryInterval
		row.Connected, row.Expiry, row.Will = &on, &exp, ses.Will != nil
	}
	if sub := ev.Sub; sub != nil {
		q := sub.QoS
		row.QoS = &q
	}
	if m := ev.Msg; m != nil {
		q, n := m.QoS, len(m.Payload)
		row.Topic, row.QoS, row.Size, row.Retain, row.MsgID = m.Topic, &q, &n, m.Retain, ev.MsgID
	}
	for _, tg := range ev.Targets {
		if tg.Seq == 0 && ev.Limit != nil {
			continue // not enqueued: its queue was full
		}
		row.Targets = append(row.Targets, fmt.Sprintf("%s#%d", tg.Client, tg.Seq))
	}
	for _, d := range ev.Dropped {
		row.Dropped = append(row.Dropped, fmt.Sprintf("%s#%d", d.Client, d.Seq))
	}
	row.QueueFull = ev.QueueFull
	if ev.Kind == EvBodyCollected {
		row.MsgID = ev.MsgID
	}
	return row
}
