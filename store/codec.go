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
func (e *encoder) encodeEvent(ev *Event) ([]byte, error) {
	e.buf.Reset()
	e.buf.WriteByte(eventFormat)
	if err := e.enc.Encode(ev); err != nil {
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

// decode unmarshals a msgpack record into v, naming the key on failure.
func decode(key, val []byte, v any) error {
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
