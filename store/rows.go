package store

// The rows of `cairn inspect` (queries in inspect.go): JSON-ready, with
// absolute times, the same whichever side — a stopped store or a running
// broker's admin endpoint — produced them.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrNotFound is returned by SessionDetail for a client the store knows
// nothing about.
var ErrNotFound = errors.New("store: not found")

// NeverExpires is the stored expiry interval of a session that never
// expires (3.x clean session 0, or 5.0 session expiry 0xFFFFFFFF).
const NeverExpires uint32 = 0xFFFFFFFF

// SessionRow is one line of `cairn inspect sessions`.
type SessionRow struct {
	Client string `json:"client"`
	// Clean is true for a session that ends with its connection (3.x clean
	// session 1, 5.0 session expiry 0). Such sessions are never stored, so
	// only a live broker reports them.
	Clean          bool      `json:"clean"`
	Version        byte      `json:"version,omitempty"` // protocol level of the last connection: 3, 4 or 5
	Connected      bool      `json:"connected"`
	ConnectedAt    time.Time `json:"connected_at,omitzero"`
	DisconnectedAt time.Time `json:"disconnected_at,omitzero"`
	// Expiry is the session expiry interval in seconds after disconnect;
	// NeverExpires means never.
	Expiry        uint32 `json:"expiry"`
	Subscriptions int    `json:"subscriptions"`
	Queued        int    `json:"queued"`       // messages in the offline queue (in flight included)
	QueuedBytes   int64  `json:"queued_bytes"` // their payload bytes
	Inflight      int    `json:"inflight"`     // sent, not yet acknowledged (QoS 1 and 2)
	InboundQoS2   int    `json:"inbound_qos2"` // packet ids from the client awaiting PUBREL
	Will          bool   `json:"will"`
	Username      string `json:"username,omitempty"`
	// ExpiresAt is when the offline session expires; WillAt when its
	// delayed will is due (zero: not applicable).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	WillAt    time.Time `json:"will_at,omitzero"`
	// Damage describes what could not be read (empty when all is well).
	Damage string `json:"damage,omitempty"`
}

// SubRow is one subscription of a session.
type SubRow struct {
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local,omitempty"`
	RetainAsPublished bool   `json:"retain_as_published,omitempty"`
	RetainHandling    byte   `json:"retain_handling,omitempty"`
	SubID             uint32 `json:"subscription_id,omitempty"`
	Damage            string `json:"damage,omitempty"`
}

// WillRow is a session's armed will.
type WillRow struct {
	Topic   string `json:"topic"`
	QoS     byte   `json:"qos"`
	Retain  bool   `json:"retain"`
	Delay   uint32 `json:"delay,omitempty"` // seconds
	Size    int    `json:"size"`
	Preview string `json:"preview"`
}

// InflightRow is a queue entry that was sent and awaits its acknowledgement.
type InflightRow struct {
	Seq      uint64 `json:"seq"`
	PacketID uint16 `json:"packet_id"`
	State    string `json:"state"` // "sent" (awaiting PUBACK / PUBREC) or "pubrec" (awaiting PUBCOMP)
	QoS      byte   `json:"qos"`
	Topic    string `json:"topic,omitempty"`
}

// SessionDetail is `cairn inspect session ID`.
type SessionDetail struct {
	SessionRow
	Subs []SubRow `json:"subs"`
	// WillMsg is the armed will, if any.
	WillMsg   *WillRow      `json:"will_message,omitempty"`
	Inflights []InflightRow `json:"inflight_messages"`
	// InboundPIDs are the QoS 2 packet ids from the client awaiting PUBREL.
	InboundPIDs []uint16 `json:"inbound_packet_ids"`
	// QueueHead is the lowest queued seq, QueueNext the seq the next message
	// gets: the queue holds seqs in [QueueHead, QueueNext).
	QueueHead uint64 `json:"queue_head"`
	QueueNext uint64 `json:"queue_next"`
}

// QueueRow is one line of `cairn inspect queue ID`.
type QueueRow struct {
	Seq         uint64    `json:"seq"`
	MsgID       uint64    `json:"msg_id"`
	Topic       string    `json:"topic"`
	QoS         byte      `json:"qos"` // effective QoS toward this subscriber
	Retain      bool      `json:"retain,omitempty"`
	State       string    `json:"state"` // queued, sent or pubrec
	PacketID    uint16    `json:"packet_id,omitempty"`
	Size        int64     `json:"size"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	Preview     string    `json:"preview"`
	Damage      string    `json:"damage,omitempty"`

	inline bool // the body was in the entry
}

// RetainedRow is one line of `cairn inspect retained`.
type RetainedRow struct {
	Topic       string    `json:"topic"`
	QoS         byte      `json:"qos"`
	Size        int       `json:"size"`
	From        string    `json:"from,omitempty"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	Preview     string    `json:"preview"`
	Damage      string    `json:"damage,omitempty"`
}

// EventRow is one decoded event of `cairn inspect events`. Which fields are
// set depends on Kind, as in Event.
type EventRow struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time,omitzero"`
	Kind       string    `json:"kind"`
	Client     string    `json:"client,omitempty"`
	Topic      string    `json:"topic,omitempty"`
	Filter     string    `json:"filter,omitempty"`
	QoS        *byte     `json:"qos,omitempty"`
	Retain     bool      `json:"retain,omitempty"`
	Size       *int      `json:"size,omitempty"`
	MsgID      uint64    `json:"msg_id,omitempty"`
	Targets    []string  `json:"targets,omitempty"` // client#queue-seq
	QSeq       uint64    `json:"queue_seq,omitempty"`
	PacketID   uint16    `json:"packet_id,omitempty"`
	InboundPID uint16    `json:"inbound_packet_id,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	// Publish under a queue limit: the entries dropped to make room
	// (client#queue-seq), or the client whose full queue refused it all.
	Dropped   []string `json:"dropped,omitempty"`
	QueueFull string   `json:"queue_full,omitempty"`
	// Session fields of session-opened / -closed / will-fired.
	Connected *bool   `json:"connected,omitempty"`
	Expiry    *uint32 `json:"expiry,omitempty"`
	Will      bool    `json:"will,omitempty"`
	Damage    string  `json:"damage,omitempty"`
}

// EventFilter selects events for EventRows.
type EventFilter struct {
	From   uint64      // lowest seq (0: the start of the log)
	To     uint64      // highest seq, inclusive (0: the end)
	Kinds  []EventKind // empty: all kinds
	Client string      // non-empty: events by or for this client (publishes fanned out to it included)
}

func (f *EventFilter) match(ev *Event) bool {
	if len(f.Kinds) > 0 {
		ok := false
		for _, k := range f.Kinds {
			ok = ok || ev.Kind == k
		}
		if !ok {
			return false
		}
	}
	if f.Client == "" || ev.Client == f.Client || (ev.Session != nil && ev.Session.ClientID == f.Client) {
		return true
	}
	for _, tg := range ev.Targets {
		if tg.Client == f.Client {
			return true
		}
	}
	return false
}

// ParseEventKind returns the kind named name (as printed by EventKind.String).
func ParseEventKind(name string) (EventKind, error) {
	for k, n := range kindNames {
		if n != "" && n == name {
			return EventKind(k), nil
		}
	}
	var names []string
	for _, n := range kindNames {
		if n != "" {
			names = append(names, n)
		}
	}
	return 0, fmt.Errorf("unknown event type %q (known: %s)", name, strings.Join(names, ", "))
}

// StateName names a queue entry state.
func StateName(st byte) string {
	switch st {
	case StateQueued:
		return "queued"
	case StateSent:
		return "sent"
	case StatePubrec:
		return "pubrec"
	}
	return fmt.Sprintf("state(%d)", st)
}

// nsTime converts stored unix nanoseconds (0: unset) to a UTC time.
func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// previewLen bounds Preview.
const previewLen = 32

// Preview renders the start of a payload for people: the text itself when
// it is printable UTF-8, otherwise "hex:" and the hex of the first bytes. A
// cut payload ends in "…".
func Preview(p []byte) string {
	text := utf8.Valid(p)
	for _, r := range string(p) {
		if !unicode.IsPrint(r) && r != ' ' {
			text = false
			break
		}
	}
	if text {
		if utf8.RuneCount(p) <= previewLen {
			return string(p)
		}
		rs := []rune(string(p))
		return string(rs[:previewLen]) + "…"
	}
	const hexBytes = previewLen / 2
	if len(p) <= hexBytes {
		return "hex:" + hex.EncodeToString(p)
	}
	return "hex:" + hex.EncodeToString(p[:hexBytes]) + "…"
}
