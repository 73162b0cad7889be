package wiretest

// A tiny packet assembler for the golden and malformed tables. It is
// deliberately independent of package wire's encoder: every byte of a table
// entry is spelled out by these helpers, so a bug in wire cannot hide in the
// tables.

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	if out == nil {
		out = []byte{}
	}
	return out
}

// bs returns its arguments as a byte slice.
func bs(b ...byte) []byte { return b }

// vbi encodes a Variable Byte Integer.
func vbi(v uint32) []byte {
	var out []byte
	for {
		c := byte(v % 128)
		v /= 128
		if v > 0 {
			c |= 0x80
		}
		out = append(out, c)
		if v == 0 {
			return out
		}
	}
}

// pkt builds a packet: the first byte, the remaining length, the body.
func pkt(first byte, body ...[]byte) []byte {
	b := cat(body...)
	return cat([]byte{first}, vbi(uint32(len(b))), b)
}

func u16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }
func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// str is a length-prefixed UTF-8 string (or binary data).
func str(s string) []byte { return cat(u16(uint16(len(s))), []byte(s)) }

// props is a property block: its length, then the properties.
func props(ps ...[]byte) []byte {
	b := cat(ps...)
	return cat(vbi(uint32(len(b))), b)
}

// Single properties.
func pByte(id, v byte) []byte       { return []byte{id, v} }
func pU16(id byte, v uint16) []byte { return cat([]byte{id}, u16(v)) }
func pU32(id byte, v uint32) []byte { return cat([]byte{id}, u32(v)) }
func pVBI(id byte, v uint32) []byte { return cat([]byte{id}, vbi(v)) }
func pStr(id byte, s string) []byte { return cat([]byte{id}, str(s)) }
func pUser(k, v string) []byte      { return cat([]byte{0x26}, str(k), str(v)) }
func ptr[T any](v T) *T             { return &v }
