package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// eventFormat is the first byte of every e/<seq> value. It versions the
// encoding of a single logged event independently of the schema version, so
// that a later release can add a format and still read old log entries.
const eventFormat byte = 1

// encoder is a reusable msgpack encoder writing into one buffer. The bytes
// it returns are valid until the next call; Pebble's Batch.Set copies them,
// so the commit path encodes every record without allocating a buffer.
type encoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

func newEncoder() *encoder {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	// Compact ints: sequence numbers and sizes are small, and the default
	// writes every uint64 field in 9 bytes.
	e.enc.UseCompactInts(true)
	return e
}

func (e *encoder) encode(v any) ([]byte, error) {
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}

// encodeEvent returns the e/<seq> value of ev: the format byte then msgpack.
// It calls the hand-written encoder directly (what Encode would dispatch to
// by reflection: the same bytes).
func (e *encoder) encodeEvent(ev *Event) ([]byte, error) {
	e.buf.Reset()
	e.buf.WriteByte(eventFormat)
	if err := ev.EncodeMsgpack(e.enc); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}

// encodeEntry encodes a queue entry, directly like encodeEvent; the entry
// does not escape (a value on the caller's stack stays there).
func (e *encoder) encodeEntry(q *QueueEntry) ([]byte, error) {
	e.buf.Reset()
	if err := q.EncodeMsgpack(e.enc); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}

// decodeEvent decodes an e/<seq> value. Seq is not part of the value.
func decodeEvent(seq uint64, val []byte) (*Event, error) {
	if len(val) == 0 {
		return nil, fmt.Errorf("store: event %d: empty record", seq)
	}
	if val[0] != eventFormat {
		return nil, fmt.Errorf("store: event %d: unknown event format %d", seq, val[0])
	}
	ev := &Event{}
	if err := msgpack.Unmarshal(val[1:], ev); err != nil {
		return nil, fmt.Errorf("store: event %d: decode: %w", seq, err)
	}
	ev.Seq = seq
	return ev, nil
}

// ErrUndecodable is wrapped by every error about a stored record that does
// not decode: the store is damaged (`cairn recover` is the remedy), as
// opposed to failing to read it.
var ErrUndecodable = errors.New("store: undecodable record")

// decode unmarshals a msgpack record into v, naming the key on failure. v
// points to a zero record (every caller's is fresh). Queue entries and
// message bodies, read on every delivery from a stored queue, take the
// hand-written scanners of decode.go when they can.
func decode(key, val []byte, v any) error {
	switch r := v.(type) {
	case *QueueEntry:
		if scanQueueEntry(val, r) {
			return nil
		}
	case *Message:
		if scanMessage(val, r) {
			return nil
		}
	}
	if err := msgpack.Unmarshal(val, v); err != nil {
		return fmt.Errorf("%w %s: %w", ErrUndecodable, KeyString(key), err)
	}
	return nil
}

// QueueInfo is stored as four uvarints: Head, Next, Count, Bytes. It is
// rewritten whenever an event changes the queue, which is cheaper and more
// exact than rebuilding it at Open by scanning every queue entry.
func appendQueueInfo(dst []byte, qi QueueInfo) []byte {
	dst = binary.AppendUvarint(dst, qi.Head)
	dst = binary.AppendUvarint(dst, qi.Next)
	dst = binary.AppendUvarint(dst, uint64(qi.Count))
	return binary.AppendUvarint(dst, uint64(qi.Bytes))
}

var errShortValue = errors.New("truncated value")

func decodeQueueInfo(val []byte) (QueueInfo, error) {
	var v [4]uint64
	for i := range v {
		x, n := binary.Uvarint(val)
		if n <= 0 {
			return QueueInfo{}, errShortValue
		}
		v[i], val = x, val[n:]
	}
	if len(val) != 0 {
		return QueueInfo{}, errors.New("trailing bytes")
	}
	return QueueInfo{Head: v[0], Next: v[1], Count: int(v[2]), Bytes: int64(v[3])}, nil
}

// decodeUvarint decodes a value that is exactly one uvarint (c/ records).
func decodeUvarint(val []byte) (uint64, error) {
	x, n := binary.Uvarint(val)
	if n <= 0 || n != len(val) {
		return 0, errShortValue
	}
	return x, nil
}

// entryRef is what removing a queue entry needs from it: which message it
// references, its size, and whether the body is inline (nothing to release).
type entryRef struct {
	msgID     uint64
	size      int64
	expiresAt int64 // the y/ index key to delete with the entry (0: none)
	inline    bool
	shared    bool // a shared subscription put it there (QueueEntry.Group)
}

// decodeEntryRef reads an entryRef from an encoded QueueEntry without
// decoding (and copying) the inline body: every ack removes an entry, and a
// full decode was the largest cost of the ack path. It understands the
// layout QueueEntry.EncodeMsgpack writes (a map with short string keys and
// integer, bool or integer-array values before the body) and falls back to a
// full decode for anything else.
func decodeEntryRef(key, val []byte) (entryRef, error) {
	if r, ok := scanEntryRef(val); ok {
		return r, nil
	}
	var e QueueEntry
	if err := decode(key, val, &e); err != nil {
		return entryRef{}, err
	}
	return e.ref(), nil
}

// ref is what removing e needs to know about it (e.Body still in place).
func (e *QueueEntry) ref() entryRef {
	return entryRef{msgID: e.MsgID, size: e.Size, expiresAt: e.ExpiresAt, inline: e.Body != nil, shared: e.Group != ""}
}

func scanEntryRef(b []byte) (r entryRef, ok bool) {
	if len(b) == 0 || b[0]&0xf0 != 0x80 {
		return r, false
	}
	n := int(b[0] & 0x0f)
	p := 1
	for i := 0; i < n; i++ {
		if p >= len(b) || b[p]&0xe0 != 0xa0 {
			return r, false
		}
		kl := int(b[p] & 0x1f)
		if p+1+kl > len(b) {
			return r, false
		}
		k := string(b[p+1 : p+1+kl]) // no allocation: compared, not kept
		p += 1 + kl
		if k == "b" {
			r.inline = true
			return r, true // the body is last; nothing after it matters
		}
		switch k {
		case "g": // the shared subscription group
			sc := scanner{b: b, p: p, ok: true}
			g := sc.sized(true)
			if !sc.ok {
				return r, false
			}
			p, r.shared = sc.p, len(g) > 0
			continue
		case "m", "z", "ex":
			v, np, ok := msgpackInt(b, p)
			if !ok {
				return r, false
			}
			switch k {
			case "m":
				r.msgID = v
			case "z":
				r.size = int64(v)
			default:
				r.expiresAt = int64(v)
			}
			p = np
		default:
			np, ok := skipScalarOrIntArray(b, p)
			if !ok {
				return r, false
			}
			p = np
		}
	}
	return r, p == len(b)
}

// msgpackInt decodes a msgpack integer at b[p], as its 64 bits (two's
// complement for a negative one: the caller picks the type).
func msgpackInt(b []byte, p int) (v uint64, next int, ok bool) {
	if p >= len(b) {
		return 0, 0, false
	}
	c := b[p]
	size := 0
	switch {
	case c <= 0x7f:
		return uint64(c), p + 1, true
	case c >= 0xe0:
		return uint64(int64(int8(c))), p + 1, true
	case c == 0xcc || c == 0xd0:
		size = 1
	case c == 0xcd || c == 0xd1:
		size = 2
	case c == 0xce || c == 0xd2:
		size = 4
	case c == 0xcf || c == 0xd3:
		size = 8
	default:
		return 0, 0, false
	}
	if p+1+size > len(b) {
		return 0, 0, false
	}
	var u uint64
	for _, x := range b[p+1 : p+1+size] {
		u = u<<8 | uint64(x)
	}
	if c >= 0xd0 { // signed: sign-extend
		shift := 64 - 8*size
		return uint64(int64(u<<shift) >> shift), p + 1 + size, true
	}
	return u, p + 1 + size, true
}

// skipScalarOrIntArray skips an integer, a bool, nil, or an array of
// integers at b[p].
func skipScalarOrIntArray(b []byte, p int) (int, bool) {
	if p >= len(b) {
		return 0, false
	}
	c := b[p]
	switch {
	case c == 0xc0 || c == 0xc2 || c == 0xc3:
		return p + 1, true
	case c&0xf0 == 0x90 || c == 0xdc:
		n := int(c & 0x0f)
		p++
		if c == 0xdc {
			if p+2 > len(b) {
				return 0, false
			}
			n = int(b[p])<<8 | int(b[p+1])
			p += 2
		}
		for i := 0; i < n; i++ {
			_, np, ok := msgpackInt(b, p)
			if !ok {
				return 0, false
			}
			p = np
		}
		return p, true
	}
	_, np, ok := msgpackInt(b, p)
	return np, ok
}
