package store

import "github.com/vmihailenco/msgpack/v5"

// Hand-written msgpack encoders for the records written on every commit
// (Event, Message, Target, QueueEntry).
//
// Why: msgpack's reflection encoder boxes every omitempty field into an
// interface to test it for emptiness — a dozen allocations per Event — and
// that was a third of the commit path's CPU. These methods write exactly the
// bytes the reflection encoder writes with UseCompactInts (same map layout,
// keys, field order and omitempty rules), so decoding stays the ordinary
// struct-tag decoder and the format is unchanged. encode_test.go checks the
// byte-for-byte equality against the reflection encoder for random values;
// a field added to one of these types must be added here too (that test
// fails until it is).

// mw writes a msgpack map, keeping the first error.
type mw struct {
	e   *msgpack.Encoder
	err error
}

func (w *mw) mapLen(n int) {
	if w.err == nil {
		w.err = w.e.EncodeMapLen(n)
	}
}

func (w *mw) key(k string) {
	if w.err == nil {
		w.err = w.e.EncodeString(k)
	}
}

func (w *mw) str(k, v string) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeString(v)
	}
}

func (w *mw) uint(k string, v uint64) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeUint(v)
	}
}

func (w *mw) int(k string, v int64) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeInt(v)
	}
}

func (w *mw) bool(k string, v bool) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeBool(v)
	}
}

func (w *mw) bytes(k string, v []byte) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeBytes(v)
	}
}

func (w *mw) uint32s(k string, v []uint32) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeArrayLen(len(v))
	}
	for _, x := range v {
		if w.err == nil {
			w.err = w.e.EncodeUint(uint64(x))
		}
	}
}

func (w *mw) value(k string, v any) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.Encode(v)
	}
}

func count(conds ...bool) int {
	n := 0
	for _, c := range conds {
		if c {
			n++
		}
	}
	return n
}

// EncodeMsgpack implements msgpack.CustomEncoder (see the top of encode.go).
func (ev *Event) EncodeMsgpack(e *msgpack.Encoder) error {
	w := mw{e: e}
	w.mapLen(2 + count(ev.Client != "", ev.Session != nil, ev.Filter != "", ev.Sub != nil, ev.MsgID != 0,
		ev.Msg != nil, len(ev.Targets) > 0, ev.QSeq != 0, ev.PacketID != 0, ev.InboundPID != 0,
		ev.Topic != "", ev.Reason != "", ev.Limit != nil, len(ev.Dropped) > 0, ev.QueueFull != "", len(ev.QSeqs) > 0))
	w.uint("k", uint64(ev.Kind))
	w.int("t", ev.Time)
	if ev.Client != "" {
		w.str("c", ev.Client)
	}
	if ev.Session != nil {
		w.value("s", ev.Session)
	}
	if ev.Filter != "" {
		w.str("f", ev.Filter)
	}
	if ev.Sub != nil {
		w.value("u", ev.Sub)
	}
	if ev.MsgID != 0 {
		w.uint("m", ev.MsgID)
	}
	if ev.Msg != nil {
		w.key("b")
		if w.err == nil {
			w.err = ev.Msg.EncodeMsgpack(e)
		}
	}
	if len(ev.Targets) > 0 {
		w.key("g")
		if w.err == nil {
			w.err = e.EncodeArrayLen(len(ev.Targets))
		}
		for i := range ev.Targets {
			if w.err == nil {
				w.err = ev.Targets[i].EncodeMsgpack(e)
			}
		}
	}
	if ev.QSeq != 0 {
		w.uint("q", ev.QSeq)
	}
	if ev.PacketID != 0 {
		w.uint("p", uint64(ev.PacketID))
	}
	if ev.InboundPID != 0 {
		w.uint("i", uint64(ev.InboundPID))
	}
	if ev.Topic != "" {
		w.str("o", ev.Topic)
	}
	if ev.Reason != "" {
		w.str("r", ev.Reason)
	}
	if ev.Limit != nil {
		w.value("l", ev.Limit)
	}
	if len(ev.Dropped) > 0 {
		w.value("d", ev.Dropped)
	}
	if ev.QueueFull != "" {
		w.str("qf", ev.QueueFull)
	}
	if len(ev.QSeqs) > 0 {
		w.key("qs")
		if w.err == nil {
			w.err = e.EncodeArrayLen(len(ev.QSeqs))
		}
		for _, q := range ev.QSeqs {
			if w.err == nil {
				w.err = e.EncodeUint(q)
			}
		}
	}
	return w.err
}

// EncodeMsgpack implements msgpack.CustomEncoder (see the top of encode.go).
func (m *Message) EncodeMsgpack(e *msgpack.Encoder) error {
	w := mw{e: e}
	w.mapLen(4 + count(m.Retain, len(m.Props) > 0, m.From != "", m.ExpiresAt != 0, m.RetainUntil != 0))
	w.str("t", m.Topic)
	w.bytes("p", m.Payload)
	w.uint("q", uint64(m.QoS))
	if m.Retain {
		w.bool("r", true)
	}
	if len(m.Props) > 0 {
		w.bytes("x", m.Props)
	}
	if m.From != "" {
		w.str("f", m.From)
	}
	w.int("at", m.PublishedAt)
	if m.ExpiresAt != 0 {
		w.int("ex", m.ExpiresAt)
	}
	if m.RetainUntil != 0 {
		w.int("ru", m.RetainUntil)
	}
	return w.err
}

// EncodeMsgpack implements msgpack.CustomEncoder (see the top of encode.go).
func (t *Target) EncodeMsgpack(e *msgpack.Encoder) error {
	w := mw{e: e}
	w.mapLen(3 + count(t.Retain, len(t.SubIDs) > 0, t.SentBelow != 0, t.Group != ""))
	w.str("c", t.Client)
	w.uint("q", uint64(t.QoS))
	if t.Retain {
		w.bool("r", true)
	}
	if len(t.SubIDs) > 0 {
		w.uint32s("s", t.SubIDs)
	}
	w.uint("n", t.Seq)
	if t.SentBelow != 0 {
		w.uint("sb", t.SentBelow)
	}
	if t.Group != "" {
		w.str("g", t.Group)
	}
	return w.err
}

// EncodeMsgpack implements msgpack.CustomEncoder (see the top of encode.go).
func (q *QueueEntry) EncodeMsgpack(e *msgpack.Encoder) error {
	w := mw{e: e}
	w.mapLen(2 + count(q.Retain, len(q.SubIDs) > 0, q.State != 0, q.PacketID != 0, q.Size != 0, q.ExpiresAt != 0, q.Group != "", q.Body != nil))
	w.uint("m", q.MsgID)
	w.uint("q", uint64(q.QoS))
	if q.Retain {
		w.bool("r", true)
	}
	if len(q.SubIDs) > 0 {
		w.uint32s("s", q.SubIDs)
	}
	if q.State != 0 {
		w.uint("st", uint64(q.State))
	}
	if q.PacketID != 0 {
		w.uint("p", uint64(q.PacketID))
	}
	if q.Size != 0 {
		w.int("z", q.Size)
	}
	if q.ExpiresAt != 0 {
		w.int("ex", q.ExpiresAt)
	}
	if q.Group != "" {
		w.str("g", q.Group)
	}
	if q.Body != nil {
		w.key("b")
		if w.err == nil {
			w.err = q.Body.EncodeMsgpack(e)
		}
	}
	return w.err
}
