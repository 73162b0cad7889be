package store

import "math"

// Hand-written msgpack decoders for the records read on every delivery from
// a stored queue (QueueEntry, with its inline Message body, and Message).
//
// Why: draining an offline queue decodes one entry per message, and
// msgpack's reflection decoder spent a third of the broker's CPU there
// (profiled: field lookup by name in a map, a string allocated per key, a
// value decoder per field). These scanners read the layout encode.go writes
// straight from the value bytes.
//
// Invariants:
//
//  1. Same result. A scanner either fills the record exactly as
//     msgpack.Unmarshal would from the same bytes, or reports false having
//     changed nothing the caller sees; decode then falls back to
//     msgpack.Unmarshal. decode_test.go checks both against the reflection
//     decoder, for every record the encoders write and for arbitrary bytes.
//  2. Narrow. Only the shapes the encoders produce are understood: a fixmap
//     with fixstr keys, integers that fit their field, bin (or nil) for
//     byte slices, str for strings. Anything else — an unknown key, a field
//     written by another encoder, trailing bytes — takes the fallback, so
//     the on-disk format and its tolerance are the reflection decoder's.
//  3. No aliasing. Strings and byte slices are copied: the value belongs to
//     a Pebble iterator and is reused after the next step.

// scanner reads msgpack from b at p; ok turns false at the first surprise.
type scanner struct {
	b  []byte
	p  int
	ok bool
}

func (s *scanner) fail() { s.ok = false }

// mapLen reads a fixmap header.
func (s *scanner) mapLen() int {
	if !s.ok || s.p >= len(s.b) || s.b[s.p]&0xf0 != 0x80 {
		s.fail()
		return 0
	}
	n := int(s.b[s.p] & 0x0f)
	s.p++
	return n
}

// key reads a fixstr map key, returned as a view into b (compared, never
// kept).
func (s *scanner) key() []byte {
	if !s.ok || s.p >= len(s.b) || s.b[s.p]&0xe0 != 0xa0 {
		s.fail()
		return nil
	}
	n := int(s.b[s.p] & 0x1f)
	if s.p+1+n > len(s.b) {
		s.fail()
		return nil
	}
	k := s.b[s.p+1 : s.p+1+n]
	s.p += 1 + n
	return k
}

// integer reads a msgpack integer as its 64 bits; signed says whether it
// was written as a signed type (a negative value is then two's complement).
func (s *scanner) integer() (v uint64, signed bool) {
	if !s.ok {
		return 0, false
	}
	v, np, ok := msgpackInt(s.b, s.p)
	if !ok {
		s.fail()
		return 0, false
	}
	signed = s.b[s.p] >= 0xd0 // int8..int64 and negative fixints
	s.p = np
	return v, signed
}

// uint reads a non-negative integer no larger than max.
func (s *scanner) uint(max uint64) uint64 {
	v, signed := s.integer()
	if (signed && int64(v) < 0) || v > max {
		s.fail()
		return 0
	}
	return v
}

// int reads a signed 64-bit integer. A uint64 above MaxInt64 does not fit.
func (s *scanner) int() int64 {
	v, signed := s.integer()
	if !signed && v > math.MaxInt64 {
		s.fail()
		return 0
	}
	return int64(v)
}

// nil consumes a msgpack nil, reporting whether there was one.
func (s *scanner) nil() bool {
	if s.ok && s.p < len(s.b) && s.b[s.p] == 0xc0 {
		s.p++
		return true
	}
	return false
}

func (s *scanner) bool() bool {
	if !s.ok || s.p >= len(s.b) || (s.b[s.p] != 0xc2 && s.b[s.p] != 0xc3) {
		s.fail()
		return false
	}
	s.p++
	return s.b[s.p-1] == 0xc3
}

// sized reads the length of a str (str: true) or bin value whose first
// byte is at p, and returns the bytes of the value.
func (s *scanner) sized(str bool) []byte {
	if !s.ok || s.p >= len(s.b) {
		s.fail()
		return nil
	}
	c := s.b[s.p]
	var n, hdr int
	switch {
	case str && c&0xe0 == 0xa0:
		n, hdr = int(c&0x1f), 1
	case (str && c == 0xd9) || (!str && c == 0xc4):
		hdr = 2
	case (str && c == 0xda) || (!str && c == 0xc5):
		hdr = 3
	case (str && c == 0xdb) || (!str && c == 0xc6):
		hdr = 5
	default:
		s.fail()
		return nil
	}
	if s.p+hdr > len(s.b) {
		s.fail()
		return nil
	}
	for _, x := range s.b[s.p+1 : s.p+hdr] {
		n = n<<8 | int(x)
	}
	if n < 0 || n > len(s.b)-s.p-hdr {
		s.fail()
		return nil
	}
	v := s.b[s.p+hdr : s.p+hdr+n]
	s.p += hdr + n
	return v
}

func (s *scanner) str() string { return string(s.sized(true)) }

// bytes reads a bin value as a fresh slice (empty, not nil, for length 0,
// as the reflection decoder gives), or nil for msgpack nil.
func (s *scanner) bytes() []byte {
	if s.nil() {
		return nil
	}
	v := s.sized(false)
	if !s.ok {
		return nil
	}
	return append(make([]byte, 0, len(v)), v...)
}

// uint32s reads a fixarray of integers (or nil).
func (s *scanner) uint32s() []uint32 {
	if s.nil() {
		return nil
	}
	if !s.ok || s.p >= len(s.b) || s.b[s.p]&0xf0 != 0x90 {
		s.fail()
		return nil
	}
	n := int(s.b[s.p] & 0x0f)
	s.p++
	v := make([]uint32, n)
	for i := range v {
		v[i] = uint32(s.uint(math.MaxUint32))
	}
	return v
}

// scanMessage fills m from its encoding (see the invariants above).
func scanMessage(b []byte, m *Message) bool {
	s := scanner{b: b, ok: true}
	var out Message
	if !s.message(&out) || s.p != len(b) {
		return false
	}
	*m = out
	return true
}

// message reads a Message map at p into a zero m.
func (s *scanner) message(m *Message) bool {
	n := s.mapLen()
	for i := 0; i < n && s.ok; i++ {
		switch k := s.key(); string(k) {
		case "t":
			m.Topic = s.str()
		case "p":
			m.Payload = s.bytes()
		case "q":
			m.QoS = byte(s.uint(math.MaxUint8))
		case "r":
			m.Retain = s.bool()
		case "x":
			m.Props = s.bytes()
		case "f":
			m.From = s.str()
		case "at":
			m.PublishedAt = s.int()
		case "ex":
			m.ExpiresAt = s.int()
		case "ru":
			m.RetainUntil = s.int()
		default:
			s.fail()
		}
	}
	return s.ok
}

// scanQueueEntry fills q from its encoding (see the invariants above).
func scanQueueEntry(b []byte, q *QueueEntry) bool {
	s := scanner{b: b, ok: true}
	var out QueueEntry
	n := s.mapLen()
	for i := 0; i < n && s.ok; i++ {
		switch k := s.key(); string(k) {
		case "m":
			out.MsgID = s.uint(math.MaxUint64)
		case "q":
			out.QoS = byte(s.uint(math.MaxUint8))
		case "r":
			out.Retain = s.bool()
		case "s":
			out.SubIDs = s.uint32s()
		case "st":
			out.State = byte(s.uint(math.MaxUint8))
		case "p":
			out.PacketID = uint16(s.uint(math.MaxUint16))
		case "z":
			out.Size = s.int()
		case "ex":
			out.ExpiresAt = s.int()
		case "g":
			out.Group = s.str()
		case "b":
			switch {
			case out.Body != nil: // a second body: the reflection decoder would merge them
				s.fail()
			case !s.nil():
				out.Body = &Message{}
				s.message(out.Body)
			}
		default:
			s.fail()
		}
	}
	if !s.ok || s.p != len(b) {
		return false
	}
	*q = out
	return true
}
