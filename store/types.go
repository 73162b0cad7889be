package store

// EventKind names what changed. Values are stored: never renumber.
type EventKind uint8

// Event kinds.
const (
	EvSessionOpened   EventKind = 1  // Session: put s/<client> (a new or resumed session)
	EvSessionClosed   EventKind = 2  // Session: put s/<client> (connection ended; session persists)
	EvSessionDropped  EventKind = 3  // Client: delete the session and everything it owns (s/, u/, q/, i/), releasing message refs
	EvSessionExpired  EventKind = 4  // Client: same as dropped, done by expiry
	EvWillFired       EventKind = 5  // Session: put s/<client> (will cleared)
	EvSubscribed      EventKind = 6  // Client, Filter, Sub: put u/<client>/<filter>
	EvUnsubscribed    EventKind = 7  // Client, Filter: delete u/<client>/<filter>
	EvPublished       EventKind = 8  // Msg, Targets, optional InboundPID (Client = publisher): store body once, enqueue per target, retained set/clear
	EvAcked           EventKind = 9  // Client, QSeq (and QSeqs): delete queue entries (PUBACK / PUBCOMP from the subscriber), release message refs
	EvPubrecReceived  EventKind = 10 // Client, QSeq: queue entry state -> StatePubrec
	EvReleased        EventKind = 11 // Client, PacketID: delete i/<client>/<pid> (PUBREL from a QoS 2 publisher)
	EvDropped         EventKind = 12 // Client, QSeq, Reason: queue entry removed without delivery (expired, overflow)
	EvRetainedExpired EventKind = 13 // Topic: delete r/<topic> and its expiry index entry
	EvDelivered       EventKind = 14 // Client, QSeq, PacketID: queue entry state -> StateSent (need not be synced)
	EvBodyCollected   EventKind = 15 // MsgID: delete m/<id> and c/<id>, a body no queue entry references (compaction, full mode)
)

// Queue entry states.
const (
	StateQueued byte = 0 // not yet sent to the client
	StateSent   byte = 1 // PUBLISH sent, awaiting PUBACK / PUBREC
	StatePubrec byte = 2 // QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
)

// Event is one logged state change. Which fields are set depends on Kind.
// Seq is the event's position in the log, assigned by Commit.
type Event struct {
	Seq      uint64        `msgpack:"-"`
	Kind     EventKind     `msgpack:"k"`
	Time     int64         `msgpack:"t"` // unix nanoseconds, set by the engine
	Client   string        `msgpack:"c,omitempty"`
	Session  *Session      `msgpack:"s,omitempty"`
	Filter   string        `msgpack:"f,omitempty"`
	Sub      *Subscription `msgpack:"u,omitempty"`
	MsgID    uint64        `msgpack:"m,omitempty"` // EvPublished: assigned by Commit (= Seq)
	Msg      *Message      `msgpack:"b,omitempty"`
	Targets  []Target      `msgpack:"g,omitempty"`
	QSeq     uint64        `msgpack:"q,omitempty"`
	PacketID uint16        `msgpack:"p,omitempty"`
	// InboundPID, with EvPublished, records i/<Client>/<InboundPID>: a QoS 2
	// packet id from the publisher awaiting PUBREL.
	InboundPID uint16 `msgpack:"i,omitempty"`
	Topic      string `msgpack:"o,omitempty"`
	Reason     string `msgpack:"r,omitempty"`
	// Limit, with EvPublished, holds every target's queue to a size; see
	// QueueLimit (limit.go) for what happens to a queue that is full.
	Limit *QueueLimit `msgpack:"l,omitempty"`
	// Dropped, with EvPublished under a LimitDropOldest Limit, lists the
	// queue entries removed to make room. Assigned by Commit (like
	// Target.Seq); ReplayEvent applies the recorded list.
	Dropped []QueueRef `msgpack:"d,omitempty"`
	// QueueFull, with EvPublished under a LimitReject Limit, names the client
	// whose queue the message would have overflowed: then nothing of the
	// event was applied (no body, entry, retained value or inbound packet
	// id). Assigned by Commit; ReplayEvent applies the recorded decision.
	QueueFull string `msgpack:"qf,omitempty"`
	// QSeqs, with EvAcked, are more queue seqs of the same client removed
	// by the same event, after QSeq and in order: the acknowledgements one
	// read of a subscriber's socket brings, logged as one event.
	QSeqs []uint64 `msgpack:"qs,omitempty"`
	// MayUseReserve, with EvPublished, lets the commit use the free-space
	// reserve: the free-space guard never refuses it (space.go). The engine
	// sets it on wills. Not stored.
	MayUseReserve bool `msgpack:"-"`
}

// Session is the record s/<client>.
type Session struct {
	ClientID string `msgpack:"id"`
	Version  byte   `msgpack:"v"` // wire.Version of the last connection
	// ExpiryInterval in seconds after disconnect; 0xFFFFFFFF never expires.
	// 3.x clean session = 0 sessions are stored with 0xFFFFFFFF. Sessions
	// with interval 0 are never stored.
	ExpiryInterval uint32 `msgpack:"x"`
	Connected      bool   `msgpack:"on"`
	ConnectedAt    int64  `msgpack:"ca"` // unix nanoseconds
	DisconnectedAt int64  `msgpack:"da,omitempty"`
	Will           *Will  `msgpack:"w,omitempty"`
	Username       string `msgpack:"un,omitempty"`
	// ExpiresAt is when the offline session expires (unix nanoseconds): the
	// disconnect time plus ExpiryInterval, stored as an absolute time so
	// that time spent with the broker down counts. 0 while connected and
	// for sessions that never expire.
	ExpiresAt int64 `msgpack:"xa,omitempty"`
	// WillAt is when the pending will of an offline session is due (unix
	// nanoseconds): the disconnect time plus the will delay interval. 0
	// when no will is pending (a Will kept armed across a broker shutdown
	// is not pending).
	WillAt int64 `msgpack:"wa,omitempty"`
	// SentBelow is the offline session's "may have been sent" queue
	// watermark when it was closed (SentKnown): entries at or above it were
	// never handed to a client, so their first delivery after a restart
	// carries DUP 0 (MQTT-3.3.1-3). Without it (a session a crash left
	// connected, or a record from before the field) the engine assumes the
	// first window of the queue may have been sent.
	SentBelow uint64 `msgpack:"sb,omitempty"`
	SentKnown bool   `msgpack:"sk,omitempty"`
}

// Will is a session's armed will message.
type Will struct {
	Topic   string `msgpack:"t"`
	Payload []byte `msgpack:"p"`
	QoS     byte   `msgpack:"q"`
	Retain  bool   `msgpack:"r"`
	Props   []byte `msgpack:"x,omitempty"` // wire-encoded 5.0 will properties
	Delay   uint32 `msgpack:"d,omitempty"` // will delay interval, seconds
}

// Subscription is the record u/<client>/<filter>.
type Subscription struct {
	QoS               byte   `msgpack:"q"`
	NoLocal           bool   `msgpack:"nl,omitempty"`
	RetainAsPublished bool   `msgpack:"rap,omitempty"`
	RetainHandling    byte   `msgpack:"rh,omitempty"`
	SubID             uint32 `msgpack:"id,omitempty"`
}

// Message is a message body: m/<msgid> when several queues hold it (stored
// once however many), inline in the queue entry when one does; also the
// value of a retained message r/<topic>.
type Message struct {
	Topic       string `msgpack:"t"`
	Payload     []byte `msgpack:"p"`
	QoS         byte   `msgpack:"q"`
	Retain      bool   `msgpack:"r,omitempty"`
	Props       []byte `msgpack:"x,omitempty"` // wire-encoded 5.0 properties (no topic alias / subscription ids)
	From        string `msgpack:"f,omitempty"` // publisher client id (for no-local)
	PublishedAt int64  `msgpack:"at"`          // unix nanoseconds
	// ExpiresAt is the MQTT 5.0 message expiry as an absolute deadline (unix
	// ns, 0 = none): it applies to every copy, queued or retained.
	ExpiresAt int64 `msgpack:"ex,omitempty"`
	// RetainUntil is the server-side retention deadline of the retained copy
	// (unix ns, 0 = none), from the broker's retained TTL rules. It does not
	// shorten the life of queued copies or change the expiry a subscriber is
	// told. See RetainedDeadline.
	RetainUntil int64 `msgpack:"ru,omitempty"`
}

// RetainedDeadline is when the retained copy of m stops being served: the
// earlier of ExpiresAt and RetainUntil, 0 if neither is set.
func (m *Message) RetainedDeadline() int64 {
	switch {
	case m.ExpiresAt == 0:
		return m.RetainUntil
	case m.RetainUntil == 0:
		return m.ExpiresAt
	}
	return min(m.ExpiresAt, m.RetainUntil)
}

// RetainedExpired reports whether the retained copy of m has expired at now
// (unix ns). Every reader of retained messages must skip expired ones: the
// compaction task deletes them only on its next pass.
func (m *Message) RetainedExpired(now int64) bool {
	d := m.RetainedDeadline()
	return d != 0 && d <= now
}

// Target is one persistent session a published message is queued for.
type Target struct {
	Client string   `msgpack:"c"`
	QoS    byte     `msgpack:"q"` // effective QoS for this subscriber
	Retain bool     `msgpack:"r,omitempty"`
	SubIDs []uint32 `msgpack:"s,omitempty"`
	Seq    uint64   `msgpack:"n"` // queue sequence, assigned by Commit; 0 after Commit: not enqueued (its queue was full, see QueueLimit)
	// SentBelow, under a LimitDropOldest Limit, protects the entries that
	// may be in flight toward the client (seq < SentBelow) from being
	// dropped to make room.
	SentBelow uint64 `msgpack:"sb,omitempty"`
	// Group is the shared subscription group ($share/<group>/...) that chose
	// this subscriber, "" for an ordinary subscription. Copied into the
	// queue entry, so that a member's queue can be handed to another member
	// when its session expires (MQTT 5.0 §4.8.2).
	Group string `msgpack:"g,omitempty"`
}

// QueueEntry is the record q/<client>/<seq>.
type QueueEntry struct {
	MsgID    uint64   `msgpack:"m"`
	QoS      byte     `msgpack:"q"`
	Retain   bool     `msgpack:"r,omitempty"`
	SubIDs   []uint32 `msgpack:"s,omitempty"`
	State    byte     `msgpack:"st,omitempty"`
	PacketID uint16   `msgpack:"p,omitempty"`
	// Size is the payload length of the referenced message, kept here so
	// that QueueInfo.Bytes can be maintained on ack without reading the
	// body. Set by the store when the entry is enqueued.
	Size int64 `msgpack:"z,omitempty"`
	// ExpiresAt copies the message's 5.0 expiry deadline (unix ns, 0 = none),
	// so that removing the entry can remove its y/ index key without
	// reading the body.
	ExpiresAt int64 `msgpack:"ex,omitempty"`
	// Group is the shared subscription group that queued the message here
	// (Target.Group), "" for an ordinary subscription.
	Group string `msgpack:"g,omitempty"`
	// Body is the message itself when this entry is its only reference (a
	// message queued for one session): it is stored inline and there is no
	// m/<MsgID> body, so the ack deletes one key and reads no refcount.
	Body *Message `msgpack:"b,omitempty"`
}

// QueuedMessage is a queue entry joined with its message body.
type QueuedMessage struct {
	Seq   uint64
	Entry QueueEntry
	Msg   *Message
}

// QueueInfo is the in-memory summary the store keeps per session queue.
type QueueInfo struct {
	Head  uint64 // lowest seq present (Next when empty)
	Next  uint64 // seq the next enqueued entry gets
	Count int
	Bytes int64 // payload bytes referenced
}

// SessionState is everything stored for one session, for recovery.
type SessionState struct {
	Session     Session
	Subs        map[string]Subscription // by filter
	Queue       QueueInfo
	InboundPIDs []uint16 // QoS 2 packet ids awaiting PUBREL
}

// PacketIDFor is the packet identifier of the delivery of queue sequence
// seq toward its client (1..65535, cycling): the engine derives it from the
// seq, so an entry need not store it (EvDelivered, which does, is not
// always logged).
func PacketIDFor(seq uint64) uint16 { return uint16((seq-1)%65535) + 1 }
