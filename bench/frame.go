package bench

import (
	"errors"
	"fmt"
	"io"

	"github.com/cairn-mqtt/cairn/wire"
)

// Framing and the hot-path codec. The load generator handles PUBLISH and the
// four acknowledgements in place, without allocating: frameReader cuts the
// stream into packets whose bytes alias its buffer, and the append functions
// below encode straight into the write buffer. Everything else (CONNECT,
// CONNACK, SUBSCRIBE, SUBACK, ...) goes through the wire codec, which the
// tests check the hot path against byte for byte.

// errFrame is a malformed packet from the broker.
var errFrame = errors.New("bench: malformed packet from the broker")

// frameReader reads whole MQTT packets from a stream into one reusable
// buffer.
type frameReader struct {
	src  io.Reader
	buf  []byte
	r, w int
	// idle, if set, runs before a read that may block (everything buffered
	// has been consumed): the connection flushes its batched acks there.
	idle func() error
}

func newFrameReader(src io.Reader, size int) *frameReader {
	return &frameReader{src: src, buf: make([]byte, size)}
}

// next returns the next packet: its first byte, its body and the whole
// packet. Both slices alias the buffer and are valid until the next call.
func (f *frameReader) next() (hdr byte, body, whole []byte, err error) {
	for {
		if n := f.w - f.r; n >= 2 {
			rl, k, ok := varint(f.buf[f.r+1 : f.w])
			if !ok {
				return 0, nil, nil, errFrame
			}
			if k > 0 {
				total := 1 + k + rl
				if f.w-f.r >= total {
					whole = f.buf[f.r : f.r+total]
					f.r += total
					return whole[0], whole[1+k:], whole, nil
				}
				if total > len(f.buf) {
					nb := make([]byte, max(total, 2*len(f.buf)))
					f.w = copy(nb, f.buf[f.r:f.w])
					f.r = 0
					f.buf = nb
				}
			}
		}
		if err := f.fill(); err != nil {
			return 0, nil, nil, err
		}
	}
}

func (f *frameReader) fill() error {
	if f.r == f.w {
		f.r, f.w = 0, 0
		if f.idle != nil {
			if err := f.idle(); err != nil {
				return err
			}
		}
	} else if f.w == len(f.buf) || len(f.buf)-f.r < 512 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	n, err := f.src.Read(f.buf[f.w:])
	f.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if err == io.EOF && f.r != f.w {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// varint parses an MQTT variable byte integer: the value, its length in
// bytes (0 if b is too short to tell), and false if it is longer than 4.
func varint(b []byte) (v, k int, ok bool) {
	mul := 1
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, true
		}
		v += int(b[i]&0x7F) * mul
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
		mul <<= 7
	}
	return 0, 0, false
}

func appendVarint(dst []byte, v int) []byte {
	for {
		b := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(dst, b)
		}
		dst = append(dst, b|0x80)
	}
}

// appendPublish encodes a PUBLISH with no properties (a 5.0 one gets an
// empty property block). The topic must be valid: it is not checked here.
func appendPublish(dst []byte, v wire.Version, topic string, qos byte, pid uint16, dup bool, payload []byte) []byte {
	hdr := byte(wire.PUBLISH)<<4 | qos<<1
	if dup {
		hdr |= 0x08
	}
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	if v == wire.V5 {
		n++
	}
	dst = append(dst, hdr)
	dst = appendVarint(dst, n)
	dst = append(dst, byte(len(topic)>>8), byte(len(topic)))
	dst = append(dst, topic...)
	if qos > 0 {
		dst = append(dst, byte(pid>>8), byte(pid))
	}
	if v == wire.V5 {
		dst = append(dst, 0)
	}
	return append(dst, payload...)
}

// appendAck encodes a successful PUBACK, PUBREC, PUBREL or PUBCOMP (in 5.0
// too: reason code Success and no properties may be left out).
func appendAck(dst []byte, kind wire.PacketType, pid uint16) []byte {
	hdr := byte(kind) << 4
	if kind == wire.PUBREL {
		hdr |= 0x2
	}
	return append(dst, hdr, 2, byte(pid>>8), byte(pid))
}

// publishView is a PUBLISH decoded in place: Topic and Payload alias the
// packet's bytes.
type publishView struct {
	QoS     byte
	Dup     bool
	Retain  bool
	PID     uint16
	Topic   []byte
	Payload []byte
}

// parsePublish decodes a PUBLISH body in place.
func parsePublish(hdr byte, body []byte, v wire.Version) (publishView, error) {
	p := publishView{QoS: hdr >> 1 & 3, Dup: hdr&0x08 != 0, Retain: hdr&0x01 != 0}
	if p.QoS == 3 || len(body) < 2 {
		return p, errFrame
	}
	tl := int(body[0])<<8 | int(body[1])
	off := 2 + tl
	if len(body) < off {
		return p, errFrame
	}
	p.Topic = body[2:off]
	if p.QoS > 0 {
		if len(body) < off+2 {
			return p, errFrame
		}
		p.PID = uint16(body[off])<<8 | uint16(body[off+1])
		off += 2
	}
	if v == wire.V5 {
		pl, k, ok := varint(body[off:])
		if !ok || k == 0 || len(body) < off+k+pl {
			return p, errFrame
		}
		off += k + pl
	}
	p.Payload = body[off:]
	return p, nil
}

// parseAck decodes the packet id and reason code (0 when absent) of a
// PUBACK, PUBREC, PUBREL or PUBCOMP body.
func parseAck(body []byte) (pid uint16, code byte, err error) {
	if len(body) < 2 {
		return 0, 0, errFrame
	}
	pid = uint16(body[0])<<8 | uint16(body[1])
	if len(body) > 2 {
		code = body[2]
	}
	return pid, code, nil
}

// decodeWhole decodes a complete packet with the wire codec.
func decodeWhole(whole []byte, v wire.Version) (wire.Packet, error) {
	p, _, err := wire.Decode(whole, v)
	if err != nil {
		return nil, fmt.Errorf("decoding %v from the broker: %w", wire.PacketType(whole[0]>>4), err)
	}
	return p, nil
}
