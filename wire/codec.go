package wire

// Primitive field codec: two- and four-byte integers, Variable Byte
// Integers, length-prefixed UTF-8 strings and binary data, for both
// directions.
//
// Invariants:
//   - A dec never reads outside its slice and never panics: every read checks
//     the bytes left first and reports truncation as a MalformedPacket *Error.
//   - Decoded strings are always copies. Decoded byte slices are copies too,
//     unless the dec owns its slice (own: a buffer allocated for this one
//     packet), in which case they alias it through a full slice expression
//     (b[i:j:j]) so that appending to one field can never overwrite another.
//   - A string is accepted only if it is well-formed UTF-8 (which excludes the
//     surrogates U+D800..U+DFFF and overlong forms) and contains no U+0000.
//   - A Variable Byte Integer is at most 4 bytes (max 268,435,455); dec.varint
//     also rejects non-minimal encodings (MQTT-1.5.5-1), since it is used only
//     inside 5.0 packets.

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"
)

const (
	// MaxRemainingLength is the largest remaining length a fixed header can
	// carry (and the largest Variable Byte Integer).
	MaxRemainingLength = 268_435_455
	// MaxPacketSize is the largest possible packet: a 5-byte fixed header
	// plus MaxRemainingLength.
	MaxPacketSize = MaxRemainingLength + 5
	// maxField is the longest string or binary field (2-byte length prefix).
	maxField = 65535
)

// varintLen returns the number of bytes of the Variable Byte Integer v.
func varintLen(v uint32) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

// appendVarint appends v (at most MaxRemainingLength) as a Variable Byte Integer.
func appendVarint(dst []byte, v uint32) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// parseVarint decodes a Variable Byte Integer at the start of b. It returns
// n > 0 on success, n == 0 when b ends before the integer does, and n < 0
// when a fifth byte would be needed (malformed).
func parseVarint(b []byte) (v uint32, n int) {
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0
		}
		v |= uint32(b[i]&0x7F) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}

// validUTF8 reports whether b is well-formed UTF-8 without U+0000.
func validUTF8(b []byte) bool {
	for i, c := range b {
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			rest := b[i:]
			// A multi-byte sequence never contains a 0 byte, so only a
			// literal U+0000 can.
			for _, c := range rest {
				if c == 0 {
					return false
				}
			}
			return utf8.Valid(rest)
		}
	}
	return true
}

// validString reports whether s is well-formed UTF-8 without U+0000.
func validString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			return strings.IndexByte(s[i:], 0) < 0 && utf8.ValidString(s[i:])
		}
	}
	return true
}

// dec reads the fields of one packet body (or property block).
type dec struct {
	b   []byte
	off int
	t   PacketType // for error reports
	own bool       // b belongs to this packet alone; byte fields may alias it
	// level is the version a CONNECT announced, once read (Error.Version).
	level Version
}

func (d *dec) left() int { return len(d.b) - d.off }

func (d *dec) short(what string) error {
	return malformed(d.t, "truncated %s at offset %d", what, d.off)
}

func (d *dec) u8(what string) (byte, error) {
	if d.off >= len(d.b) {
		return 0, d.short(what)
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

func (d *dec) u16(what string) (uint16, error) {
	if d.left() < 2 {
		return 0, d.short(what)
	}
	v := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v, nil
}

func (d *dec) u32(what string) (uint32, error) {
	if d.left() < 4 {
		return 0, d.short(what)
	}
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v, nil
}

// varint reads a minimally encoded Variable Byte Integer.
func (d *dec) varint(what string) (uint32, error) {
	v, n := parseVarint(d.b[d.off:])
	switch {
	case n == 0:
		return 0, d.short(what)
	case n < 0:
		return 0, malformed(d.t, "%s: variable byte integer longer than 4 bytes", what)
	case n != varintLen(v):
		return 0, malformed(d.t, "%s: variable byte integer not minimally encoded", what)
	}
	d.off += n
	return v, nil
}

// field returns the next length-prefixed field, aliasing d.b.
func (d *dec) field(what string) ([]byte, error) {
	n, err := d.u16(what)
	if err != nil {
		return nil, err
	}
	if d.left() < int(n) {
		return nil, d.short(what)
	}
	f := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return f, nil
}

// rawStr returns the next UTF-8 string field, validated but aliasing d.b.
func (d *dec) rawStr(what string) ([]byte, error) {
	f, err := d.field(what)
	if err != nil {
		return nil, err
	}
	if !validUTF8(f) {
		return nil, malformed(d.t, "%s: invalid UTF-8 or U+0000", what)
	}
	return f, nil
}

// str returns the next UTF-8 string field as a new string.
func (d *dec) str(what string) (string, error) {
	f, err := d.rawStr(what)
	return string(f), err
}

// bin returns the next binary data field: nil when empty unless keepEmpty.
func (d *dec) bin(what string, keepEmpty bool) ([]byte, error) {
	f, err := d.field(what)
	if err != nil {
		return nil, err
	}
	return d.bytes(f, keepEmpty), nil
}

// rest consumes and returns everything left (the PUBLISH payload).
func (d *dec) rest() []byte {
	f := d.b[d.off:len(d.b):len(d.b)]
	d.off = len(d.b)
	return d.bytes(f, false)
}

// bytes returns f as a caller-owned slice: f itself when d owns its buffer,
// else a copy. Empty f gives nil, or a non-nil empty slice if keepEmpty.
func (d *dec) bytes(f []byte, keepEmpty bool) []byte {
	if len(f) == 0 {
		if keepEmpty {
			return []byte{}
		}
		return nil
	}
	if d.own {
		return f
	}
	c := make([]byte, len(f))
	copy(c, f)
	return c
}

// end reports trailing bytes as malformed.
func (d *dec) end() error {
	if d.off != len(d.b) {
		return malformed(d.t, "%d unexpected trailing bytes", len(d.b)-d.off)
	}
	return nil
}

// Encoding helpers. They assume the value was validated (lengths fit).

func appendU16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendStr(dst []byte, s string) []byte {
	dst = appendU16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBin(dst []byte, b []byte) []byte {
	dst = appendU16(dst, uint16(len(b)))
	return append(dst, b...)
}

// checkStr validates a string field for encoding.
func checkStr(t PacketType, what, s string) error {
	if len(s) > maxField {
		return malformed(t, "%s: %d bytes exceeds 65535", what, len(s))
	}
	if !validString(s) {
		return malformed(t, "%s: invalid UTF-8 or U+0000", what)
	}
	return nil
}

// checkBin validates a binary field for encoding.
func checkBin(t PacketType, what string, b []byte) error {
	if len(b) > maxField {
		return malformed(t, "%s: %d bytes exceeds 65535", what, len(b))
	}
	return nil
}
