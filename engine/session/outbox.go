package session

import (
	"cmp"
	"slices"

	"github.com/cairn-mqtt/cairn/store"
)

// Outbox invariants:
//   - Every in-flight entry's packet id is pidFor(seq), and no two in-flight
//     entries share one: a delivery is held back while its seq is 65535 or
//     more past the oldest in-flight seq.
//   - pending holds QoS 1/2 deliveries in ascending seq order, not yet sent.
//   - For a persistent session every seq below loaded has been taken into
//     pending (or was already sent or acknowledged); seqs in [loaded,
//     durableNext) are in the store and are read from it when pending runs
//     dry. Only durable entries are ever sent: a message delivered before it
//     is durable could come back as a duplicate after a crash.
//   - Memory is bounded: pending holds at most memCap entries, qos0 at most
//     qos0Cap, and together they hold at most memBytes bytes of messages
//     (or one message, however large); a persistent session's overflow
//     stays in the store, a clean session's is refused (and counted by the
//     caller).

// Delivery is one message on its way to this client.
type Delivery struct {
	Seq    uint64 // queue sequence; 0 for QoS 0
	QoS    byte
	Retain bool
	SubIDs []uint32
	Msg    *store.Message
	// State is the stored queue state (store.StateQueued/Sent/Pubrec) when the
	// delivery was loaded from the store.
	State byte
	// Group is the shared subscription ("$share/<name>/<filter>") that chose
	// this session for the message, "" for an ordinary subscription: a clean
	// session that ends before acknowledging it hands it to another member.
	Group string
}

// ActionKind says what the connection must send.
type ActionKind uint8

// Actions.
const (
	SendPublish ActionKind = iota + 1
	SendPubrel
)

// Action is one packet the connection must write.
type Action struct {
	Kind     ActionKind
	PacketID uint16 // 0 for QoS 0
	Dup      bool
	Delivery Delivery
}

// Inflight is a sent QoS 1/2 delivery awaiting its acknowledgement.
type Inflight struct {
	Delivery Delivery
	PubrecIn bool // QoS 2: PUBREC received, PUBREL sent
}

// Outbox is the outbound state of one session. It is not safe for concurrent
// use.
type Outbox struct {
	persistent bool
	window     int
	memCap     int
	qos0Cap    int
	memBytes   int // 0: no byte bound
	bytes      int // held in pending and qos0

	inflight map[uint16]Inflight
	pending  []Delivery
	qos0     []Delivery
	// pbuf and qbuf keep the start of pending's and qos0's arrays, so that
	// a list that runs empty starts again at the front of its array instead
	// of allocating a new one (a session keeping up empties it all the time).
	pbuf, qbuf []Delivery

	loaded      uint64 // persistent: next seq to take from the store
	durableNext uint64 // persistent: seqs below are durable in the store
	cleanNext   uint64 // clean: next in-memory seq
	sentNext    uint64 // seqs below have been sent at least once (DUP)
}

// Config sizes an Outbox.
type Config struct {
	Persistent bool
	Window     int // in-flight QoS 1/2 messages toward the client
	MemCap     int // QoS 1/2 deliveries held in memory
	QoS0Cap    int // QoS 0 deliveries held in memory
	MemBytes   int // bytes of messages held in memory (pending and QoS 0); 0: no bound
}

// Size is what a delivery's message costs in memory, for Config.MemBytes.
func Size(m *store.Message) int {
	if m == nil {
		return 0
	}
	return len(m.Topic) + len(m.Payload) + len(m.Props) + 64
}

// fits reports whether n more bytes stay within the byte bound; an empty
// outbox takes any one message.
func (o *Outbox) fits(n int) bool {
	return o.memBytes <= 0 || o.bytes == 0 || o.bytes+n <= o.memBytes
}

// New returns an Outbox. For a persistent session head is the lowest queued
// seq in the store and next the seq the next stored entry will get; sentBelow
// is the conservative "may have been sent" watermark (after a restart, head
// plus the window).
func New(c Config, head, next, sentBelow uint64) *Outbox {
	if c.Window <= 0 {
		c.Window = 1
	}
	if c.Window > 65535 {
		c.Window = 65535
	}
	if c.MemCap < c.Window {
		c.MemCap = c.Window
	}
	if c.QoS0Cap <= 0 {
		c.QoS0Cap = 1
	}
	o := &Outbox{
		persistent: c.Persistent, window: c.Window, memCap: c.MemCap, qos0Cap: c.QoS0Cap, memBytes: c.MemBytes,
		loaded: head, durableNext: next, cleanNext: 1, sentNext: sentBelow,
	}
	return o
}

// pidFor derives the packet identifier of a queue sequence (1..65535).
func pidFor(seq uint64) uint16 { return store.PacketIDFor(seq) }

// SetWindow changes the in-flight window (a new connection's Receive Maximum).
func (o *Outbox) SetWindow(n int) {
	if n <= 0 {
		n = 1
	}
	if n > 65535 {
		n = 65535
	}
	o.window = n
	if o.memCap < n {
		o.memCap = n
	}
}

// Push offers a delivery. QoS 0 deliveries are held in a bounded list; a
// persistent session's QoS 1/2 deliveries must arrive in seq order and are
// durable in the store, so one that does not fit in memory is simply left
// there; a clean session's QoS 1/2 delivery gets the next in-memory seq. Push
// returns false when the delivery was refused for lack of room (clean
// sessions and QoS 0 only): the caller counts the drop.
func (o *Outbox) Push(d Delivery) bool {
	n := Size(d.Msg)
	if d.QoS == 0 {
		if len(o.qos0) >= o.qos0Cap || !o.fits(n) {
			return false
		}
		d.Seq = 0
		o.qos0, o.qbuf = appendKeep(o.qos0, o.qbuf, d)
		o.bytes += n
		return true
	}
	if o.persistent {
		if d.Seq >= o.durableNext {
			o.durableNext = d.Seq + 1
		}
		if d.Seq == o.loaded && len(o.pending) < o.memCap && o.fits(n) {
			o.pending, o.pbuf = appendKeep(o.pending, o.pbuf, d)
			o.bytes += n
			o.loaded++
		}
		return true
	}
	if len(o.pending) >= o.memCap || !o.fits(n) {
		return false
	}
	d.Seq = o.cleanNext
	o.cleanNext++
	o.pending, o.pbuf = appendKeep(o.pending, o.pbuf, d)
	o.bytes += n
	return true
}

// Durable records that a persistent session's queue holds seq in the store,
// without keeping the delivery in memory (the session is offline).
func (o *Outbox) Durable(seq uint64) {
	if seq >= o.durableNext {
		o.durableNext = seq + 1
	}
}

// NeedLoad reports the seq range [from, to) the caller should read from the
// store and hand to Loaded, when nothing in memory is waiting to be sent.
func (o *Outbox) NeedLoad() (from, to uint64, ok bool) {
	if !o.persistent || len(o.pending) > 0 || o.loaded >= o.durableNext {
		return 0, 0, false
	}
	return o.loaded, o.durableNext, true
}

// Loaded takes entries read from the store for [from, to). complete says the
// read returned everything in the range (fewer than the limit asked for).
// Entries below loaded (already taken in meanwhile) are skipped.
func (o *Outbox) Loaded(ds []Delivery, to uint64, complete bool) {
	for _, d := range ds {
		if d.Seq < o.loaded {
			continue
		}
		o.pending, o.pbuf = appendKeep(o.pending, o.pbuf, d)
		o.bytes += Size(d.Msg)
		o.loaded = d.Seq + 1
	}
	if complete && o.loaded < to {
		o.loaded = to
	}
}

// Next returns the next packet to send, if the window allows one.
func (o *Outbox) Next() (Action, bool) {
	if len(o.qos0) > 0 {
		var d Delivery
		d, o.qos0, o.qbuf = popKeep(o.qos0, o.qbuf)
		o.bytes -= Size(d.Msg)
		return Action{Kind: SendPublish, Delivery: d}, true
	}
	if len(o.pending) == 0 || len(o.inflight) >= o.window {
		return Action{}, false
	}
	d := o.pending[0]
	pid := pidFor(d.Seq)
	if _, busy := o.inflight[pid]; busy {
		// The seq is 65535 past an unacknowledged one: wait for that ack.
		return Action{}, false
	}
	o.bytes -= Size(d.Msg)
	_, o.pending, o.pbuf = popKeep(o.pending, o.pbuf)
	dup := d.Seq < o.sentNext
	if d.Seq >= o.sentNext {
		o.sentNext = d.Seq + 1
	}
	if o.inflight == nil {
		o.inflight = make(map[uint16]Inflight) // not before the first: an idle session holds none
	}
	if d.QoS == 2 && d.State == store.StatePubrec {
		o.inflight[pid] = Inflight{Delivery: d, PubrecIn: true}
		return Action{Kind: SendPubrel, PacketID: pid, Delivery: d}, true
	}
	o.inflight[pid] = Inflight{Delivery: d}
	return Action{Kind: SendPublish, PacketID: pid, Dup: dup, Delivery: d}, true
}

// AckResult says what an acknowledgement from the client did.
type AckResult uint8

// Ack results.
const (
	AckUnknown    AckResult = iota // no such in-flight packet id (or wrong state)
	AckCompleted                   // PUBACK / PUBCOMP: the delivery is finished
	AckPubrecDone                  // PUBREC: now send PUBREL (after the state is durable)
)

// Ack applies a PUBACK, PUBREC or PUBCOMP from the client (kind is 4, 5 or 7,
// the wire packet types) and returns the delivery it concerned.
func (o *Outbox) Ack(kind byte, pid uint16) (AckResult, Delivery) {
	in, ok := o.inflight[pid]
	if !ok {
		return AckUnknown, Delivery{}
	}
	switch {
	case kind == 4 && in.Delivery.QoS == 1, kind == 7 && in.Delivery.QoS == 2 && in.PubrecIn:
		delete(o.inflight, pid)
		return AckCompleted, in.Delivery
	case kind == 5 && in.Delivery.QoS == 2 && !in.PubrecIn:
		in.PubrecIn = true
		o.inflight[pid] = in
		return AckPubrecDone, in.Delivery
	case kind == 5 && in.Delivery.QoS == 2 && in.PubrecIn:
		// A repeated PUBREC: answer it with PUBREL again.
		return AckPubrecDone, in.Delivery
	}
	return AckUnknown, Delivery{}
}

// Refused ends a QoS 2 delivery the client answered with a PUBREC carrying
// an error code: in 5.0 that ends the exchange (§4.3.3), no PUBREL follows.
// It reports false when pid is not a QoS 2 delivery awaiting PUBREC.
func (o *Outbox) Refused(pid uint16) (Delivery, bool) {
	in, ok := o.inflight[pid]
	if !ok || in.Delivery.QoS != 2 || in.PubrecIn {
		return Delivery{}, false
	}
	delete(o.inflight, pid)
	return in.Delivery, true
}

// Forget removes an in-flight delivery that will never be acknowledged
// (dropped: expired, or too large for the client).
func (o *Outbox) Forget(pid uint16) { delete(o.inflight, pid) }

// Rewind forgets what is in flight and in memory so that delivery starts
// again from the store's head (a persistent session's new connection): the
// store has every entry that was in flight, with its PUBREC state.
func (o *Outbox) Rewind(head uint64) {
	clear(o.inflight)
	o.pending = nil
	o.qos0 = nil
	o.bytes = 0
	o.loaded = head
}

// InflightCount is the number of unacknowledged deliveries.
func (o *Outbox) InflightCount() int { return len(o.inflight) }

// PendingCount is the number of deliveries held in memory, not yet sent.
func (o *Outbox) PendingCount() int { return len(o.pending) + len(o.qos0) }

// Backlog reports whether the store holds durable entries not yet in memory.
func (o *Outbox) Backlog() bool { return o.persistent && o.loaded < o.durableNext }

// Inflights returns the in-flight deliveries (for a clean session whose
// in-flight state lives only here, and for inspection).
func (o *Outbox) Inflights() []*Inflight {
	out := make([]*Inflight, 0, len(o.inflight))
	for _, in := range o.inflight {
		out = append(out, &in)
	}
	return out
}

// Unacknowledged returns, in queue order, the QoS 1/2 deliveries the client
// has not acknowledged and keep accepts: those in flight without a PUBREC,
// then those still waiting in memory. (A QoS 2 delivery whose PUBREC arrived
// has been received; only its PUBREL exchange is left.) Nothing is
// allocated when keep accepts none.
func (o *Outbox) Unacknowledged(keep func(*Delivery) bool) []Delivery {
	var out []Delivery
	for _, in := range o.inflight {
		if !in.PubrecIn && keep(&in.Delivery) {
			out = append(out, in.Delivery)
		}
	}
	slices.SortFunc(out, func(a, b Delivery) int { return cmp.Compare(a.Seq, b.Seq) })
	for i := range o.pending {
		if d := &o.pending[i]; d.QoS > 0 && keep(d) {
			out = append(out, *d)
		}
	}
	return out
}

// keepCap is the largest array a list keeps for reuse once it runs empty:
// enough for a busy subscriber's bursts, small enough (14 KiB) that a
// session that has gone quiet holds little.
const keepCap = 256

// appendKeep appends d to list; buf tracks the start of list's array.
func appendKeep(list, buf []Delivery, d Delivery) ([]Delivery, []Delivery) {
	c := cap(list)
	list = append(list, d)
	if cap(list) != c { // a new array: list starts at its front
		buf = list[:0]
	}
	return list, buf
}

// popKeep removes the first delivery of list; an emptied list starts again
// at the front of its array (buf), or lets a large array go.
func popKeep(list, buf []Delivery) (Delivery, []Delivery, []Delivery) {
	d := list[0]
	list[0] = Delivery{}
	list = list[1:]
	if len(list) == 0 {
		if cap(buf) <= keepCap {
			list = buf[:0]
		} else {
			list, buf = nil, nil
		}
	}
	return d, list, buf
}

// Crowded reports that the deliveries held in memory for a client that is
// not keeping up are near the point where more would be refused (three
// quarters of the QoS 0 cap, or of the memory cap of a clean session): the
// publishers feeding it should pause (engine/backpressure.go).
func (o *Outbox) Crowded() bool {
	return 4*len(o.qos0) >= 3*o.qos0Cap || (!o.persistent && 4*len(o.pending) >= 3*o.memCap)
}

// Roomy reports that the client has worked its way down to a quarter of
// those caps: paused publishers may go on.
func (o *Outbox) Roomy() bool {
	return 4*len(o.qos0) <= o.qos0Cap && (o.persistent || 4*len(o.pending) <= o.memCap)
}
