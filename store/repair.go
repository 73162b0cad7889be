package store

// Repair: fix what Check found, in place, and say exactly what changed.
//
// The event log is a suffix of history (TruncateLog removes a prefix), so
// for any key the log either holds the last event that wrote it — and then
// determines its value exactly — or holds nothing about it. Repair uses the
// log where it knows, and otherwise the most conservative local fix:
//
//	undecodable s/, u/, q/, m/, r/   value rebuilt from the log; if the log says the
//	                                 record was removed, deleted; otherwise a session
//	                                 or subscription is recreated with defaults (its
//	                                 queue and filter are still readable and must stay
//	                                 reachable), an entry / retained value / body is
//	                                 deleted (it was unreadable: nothing readable is lost)
//	undecodable e/                   deleted: an event that cannot be read cannot be
//	                                 replayed either (the gap is reported by Check)
//	bad keys                         deleted
//	missing body                     restored from the log, else its entries deleted
//	orphan body                      deleted
//	refcount, queue summary          recomputed from the entries (a queue's next seq
//	                                 never goes back: max of the stored one, the
//	                                 entries and the log's highest queue seq)
//	no session record                restored from the log; deleted with everything
//	                                 the client owns if the log says the session
//	                                 ended; otherwise recreated with defaults
//	retained topic / empty payload   topic rewritten from the key / value deleted
//	expiry indexes (x/, y/)          rebuilt from the retained values / entries
//
// Repair runs in passes: check, fix, commit (synced), check again. A pass
// that finds undecodable records or bad keys fixes only those, because the
// other findings (refcounts, orphans) depend on what those records turn out
// to hold. It stops when a check finds nothing fixable; what is left is
// reported as unrepaired (an unknown schema version, or in-memory problems,
// which a closed store cannot have).

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// RepairAction is one change Repair made.
type RepairAction struct {
	Key     string      `json:"key"`
	Action  string      `json:"action"` // restored, rewritten, created or deleted
	Problem ProblemKind `json:"problem"`
	Detail  string      `json:"detail"`
}

// RepairReport says what Repair found and did.
type RepairReport struct {
	Before     *CheckReport   `json:"before"`
	Actions    []RepairAction `json:"actions"`
	After      *CheckReport   `json:"after"`
	Unrepaired []Problem      `json:"unrepaired"`
	Passes     int            `json:"passes"`
}

const maxRepairPasses = 8

// RepairDir repairs the store in dir in place. The store must be closed
// (Repair takes its lock); Pebble-level corruption is not handled here
// (SalvageWAL is for a damaged WAL) and is returned as a *CorruptionError.
// Opening the store for writing also discards a torn WAL tail, as Open does.
func RepairDir(dir string, opts Options) (*RepairReport, error) {
	db, err := openRaw(dir, opts, false)
	if err != nil {
		return nil, err
	}
	rep, err := repairDB(db)
	cerr := closeRaw(db)
	if err != nil {
		if pebble.IsCorruptionError(err) {
			return nil, &CorruptionError{Dir: dir, Err: err}
		}
		return nil, fmt.Errorf("store: repair %s: %w", dir, err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("store: repair %s: close: %w", dir, cerr)
	}
	return rep, nil
}

func closeRaw(db *pebble.DB) (err error) {
	defer recoverFatal(&err)
	return db.Close()
}

func checkDB(db *pebble.DB) (*CheckReport, *checker, error) {
	snap := db.NewSnapshot()
	defer snap.Close()
	c := newChecker(snap)
	rep, err := c.run()
	return rep, c, err
}

func repairDB(db *pebble.DB) (*RepairReport, error) {
	out := &RepairReport{Actions: []RepairAction{}, Unrepaired: []Problem{}}
	for out.Passes < maxRepairPasses {
		rep, c, err := checkDB(db)
		if err != nil {
			return nil, err
		}
		if out.Before == nil {
			out.Before = rep
		}
		f := &fixer{db: db, c: c, b: db.NewBatch(), out: out}
		if err := f.pass(rep); err != nil {
			f.b.Close()
			return nil, err
		}
		if f.changes == 0 {
			f.b.Close()
			out.After = rep
			break
		}
		out.Passes++
		err = f.commit()
		f.b.Close()
		if err != nil {
			return nil, err
		}
	}
	if out.After == nil {
		rep, _, err := checkDB(db)
		if err != nil {
			return nil, err
		}
		out.After = rep
	}
	for _, p := range out.After.Problems {
		if !p.Warning {
			out.Unrepaired = append(out.Unrepaired, p)
		}
	}
	return out, nil
}

type fixer struct {
	db      *pebble.DB
	c       *checker
	b       *pebble.Batch
	out     *RepairReport
	log     *logIndex
	changes int
}

func (f *fixer) commit() (err error) {
	defer recoverFatal(&err)
	return f.b.Commit(pebble.Sync)
}

func (f *fixer) act(key []byte, action string, kind ProblemKind, format string, args ...any) {
	f.changes++
	f.out.Actions = append(f.out.Actions, RepairAction{Key: KeyString(key), Action: action, Problem: kind, Detail: fmt.Sprintf(format, args...)})
}

func (f *fixer) set(key []byte, v any, action string, kind ProblemKind, format string, args ...any) error {
	val, err := newEncoder().encode(v)
	if err != nil {
		return err
	}
	if err := f.b.Set(key, val, nil); err != nil {
		return err
	}
	f.act(key, action, kind, format, args...)
	return nil
}

func (f *fixer) del(key []byte, kind ProblemKind, format string, args ...any) error {
	if err := f.b.Delete(key, nil); err != nil {
		return err
	}
	f.act(key, "deleted", kind, format, args...)
	return nil
}

// pass plans and stages one round of fixes.
func (f *fixer) pass(rep *CheckReport) error {
	// Phases: records first (what they hold decides the rest), then
	// clients without a session (restoring or deleting them decides their
	// queues), then everything else. One phase per pass.
	var phases [3][]Problem
	for _, p := range rep.Problems {
		switch {
		case p.Warning:
		case p.Kind == ProblemUndecodable || p.Kind == ProblemBadKey:
			phases[0] = append(phases[0], p)
		case p.Kind == ProblemNoSession:
			phases[1] = append(phases[1], p)
		default:
			phases[2] = append(phases[2], p)
		}
	}
	var todo []Problem
	for _, ph := range phases {
		if len(ph) > 0 {
			todo = ph
			break
		}
	}
	f.log = newLogIndex()
	for _, p := range todo {
		f.log.want(p, f.c)
	}
	if err := f.log.build(f.db); err != nil {
		return err
	}
	var missing []uint64
	for _, p := range todo {
		var err error
		switch p.Kind {
		case ProblemUndecodable:
			err = f.undecodable(p)
		case ProblemBadKey:
			err = f.del(p.key, p.Kind, "the key does not parse: no reader can use it")
		case ProblemMissingBody:
			if m := f.log.bodies[p.MsgID]; m != nil {
				err = f.set(p.key, m, "restored", p.Kind, "message body rebuilt from event %d", p.MsgID)
			} else {
				missing = append(missing, p.MsgID)
			}
		case ProblemOrphanBody:
			err = f.del(p.key, p.Kind, "no queue entry references it")
		case ProblemRefcount:
			err = f.refcount(p)
		case ProblemQueueInfo:
			err = f.queueInfo(p.Client)
		case ProblemNoSession:
			err = f.noSession(p.Client)
		case ProblemRetained:
			err = f.retained(p)
		case ProblemExpiryIndex:
			err = f.expiryIndex(p)
		case ProblemQueueExpiry:
			err = f.queueExpiry(p)
		case ProblemSequence:
			if string(p.key) == string(keySeq) {
				v := binary.BigEndian.AppendUint64(nil, f.c.rep.LastLogged)
				if err = f.b.Set(keySeq, v, nil); err == nil {
					f.act(keySeq, "rewritten", p.Kind, "set to the last logged seq %d", f.c.rep.LastLogged)
				}
			}
		}
		if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return f.dropEntriesOf(missing)
	}
	return nil
}

func (f *fixer) undecodable(p Problem) error {
	k := p.key
	switch k[0] {
	case famSession:
		client, _, _ := splitClient(k)
		return f.sessionFromLog(k, client, p.Kind)
	case famSub:
		client, filter, _ := splitClient(k)
		st, ok := f.log.subs[subRef{client, string(filter)}]
		switch {
		case ok && st.sub != nil:
			return f.set(k, st.sub, "restored", p.Kind, "subscription rebuilt from event %d", st.seq)
		case ok:
			return f.del(k, p.Kind, "the log removes this subscription at event %d", st.seq)
		}
		return f.set(k, &Subscription{QoS: 1}, "created", p.Kind, "unreadable and not in the log: recreated with QoS 1 (the original QoS is unknown)")
	case famQueue:
		client, seq, _ := queueKeySeq(k)
		st, ok := f.log.entries[qRef{client, seq}]
		switch {
		case ok && st.entry != nil:
			return f.set(k, st.entry, "restored", p.Kind, "queue entry rebuilt from event %d", st.seq)
		case ok:
			return f.del(k, p.Kind, "the log removes this entry at event %d", st.seq)
		}
		return f.del(k, p.Kind, "unreadable and not in the log")
	case famMsg:
		id, _, _ := splitU64(k)
		if m := f.log.bodies[id]; m != nil {
			return f.set(k, m, "restored", p.Kind, "message body rebuilt from event %d", id)
		}
		return f.del(k, p.Kind, "unreadable and not in the log (entries referencing it are dropped next)")
	case famRef:
		return f.del(k, p.Kind, "unreadable (recomputed next)")
	case famQInfo:
		client, _, _ := splitClient(k)
		return f.queueInfo(client)
	case famRetained:
		st, ok := f.log.retained[string(k[2:])]
		switch {
		case ok && st.msg != nil:
			return f.set(k, st.msg, "restored", p.Kind, "retained message rebuilt from event %d", st.seq)
		case ok:
			return f.del(k, p.Kind, "the log clears it at event %d", st.seq)
		}
		return f.del(k, p.Kind, "unreadable and not in the log")
	case famEvent:
		return f.del(k, p.Kind, "an event that cannot be read cannot be replayed; the projections keep its effect")
	}
	return nil
}

// sessionFromLog restores s/<client> from the log, deletes the client's keys
// if the log says the session ended, or recreates it with defaults.
func (f *fixer) sessionFromLog(key []byte, client string, kind ProblemKind) error {
	st, ok := f.log.sessions[client]
	switch {
	case ok && st.session != nil:
		ses := *st.session
		if ses.ClientID == "" {
			ses.ClientID = client
		}
		return f.set(key, &ses, "restored", kind, "session record rebuilt from event %d", st.seq)
	case ok:
		return f.dropClient(client, kind, st.seq)
	}
	ses := &Session{ClientID: client, Version: 4, ExpiryInterval: NeverExpires}
	return f.set(key, ses, "created", kind, "not in the log: recreated as an offline MQTT 3.1.1 session that never expires, so that its queue and subscriptions stay reachable")
}

func (f *fixer) noSession(client string) error {
	return f.sessionFromLog(sessionKey(nil, client), client, ProblemNoSession)
}

// dropClient deletes every key the client owns (the log says its session
// ended at seq).
func (f *fixer) dropClient(client string, kind ProblemKind, seq uint64) error {
	for _, fam := range []byte{famSession, famSub, famInbound, famQueue, famQInfo} {
		p := clientPrefix(nil, fam, client)
		err := iterRange(f.db, p, prefixEnd(p), func(key, _ []byte) error {
			return f.del(clone(key), kind, "the session of %q ended at event %d", client, seq)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *fixer) refcount(p Problem) error {
	n := f.c.refs[p.MsgID]
	if n <= 1 {
		return f.del(p.key, p.Kind, "%d entries reference message %d: no refcount needed", n, p.MsgID)
	}
	if err := f.b.Set(p.key, binary.AppendUvarint(nil, n), nil); err != nil {
		return err
	}
	f.act(p.key, "rewritten", p.Kind, "set to %d, the entries referencing message %d", n, p.MsgID)
	return nil
}

func (f *fixer) queueInfo(client string) error {
	key := qinfoKey(nil, client)
	a := f.c.queues[client]
	next := uint64(1)
	if qi, ok := f.c.qinfos[client]; ok {
		next = qi.Next
	}
	if a != nil {
		next = max(next, a.max+1)
	}
	if s, ok := f.log.maxQSeq[client]; ok {
		next = max(next, s+1)
	}
	qi := QueueInfo{Head: next, Next: next}
	if a != nil && a.count > 0 {
		qi.Head, qi.Count, qi.Bytes = a.min, a.count, a.bytes
	}
	if err := f.b.Set(key, appendQueueInfo(nil, qi), nil); err != nil {
		return err
	}
	f.act(key, "rewritten", ProblemQueueInfo, "recomputed from the entries: head %d next %d count %d bytes %d", qi.Head, qi.Next, qi.Count, qi.Bytes)
	return nil
}

func (f *fixer) retained(p Problem) error {
	val, closer, err := f.db.Get(p.key)
	if err != nil {
		return err
	}
	var m Message
	derr := decode(p.key, val, &m)
	closer.Close()
	if derr != nil {
		return derr
	}
	if len(m.Payload) == 0 {
		return f.del(p.key, p.Kind, "an empty retained payload means no retained message")
	}
	old := m.Topic
	m.Topic = p.Topic
	return f.set(p.key, &m, "rewritten", p.Kind, "topic %q replaced by the key's", old)
}

func (f *fixer) expiryIndex(p Problem) error {
	if p.key[0] == famExpiry {
		return f.del(p.key, p.Kind, "matches no retained message")
	}
	at := f.c.expiries[p.Topic]
	k := expiryKey(nil, at, p.Topic)
	if err := f.b.Set(k, nil, nil); err != nil {
		return err
	}
	f.act(k, "created", p.Kind, "index entry of retained %q added", p.Topic)
	return nil
}

// queueExpiry deletes a y/ key that matches no entry, or adds the one an
// expiring entry lacks.
func (f *fixer) queueExpiry(p Problem) error {
	if p.key[0] == famQExpiry {
		return f.del(p.key, p.Kind, "matches no queue entry")
	}
	val, closer, err := f.db.Get(p.key)
	if err != nil {
		return err
	}
	var e QueueEntry
	derr := decode(p.key, val, &e)
	closer.Close()
	if derr != nil {
		return derr
	}
	client, seq, err := queueKeySeq(p.key)
	if err != nil {
		return err
	}
	k := queueExpiryKey(nil, e.ExpiresAt, client, seq)
	if err := f.b.Set(k, nil, nil); err != nil {
		return err
	}
	f.act(k, "created", p.Kind, "index entry of queue entry %q/%d added", client, seq)
	return nil
}

// dropEntriesOf deletes the queue entries referencing messages whose bodies
// are gone for good.
func (f *fixer) dropEntriesOf(ids []uint64) error {
	gone := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	return iterFamily(f.db, famQueue, func(key, val []byte) error {
		var e QueueEntry
		if decode(key, val, &e) != nil || e.Body != nil || !gone[e.MsgID] {
			return nil
		}
		if e.ExpiresAt != 0 {
			client, seq, _ := queueKeySeq(key)
			if err := f.b.Delete(queueExpiryKey(nil, e.ExpiresAt, client, seq), nil); err != nil {
				return err
			}
		}
		return f.del(clone(key), ProblemMissingBody, "its message %d is gone and not in the log", e.MsgID)
	})
}

// logIndex holds what the event log says about the keys a pass repairs.
type logIndex struct {
	needSessions map[string]bool
	needSubs     map[subRef]bool
	needEntries  map[qRef]bool
	needBodies   map[uint64]bool
	needRetained map[string]bool
	needQSeq     map[string]bool

	sessions map[string]sessionState
	subs     map[subRef]subState
	entries  map[qRef]entryState2
	bodies   map[uint64]*Message
	retained map[string]retainedState
	maxQSeq  map[string]uint64
}

type subRef struct{ client, filter string }
type qRef struct {
	client string
	seq    uint64
}
type sessionState struct {
	seq     uint64
	session *Session // nil: ended
}
type subState struct {
	seq uint64
	sub *Subscription // nil: removed
}
type entryState2 struct {
	seq   uint64
	entry *QueueEntry // nil: removed
}
type retainedState struct {
	seq uint64
	msg *Message // nil: cleared
}

func newLogIndex() *logIndex {
	return &logIndex{
		needSessions: map[string]bool{}, needSubs: map[subRef]bool{}, needEntries: map[qRef]bool{},
		needBodies: map[uint64]bool{}, needRetained: map[string]bool{}, needQSeq: map[string]bool{},
		sessions: map[string]sessionState{}, subs: map[subRef]subState{}, entries: map[qRef]entryState2{},
		bodies: map[uint64]*Message{}, retained: map[string]retainedState{}, maxQSeq: map[string]uint64{},
	}
}

// want records what problem p needs from the log.
func (l *logIndex) want(p Problem, c *checker) {
	switch p.Kind {
	case ProblemUndecodable:
		k := p.key
		switch k[0] {
		case famSession:
			client, _, _ := splitClient(k)
			l.needSessions[client] = true
		case famSub:
			client, filter, _ := splitClient(k)
			l.needSubs[subRef{client, string(filter)}] = true
		case famQueue:
			client, seq, _ := queueKeySeq(k)
			l.needEntries[qRef{client, seq}] = true
		case famMsg:
			id, _, _ := splitU64(k)
			l.needBodies[id] = true
		case famQInfo:
			client, _, _ := splitClient(k)
			l.needQSeq[client] = true
		case famRetained:
			l.needRetained[string(k[2:])] = true
		}
	case ProblemMissingBody:
		l.needBodies[p.MsgID] = true
	case ProblemNoSession:
		l.needSessions[p.Client] = true
	case ProblemQueueInfo:
		l.needQSeq[p.Client] = true
	}
}

func (l *logIndex) empty() bool {
	return len(l.needSessions)+len(l.needSubs)+len(l.needEntries)+len(l.needBodies)+len(l.needRetained)+len(l.needQSeq) == 0
}

// build reads the log once, keeping the last word on every wanted key.
func (l *logIndex) build(r pebble.Reader) error {
	if l.empty() {
		return nil
	}
	return iterFamily(r, famEvent, func(key, val []byte) error {
		seq, _, err := splitU64(key)
		if err != nil {
			return nil
		}
		ev, err := decodeEvent(seq, val)
		if err != nil {
			return nil // reported by Check; nothing to learn from it
		}
		l.apply(ev)
		return nil
	})
}

// removed records that the log removes entry r at seq.
func (l *logIndex) removed(r qRef, seq uint64) {
	if st, ok := l.entries[r]; ok && st.entry != nil {
		l.entries[r] = entryState2{seq, nil}
	}
}

func (l *logIndex) apply(ev *Event) {
	switch ev.Kind {
	case EvSessionOpened, EvSessionClosed, EvWillFired:
		client := ev.Client
		if client == "" && ev.Session != nil {
			client = ev.Session.ClientID
		}
		if l.needSessions[client] && ev.Session != nil {
			l.sessions[client] = sessionState{ev.Seq, ev.Session}
		}
	case EvSessionDropped, EvSessionExpired:
		c := ev.Client
		if l.needSessions[c] {
			l.sessions[c] = sessionState{ev.Seq, nil}
		}
		for r := range l.needSubs {
			if r.client == c {
				l.subs[r] = subState{ev.Seq, nil}
			}
		}
		for r := range l.needEntries {
			if r.client == c {
				l.entries[r] = entryState2{ev.Seq, nil}
			}
		}
		if l.needQSeq[c] {
			delete(l.maxQSeq, c) // a dropped queue starts again at seq 1
		}
	case EvSubscribed, EvUnsubscribed:
		r := subRef{ev.Client, ev.Filter}
		if l.needSubs[r] {
			st := subState{seq: ev.Seq}
			if ev.Kind == EvSubscribed {
				st.sub = ev.Sub
			}
			l.subs[r] = st
		}
	case EvPublished:
		// Mirrors txn.published: a refused event (QueueFull) stored
		// nothing; recorded drops removed entries first; a target with
		// Seq 0 under a Limit was not enqueued; one enqueued target holds
		// the body inline, several share m/<MsgID>.
		m := ev.Msg
		if m == nil || ev.QueueFull != "" {
			return
		}
		for _, d := range ev.Dropped {
			l.removed(qRef{d.Client, d.Seq}, ev.Seq)
		}
		var enq []Target
		for _, tg := range ev.Targets {
			if tg.Seq != 0 || ev.Limit == nil {
				enq = append(enq, tg)
			}
		}
		if l.needBodies[ev.MsgID] && len(enq) > 1 {
			l.bodies[ev.MsgID] = m
		}
		for _, tg := range enq {
			if l.needQSeq[tg.Client] {
				l.maxQSeq[tg.Client] = max(l.maxQSeq[tg.Client], tg.Seq)
			}
			r := qRef{tg.Client, tg.Seq}
			if l.needEntries[r] {
				e := &QueueEntry{MsgID: ev.MsgID, QoS: tg.QoS, Retain: tg.Retain, SubIDs: tg.SubIDs, Size: int64(len(m.Payload)), ExpiresAt: m.ExpiresAt}
				if len(enq) == 1 {
					e.Body = m
				}
				l.entries[r] = entryState2{ev.Seq, e}
			}
		}
		if m.Retain && l.needRetained[m.Topic] {
			st := retainedState{seq: ev.Seq}
			if len(m.Payload) > 0 {
				st.msg = m
			}
			l.retained[m.Topic] = st
		}
	case EvAcked, EvDropped:
		l.removed(qRef{ev.Client, ev.QSeq}, ev.Seq)
	case EvBodyCollected:
		delete(l.bodies, ev.MsgID)
	case EvDelivered, EvPubrecReceived:
		r := qRef{ev.Client, ev.QSeq}
		if st, ok := l.entries[r]; ok && st.entry != nil {
			e := *st.entry
			if ev.Kind == EvDelivered {
				e.State, e.PacketID = StateSent, ev.PacketID
			} else {
				e.State = StatePubrec
			}
			l.entries[r] = entryState2{ev.Seq, &e}
		}
	case EvRetainedExpired:
		if st, ok := l.retained[ev.Topic]; ok && st.msg != nil {
			if d := st.msg.RetainedDeadline(); ev.Time == 0 || (d != 0 && d <= ev.Time) {
				l.retained[ev.Topic] = retainedState{ev.Seq, nil}
			}
		}
	}
}
