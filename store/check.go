package store

// The consistency checker behind Verify and `cairn recover --check`.
//
// It reads every key of one snapshot once, in key order, collects what each
// family says, and then compares the families with each other. Each
// violation is a Problem with a kind, the key it concerns and a sentence;
// Repair (repair.go) acts on the kinds. Invariants checked:
//
//   - meta/version is present and is SchemaVersion; meta/seq, if present, is
//     8 bytes.
//   - Every record decodes: sessions, subscriptions, queue entries, queue
//     summaries, message bodies, refcounts, retained messages, events. Every
//     key of a known family parses.
//   - Every queue entry's message body exists (inline in the entry, or m/ for
//     a body shared by several entries); every m/ body is referenced by some
//     entry without an inline body; c/<id> equals the number of referencing
//     entries and is present exactly when that number is above 1.
//   - The y/ queue expiry index holds exactly one key per entry whose
//     message expires (QueueEntry.ExpiresAt).
//   - Every queue summary n/ matches its entries (head, count, bytes, and no
//     entry at or above next); every queue with entries has a summary.
//   - Every client that owns subscriptions, queue entries, a queue summary
//     or inbound packet ids has a session record.
//   - Retained values hold their key's topic and a non-empty payload; the x/
//     expiry index and the retained values' deadlines (RetainedDeadline: 5.0
//     expiry or server TTL) agree both ways.
//   - LastSeq (of an open store) is what Open derives: max(meta/seq, last
//     logged seq); the in-memory queue summaries equal the stored ones.
//
// Two findings are warnings, not violations: a gap inside the event log
// (events lost to a damaged WAL that `recover --repair` salvaged around —
// history that cannot be restored, but no projection is wrong because of
// it), and a key of no known family (perhaps a newer Cairn's: never deleted).
//
// The checker holds per-message and per-queue maps in memory (a few tens of
// bytes per distinct message): it is for recovery, tests and offline checks,
// not the hot path.

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
)

// ProblemKind classifies a Problem.
type ProblemKind string

// Problem kinds.
const (
	ProblemSchema      ProblemKind = "schema"       // meta/version missing or unknown
	ProblemUndecodable ProblemKind = "undecodable"  // a record that does not decode
	ProblemBadKey      ProblemKind = "bad-key"      // a key of a known family that does not parse
	ProblemMissingBody ProblemKind = "missing-body" // queue entries reference a body that is not there
	ProblemOrphanBody  ProblemKind = "orphan-body"  // a body no entry references
	ProblemRefcount    ProblemKind = "refcount"     // c/<id> disagrees with the entries
	ProblemQueueInfo   ProblemKind = "queue-info"   // n/<client> disagrees with the entries (or is missing)
	ProblemNoSession   ProblemKind = "no-session"   // keys owned by a client without a session record
	ProblemRetained    ProblemKind = "retained"     // a retained value with the wrong topic or no payload
	ProblemExpiryIndex ProblemKind = "expiry-index" // x/ and r/ disagree
	ProblemQueueExpiry ProblemKind = "queue-expiry" // y/ and the queue entries disagree
	ProblemSequence    ProblemKind = "sequence"     // LastSeq or meta/seq inconsistent
	ProblemMemory      ProblemKind = "memory"       // in-memory state differs from the store (live stores)
	ProblemLogGap      ProblemKind = "log-gap"      // warning: seqs missing inside the log
	ProblemUnknownKey  ProblemKind = "unknown-key"  // warning: a key of no known family
)

// Problem is one finding of Check.
type Problem struct {
	Kind    ProblemKind `json:"kind"`
	Key     string      `json:"key,omitempty"` // KeyString of the key concerned
	Client  string      `json:"client,omitempty"`
	MsgID   uint64      `json:"msg_id,omitempty"`
	Topic   string      `json:"topic,omitempty"`
	Detail  string      `json:"detail"`
	Warning bool        `json:"warning,omitempty"`

	key []byte // the raw key, for Repair
}

// CheckReport is the result of Check.
type CheckReport struct {
	Problems []Problem `json:"problems"`
	// Omitted counts problems beyond maxCheckProblems (not listed).
	Omitted int `json:"omitted,omitempty"`
	// Keys counts the keys read per family (KeyString prefix, e.g. "q/").
	Keys map[string]int64 `json:"keys"`
	// FirstSeq..LastLogged is the extent of the event log; LastSeq is the
	// store's sequence (max of the log and meta/seq).
	FirstSeq   uint64 `json:"first_seq"`
	LastLogged uint64 `json:"last_logged"`
	LastSeq    uint64 `json:"last_seq"`
	// Truncated is true when the log's beginning was removed (TruncateLog):
	// the projections then cannot be rebuilt from the log alone.
	Truncated bool `json:"truncated"`
}

// Errors counts the problems that are not warnings (omitted ones included).
func (r *CheckReport) Errors() int {
	n := r.Omitted
	for _, p := range r.Problems {
		if !p.Warning {
			n++
		}
	}
	return n
}

const maxCheckProblems = 10000

// Check verifies every invariant of the store (see the file comment) on one
// snapshot, including the in-memory queue summaries and LastSeq.
func (s *Store) Check() (*CheckReport, error) {
	if err := s.enterRead(); err != nil {
		return nil, err
	}
	defer s.exitRead()
	// Snapshot and memory copy under the commit mutex so that they agree.
	s.mu.Lock()
	snap := s.db.NewSnapshot()
	mem := s.copyQueues()
	lastSeq := s.lastSeq
	s.mu.Unlock()
	defer snap.Close()
	c := newChecker(snap)
	c.mem, c.hasMem, c.lastSeq = mem, true, lastSeq
	rep, err := c.run()
	if err != nil {
		return nil, s.readErr("check", err)
	}
	return rep, nil
}

// CheckDir checks the store in dir without Store.Open, so that it works on
// a store Open refuses (an undecodable queue summary, a bad meta/version):
// Pebble is opened read-only and nothing is written. A Pebble-level
// corruption (WAL, sstable, manifest) is returned as a *CorruptionError.
func CheckDir(dir string, opts Options) (*CheckReport, error) {
	db, err := openRaw(dir, opts, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	snap := db.NewSnapshot()
	defer snap.Close()
	rep, err := newChecker(snap).run()
	if err != nil {
		if pebble.IsCorruptionError(err) {
			return nil, &CorruptionError{Dir: dir, Err: err}
		}
		return nil, fmt.Errorf("store: check %s: %w", dir, err)
	}
	return rep, nil
}

// openRaw opens the Pebble DB of a store without loading it.
func openRaw(dir string, opts Options, readOnly bool) (db *pebble.DB, err error) {
	opts = opts.withDefaults()
	opts.ReadOnly = readOnly
	defer func() {
		if fe := fatalFrom(recover()); fe != nil {
			db, err = nil, wrapOpenErr(dir, fe)
		}
	}()
	db, err = pebble.Open(dir, opts.pebbleOptions())
	if err != nil {
		return nil, wrapOpenErr(dir, err)
	}
	return db, nil
}

type queueAcc struct {
	min, max uint64
	count    int
	bytes    int64
	damaged  bool // some entries do not decode
}

type checker struct {
	r       pebble.Reader
	rep     *CheckReport
	mem     map[string]QueueInfo
	hasMem  bool
	lastSeq uint64

	version  []byte
	floor    uint64
	sessions map[string]bool
	owned    map[string]map[byte]int // client -> family -> keys
	queues   map[string]*queueAcc
	refs     map[uint64]uint64
	refKeys  map[uint64][][]byte // a few referencing entry keys per message
	bodies   map[uint64]bool
	counted  map[uint64]uint64
	qinfos   map[string]QueueInfo
	badQInfo map[string]bool
	expiries map[string]int64 // retained topic -> RetainedDeadline (0: none)
	indexed  map[string]bool
	qexpiry  map[string]bool // y/ keys the entries call for; visited ones are deleted
	qexpired [][]byte        // y/ keys that match no entry
	prevSeq  uint64
}

func newChecker(r pebble.Reader) *checker {
	return &checker{
		r:        r,
		rep:      &CheckReport{Keys: make(map[string]int64)},
		sessions: make(map[string]bool),
		owned:    make(map[string]map[byte]int),
		queues:   make(map[string]*queueAcc),
		refs:     make(map[uint64]uint64),
		refKeys:  make(map[uint64][][]byte),
		bodies:   make(map[uint64]bool),
		counted:  make(map[uint64]uint64),
		qinfos:   make(map[string]QueueInfo),
		badQInfo: make(map[string]bool),
		expiries: make(map[string]int64),
		indexed:  make(map[string]bool),
		qexpiry:  make(map[string]bool),
	}
}

func (c *checker) add(p Problem) {
	if len(c.rep.Problems) >= maxCheckProblems {
		c.rep.Omitted++
		return
	}
	if p.key != nil && p.Key == "" {
		p.Key = KeyString(p.key)
	}
	c.rep.Problems = append(c.rep.Problems, p)
}

func (c *checker) undecodable(key []byte, what string, err error) {
	c.add(Problem{Kind: ProblemUndecodable, key: clone(key), Detail: fmt.Sprintf("%s does not decode: %s", what, cause(err))})
}

// cause is the innermost message of a decode error (decode wraps the
// decoder's error with ErrUndecodable and the key, which the Problem
// already names).
func cause(err error) string {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		if es := u.Unwrap(); len(es) > 0 {
			return es[len(es)-1].Error()
		}
	}
	return err.Error()
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func (c *checker) run() (*CheckReport, error) {
	err := iterRange(c.r, nil, nil, func(key, val []byte) error {
		c.visit(key, val)
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.evaluate()
	return c.rep, nil
}

// visit collects one key.
func (c *checker) visit(key, val []byte) {
	if len(key) >= 5 && string(key[:5]) == "meta/" {
		c.rep.Keys["meta/"]++
		c.meta(key, val)
		return
	}
	if len(key) < 2 || key[1] != '/' || !knownFamily(key[0]) {
		c.rep.Keys["?"]++
		c.add(Problem{Kind: ProblemUnknownKey, key: clone(key), Warning: true, Detail: "key belongs to no known family (left alone)"})
		return
	}
	c.rep.Keys[string(key[:2])]++
	bad := func() { c.add(Problem{Kind: ProblemBadKey, key: clone(key), Detail: "key does not parse"}) }
	switch key[0] {
	case famSession:
		client, rest, err := splitClient(key)
		if err != nil || len(rest) != 0 {
			bad()
			return
		}
		c.sessions[client] = true
		var ses Session
		if err := decode(key, val, &ses); err != nil {
			c.undecodable(key, fmt.Sprintf("session record of %q", client), err)
		}
	case famSub:
		client, filter, err := splitClient(key)
		if err != nil || len(filter) == 0 {
			bad()
			return
		}
		c.own(client, famSub)
		var sub Subscription
		if err := decode(key, val, &sub); err != nil {
			c.undecodable(key, fmt.Sprintf("subscription %q of %q", filter, client), err)
		}
	case famInbound:
		client, rest, err := splitClient(key)
		if err != nil || len(rest) != 2 {
			bad()
			return
		}
		c.own(client, famInbound)
	case famQInfo:
		client, rest, err := splitClient(key)
		if err != nil || len(rest) != 0 {
			bad()
			return
		}
		c.own(client, famQInfo)
		qi, err := decodeQueueInfo(val)
		if err != nil {
			c.badQInfo[client] = true
			c.undecodable(key, fmt.Sprintf("queue summary of %q", client), err)
			return
		}
		c.qinfos[client] = qi
	case famQueue:
		client, seq, err := queueKeySeq(key)
		if err != nil {
			bad()
			return
		}
		c.own(client, famQueue)
		a := c.queues[client]
		if a == nil {
			a = &queueAcc{min: seq}
			c.queues[client] = a
		}
		a.max = seq
		var e QueueEntry
		if err := decode(key, val, &e); err != nil {
			a.damaged = true
			c.undecodable(key, fmt.Sprintf("queue entry %d of %q", seq, client), err)
			return
		}
		a.count++
		a.bytes += e.Size
		if e.ExpiresAt != 0 {
			c.qexpiry[string(queueExpiryKey(nil, e.ExpiresAt, client, seq))] = true
		}
		if e.Body != nil {
			return // inline body: no m/ reference
		}
		c.refs[e.MsgID]++
		if len(c.refKeys[e.MsgID]) < 3 {
			c.refKeys[e.MsgID] = append(c.refKeys[e.MsgID], clone(key))
		}
	case famMsg:
		id, rest, err := splitU64(key)
		if err != nil || len(rest) != 0 {
			bad()
			return
		}
		c.bodies[id] = true
		var m Message
		if err := decode(key, val, &m); err != nil {
			c.undecodable(key, fmt.Sprintf("message body %d", id), err)
		}
	case famRef:
		id, rest, err := splitU64(key)
		if err != nil || len(rest) != 0 {
			bad()
			return
		}
		n, err := decodeUvarint(val)
		if err != nil {
			c.undecodable(key, fmt.Sprintf("refcount of message %d", id), err)
			n = 0
		}
		c.counted[id] = n
	case famRetained:
		topic := string(key[2:])
		var m Message
		if err := decode(key, val, &m); err != nil {
			c.expiries[topic] = 0
			c.undecodable(key, fmt.Sprintf("retained message %q", topic), err)
			return
		}
		c.expiries[topic] = m.RetainedDeadline()
		if m.Topic != topic {
			c.add(Problem{Kind: ProblemRetained, key: clone(key), Topic: topic, Detail: fmt.Sprintf("retained value of %q holds topic %q", topic, m.Topic)})
		}
		if len(m.Payload) == 0 {
			c.add(Problem{Kind: ProblemRetained, key: clone(key), Topic: topic, Detail: fmt.Sprintf("retained value of %q has an empty payload", topic)})
		}
	case famExpiry:
		at, topic, err := splitU64(key)
		if err != nil {
			bad()
			return
		}
		if exp, ok := c.expiries[string(topic)]; !ok || uint64(exp) != at {
			c.add(Problem{Kind: ProblemExpiryIndex, key: clone(key), Topic: string(topic), Detail: fmt.Sprintf("expiry index entry (at %d) for %q matches no retained message", at, topic)})
		}
		c.indexed[string(topic)] = true
	case famQExpiry:
		// Keys sort by expiry time, not by queue: compared at the end.
		if _, _, _, err := splitQueueExpiry(key); err != nil {
			bad()
			return
		}
		c.qexpired = append(c.qexpired, clone(key))
	case famEvent:
		seq, rest, err := splitU64(key)
		if err != nil || len(rest) != 0 {
			bad()
			return
		}
		if c.rep.FirstSeq == 0 {
			c.rep.FirstSeq = seq
		} else if seq != c.prevSeq+1 {
			n := seq - 1 - c.prevSeq
			c.add(Problem{Kind: ProblemLogGap, Warning: true, Detail: fmt.Sprintf("the event log skips seqs %d..%d (%d %s lost)", c.prevSeq+1, seq-1, n, plural(n, "event", "events"))})
		}
		c.prevSeq, c.rep.LastLogged = seq, seq
		if _, err := decodeEvent(seq, val); err != nil {
			c.undecodable(key, fmt.Sprintf("event %d", seq), err)
		}
	}
}

func knownFamily(f byte) bool {
	switch f {
	case famSession, famSub, famMsg, famRef, famQueue, famQInfo, famInbound, famRetained, famExpiry, famQExpiry, famEvent:
		return true
	}
	return false
}

func (c *checker) own(client string, fam byte) {
	m := c.owned[client]
	if m == nil {
		m = make(map[byte]int)
		c.owned[client] = m
	}
	m[fam]++
}

func (c *checker) meta(key, val []byte) {
	switch string(key) {
	case string(keyVersion):
		c.version = clone(val)
	case string(keySeq):
		if len(val) != 8 {
			c.add(Problem{Kind: ProblemSequence, key: clone(key), Detail: fmt.Sprintf("meta/seq has %d bytes, want 8", len(val))})
			return
		}
		c.floor = binary.BigEndian.Uint64(val)
	default:
		c.add(Problem{Kind: ProblemUnknownKey, key: clone(key), Warning: true, Detail: "unknown meta key (left alone)"})
	}
}

// evaluate compares what visit collected.
func (c *checker) evaluate() {
	switch {
	case c.version == nil:
		c.add(Problem{Kind: ProblemSchema, key: clone(keyVersion), Detail: "meta/version is missing"})
	case len(c.version) != 8:
		c.add(Problem{Kind: ProblemSchema, key: clone(keyVersion), Detail: fmt.Sprintf("meta/version has %d bytes, want 8", len(c.version))})
	case binary.BigEndian.Uint64(c.version) != SchemaVersion:
		c.add(Problem{Kind: ProblemSchema, key: clone(keyVersion), Detail: fmt.Sprintf("schema version %d is not %d, the version this binary knows", binary.BigEndian.Uint64(c.version), SchemaVersion)})
	}
	for _, id := range sortedKeys(c.refs) {
		if !c.bodies[id] {
			var keys []string
			for _, k := range c.refKeys[id] {
				keys = append(keys, KeyString(k))
			}
			c.add(Problem{Kind: ProblemMissingBody, key: msgKey(nil, id), MsgID: id,
				Detail: fmt.Sprintf("message %d is missing but %d queue entries reference it (%s)", id, c.refs[id], strings.Join(keys, ", "))})
		}
	}
	for _, id := range sortedKeys(c.bodies) {
		if c.refs[id] == 0 {
			c.add(Problem{Kind: ProblemOrphanBody, key: msgKey(nil, id), MsgID: id, Detail: fmt.Sprintf("message %d has no queue entry referencing it", id)})
		}
	}
	for _, id := range sortedKeys(c.counted) {
		if n := c.counted[id]; n != c.refs[id] || n < 2 {
			c.add(Problem{Kind: ProblemRefcount, key: refKey(nil, id), MsgID: id, Detail: fmt.Sprintf("message %d: refcount %d, but %d entries reference it", id, n, c.refs[id])})
		}
	}
	for _, id := range sortedKeys(c.refs) {
		if _, ok := c.counted[id]; !ok && c.refs[id] > 1 {
			c.add(Problem{Kind: ProblemRefcount, key: refKey(nil, id), MsgID: id, Detail: fmt.Sprintf("message %d: %d entries reference it but it has no refcount", id, c.refs[id])})
		}
	}
	c.evaluateQueues()
	for _, client := range sortedKeys(c.owned) {
		if c.sessions[client] {
			continue
		}
		fams := c.owned[client]
		var parts []string
		for _, f := range []struct {
			fam  byte
			what string
		}{{famQueue, "queue entries"}, {famQInfo, "queue summary"}, {famSub, "subscriptions"}, {famInbound, "inbound packet ids"}} {
			if n := fams[f.fam]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, f.what))
			}
		}
		c.add(Problem{Kind: ProblemNoSession, key: sessionKey(nil, client), Client: client,
			Detail: fmt.Sprintf("client %q has %s but no session record", client, strings.Join(parts, ", "))})
	}
	for _, k := range c.qexpired {
		if c.qexpiry[string(k)] {
			delete(c.qexpiry, string(k))
			continue
		}
		at, client, seq, _ := splitQueueExpiry(k)
		c.add(Problem{Kind: ProblemQueueExpiry, key: k, Client: client, Detail: fmt.Sprintf("queue expiry index entry (at %d) for %q/%d matches no queue entry", at, client, seq)})
	}
	for _, k := range sortedKeys(c.qexpiry) {
		at, client, seq, _ := splitQueueExpiry([]byte(k))
		c.add(Problem{Kind: ProblemQueueExpiry, key: queueKey(nil, client, seq), Client: client, Detail: fmt.Sprintf("queue entry %q/%d expires at %d but is not in the queue expiry index", client, seq, at)})
	}
	for _, topic := range sortedKeys(c.expiries) {
		if c.expiries[topic] != 0 && !c.indexed[topic] {
			c.add(Problem{Kind: ProblemExpiryIndex, key: retainedKey(nil, topic), Topic: topic, Detail: fmt.Sprintf("retained %q expires but is not in the expiry index", topic)})
		}
	}
	c.rep.Truncated = c.floor > 0 || c.rep.FirstSeq > 1
	c.rep.LastSeq = max(c.floor, c.rep.LastLogged)
	if c.hasMem && c.rep.LastSeq != c.lastSeq {
		c.add(Problem{Kind: ProblemMemory, Detail: fmt.Sprintf("LastSeq is %d but the log ends at %d and meta/seq is %d", c.lastSeq, c.rep.LastLogged, c.floor)})
	}
}

func (c *checker) evaluateQueues() {
	clients := make(map[string]bool)
	for cl := range c.queues {
		clients[cl] = true
	}
	for cl := range c.qinfos {
		clients[cl] = true
	}
	for _, client := range sortedKeys(clients) {
		a := c.queues[client]
		qi, stored := c.qinfos[client]
		key := qinfoKey(nil, client)
		if c.badQInfo[client] {
			continue // reported as undecodable
		}
		if !stored {
			c.add(Problem{Kind: ProblemQueueInfo, key: key, Client: client, Detail: fmt.Sprintf("queue of %q has %d entries but no summary", client, a.count)})
			continue
		}
		want := QueueInfo{Head: qi.Next, Next: qi.Next}
		if a != nil && a.count > 0 {
			want.Head, want.Count, want.Bytes = a.min, a.count, a.bytes
		}
		if a != nil && a.max >= qi.Next {
			c.add(Problem{Kind: ProblemQueueInfo, key: key, Client: client, Detail: fmt.Sprintf("queue of %q: entry %d at or above its next seq %d", client, a.max, qi.Next)})
		} else if qi != want && (a == nil || !a.damaged) {
			c.add(Problem{Kind: ProblemQueueInfo, key: key, Client: client,
				Detail: fmt.Sprintf("queue of %q: summary says head %d count %d bytes %d, entries say head %d count %d bytes %d", client, qi.Head, qi.Count, qi.Bytes, want.Head, want.Count, want.Bytes)})
		}
	}
	if !c.hasMem {
		return
	}
	for _, client := range sortedKeys(clients) {
		qi, ok := c.qinfos[client]
		if m, mok := c.mem[client]; ok && (!mok || m != qi) {
			c.add(Problem{Kind: ProblemMemory, Client: client, Detail: fmt.Sprintf("queue of %q: in-memory summary %+v (present %v) differs from the stored %+v", client, m, mok, qi)})
		}
	}
	for _, client := range sortedKeys(c.mem) {
		if _, ok := c.qinfos[client]; !ok && !c.badQInfo[client] {
			c.add(Problem{Kind: ProblemMemory, Client: client, Detail: fmt.Sprintf("queue of %q is in memory but not stored", client)})
		}
	}
}

func sortedKeys[K interface{ ~string | ~uint64 }, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

// KeyString renders a store key for people: s/<client>, u/<client>/<filter>,
// q/<client>/<seq>, n/<client>, i/<client>/<pid>, m/<id>, c/<id>, r/<topic>,
// x/<unix-ns>/<topic>, y/<unix-ns>/<client>/<seq>, e/<seq>. Client ids and topics that are not printable
// are quoted.
func KeyString(k []byte) string {
	if len(k) < 2 || k[1] != '/' {
		return printable(string(k))
	}
	switch k[0] {
	case famSession, famQInfo, famSub, famQueue, famInbound:
		client, rest, err := splitClient(k)
		if err != nil {
			return fmt.Sprintf("%q", k)
		}
		s := string(k[0]) + "/" + printable(client)
		switch {
		case k[0] == famSub:
			s += "/" + printable(string(rest))
		case k[0] == famQueue && len(rest) == 8:
			s += "/" + strconv.FormatUint(binary.BigEndian.Uint64(rest), 10)
		case k[0] == famInbound && len(rest) == 2:
			s += "/" + strconv.Itoa(int(binary.BigEndian.Uint16(rest)))
		case len(rest) > 0:
			s += fmt.Sprintf("+%x", rest)
		}
		return s
	case famMsg, famEvent, famRef:
		id, rest, err := splitU64(k)
		if err != nil || len(rest) != 0 {
			return fmt.Sprintf("%q", k)
		}
		return string(k[0]) + "/" + strconv.FormatUint(id, 10)
	case famRetained:
		return "r/" + printable(string(k[2:]))
	case famExpiry:
		at, topic, err := splitU64(k)
		if err != nil {
			return fmt.Sprintf("%q", k)
		}
		return fmt.Sprintf("x/%d/%s", at, printable(string(topic)))
	case famQExpiry:
		at, client, seq, err := splitQueueExpiry(k)
		if err != nil {
			return fmt.Sprintf("%q", k)
		}
		return fmt.Sprintf("y/%d/%s/%d", at, printable(client), seq)
	}
	return printable(string(k))
}

func printable(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
