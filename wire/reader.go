package wire

// Stream and slice decoding: Reader (packets from an io.Reader) and Decode
// (one packet from a byte slice).
//
// Invariants:
//   - The fixed header (type, flags, remaining length of at most 4 bytes) is
//     checked, and the packet size compared with the maximum, before any body
//     byte beyond those already buffered is read and before anything is
//     allocated for the body.
//   - A packet that fits in the read buffer is decoded in place and its
//     fields are copied out. A larger packet is read into a slice of its own,
//     grown as bytes arrive (so a peer announcing a large packet and sending
//     little costs little memory), and the decoded packet may alias that
//     slice. Either way the result never aliases the read buffer.
//   - A packet is consumed only when all of it is available, or, for a large
//     packet, once its own slice holds what has arrived: a read error in the
//     middle of a packet (e.g. a deadline) leaves the Reader able to resume.
//   - Read errors are returned as they come and are not sticky. io.EOF is
//     returned only between packets; a stream ending inside a packet gives
//     io.ErrUnexpectedEOF.
//   - In 5.0 (the version given, or the level of a CONNECT) a remaining length
//     that is not minimally encoded is Malformed Packet; 3.x accepts it.

import (
	"io"
	"strconv"
	"sync"
)

const (
	// DefaultReadBufferSize is the read buffer size of NewReader.
	DefaultReadBufferSize = 4096
	// bigInitial caps the first allocation for a packet larger than the
	// read buffer; the slice then doubles as bytes arrive.
	bigInitial = 256 << 10
	// maxEmptyReads is how many (0, nil) reads in a row end a read.
	maxEmptyReads = 100
)

// Reader decodes MQTT packets from a stream, reusing an internal buffer.
// Decoded packets never alias it. A Reader is not safe for concurrent use.
type Reader struct {
	src  io.Reader
	buf  []byte // read buffer; buf[r:w] is buffered and unread; nil after ReleaseBuffer
	size int    // the read buffer's size
	r, w int
	max  uint32

	// A packet larger than buf, being read into its own slice.
	big    []byte // bytes of its body received so far
	bigLen int    // its remaining length
	bigHdr byte   // its first byte
	bigK   int    // the number of bytes of its remaining length

	// lastTopic is the topic name of the last PUBLISH decoded: a stream
	// publishing to one topic (the common case) reuses that string instead
	// of allocating one per packet. Strings are immutable, so sharing it
	// is safe and, unlike aliasing the body, pins no payload in memory.
	lastTopic string
}

// NewReader returns a Reader with a DefaultReadBufferSize buffer that rejects
// packets larger than maxPacketSize bytes (fixed header included). 0 means
// the protocol maximum, MaxPacketSize.
func NewReader(r io.Reader, maxPacketSize uint32) *Reader {
	return NewReaderSize(r, maxPacketSize, DefaultReadBufferSize)
}

// NewReaderSize is NewReader with a read buffer of size bytes (at least 16).
// Packets up to that size are decoded from the buffer; larger ones are read
// into a slice of their own.
func NewReaderSize(r io.Reader, maxPacketSize uint32, size int) *Reader {
	size = max(size, 16)
	return &Reader{src: r, size: size, max: maxPacketSize} // the buffer comes with the first read
}

// readBuffers recycles the DefaultReadBufferSize buffers of Readers that let
// theirs go (ReleaseBuffer).
var readBuffers = sync.Pool{New: func() any { b := make([]byte, DefaultReadBufferSize); return &b }}

// ReleaseBuffer lets go of the read buffer if nothing is buffered (the
// connection is idle: thousands of idle connections need not hold a buffer
// each); the next read takes one again. It does nothing otherwise.
func (r *Reader) ReleaseBuffer() {
	if r.buf == nil || r.r != r.w || r.big != nil {
		return
	}
	if len(r.buf) == DefaultReadBufferSize {
		b := r.buf
		readBuffers.Put(&b)
	}
	r.buf, r.r, r.w = nil, 0, 0
}

// takeBuffer gives the Reader a read buffer again after ReleaseBuffer.
func (r *Reader) takeBuffer() {
	if r.size == DefaultReadBufferSize {
		r.buf = *readBuffers.Get().(*[]byte)
		return
	}
	r.buf = make([]byte, r.size)
}

// SetMaxPacketSize changes the maximum packet size (fixed header included)
// for the following packets; 0 means MaxPacketSize.
func (r *Reader) SetMaxPacketSize(n uint32) { r.max = n }

// Buffered returns the number of bytes read from the stream but not yet
// consumed by a packet.
func (r *Reader) Buffered() int { return r.w - r.r + len(r.big) }

// ReadPacket reads and decodes one packet. A CONNECT is decoded according to
// its own protocol name and level whatever v is; every other packet is
// decoded as version v (0, "not yet known", decodes as V311).
//
// Errors: an *Error for a malformed or invalid packet (Code says which 5.0
// reason code applies; a 3.x connection is simply closed), among them
// PacketTooLarge when the fixed header announces more than the maximum
// packet size, in which case the body is not read; io.EOF when the stream
// ends cleanly between packets; io.ErrUnexpectedEOF when it ends inside one;
// or the error of the underlying reader. After an *Error the stream position
// is unspecified and the connection should be closed.
func (r *Reader) ReadPacket(v Version) (Packet, error) {
	v, ok := normVersion(v)
	if !ok {
		return nil, versionErr(v)
	}
	if r.big != nil {
		return r.readBig(v)
	}
	var (
		hdr byte
		rl  uint32
		k   int // bytes of the remaining length
	)
	for {
		if r.w-r.r >= 2 {
			rl, k = parseVarint(r.buf[r.r+1 : r.w])
			if k < 0 {
				return nil, malformed(PacketType(r.buf[r.r]>>4), "remaining length longer than 4 bytes")
			}
			if k > 0 {
				hdr = r.buf[r.r]
				break
			}
		}
		if err := r.fill(); err != nil {
			if err == io.EOF && r.r != r.w {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	if err := checkHeader(hdr, v); err != nil {
		return nil, err
	}
	n := 1 + k
	total := n + int(rl)
	if limit := r.max; limit != 0 && uint64(total) > uint64(limit) {
		e := &Error{Code: PacketTooLarge, Packet: PacketType(hdr >> 4),
			Msg: "packet of " + strconv.Itoa(total) + " bytes exceeds the maximum of " + strconv.Itoa(int(limit))}
		if e.Packet == CONNECT { // the version, if it came with the header (no further read)
			e.Version = connectVersion(r.buf[r.r+n : r.w])
		}
		return nil, e
	}
	if total > len(r.buf) {
		return r.startBig(hdr, int(rl), k, v)
	}
	if r.r+total > len(r.buf) {
		r.compact()
	}
	for r.w-r.r < total {
		if err := r.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	body := r.buf[r.r+n : r.r+total]
	r.r += total
	return decodePacket(hdr, body, k, v, false, &r.lastTopic)
}

// startBig consumes the header of a packet larger than the buffer and moves
// its buffered body bytes into a slice of its own.
func (r *Reader) startBig(hdr byte, rl, k int, v Version) (Packet, error) {
	r.r += 1 + k
	avail := min(r.w-r.r, rl)
	r.big = make([]byte, avail, min(rl, max(bigInitial, avail)))
	copy(r.big, r.buf[r.r:r.r+avail])
	r.r += avail
	r.bigLen, r.bigHdr, r.bigK = rl, hdr, k
	return r.readBig(v)
}

// readBig reads the rest of the large packet in r.big and decodes it.
func (r *Reader) readBig(v Version) (Packet, error) {
	empty := 0
	for len(r.big) < r.bigLen {
		if len(r.big) == cap(r.big) {
			nb := make([]byte, len(r.big), min(2*cap(r.big), r.bigLen))
			copy(nb, r.big)
			r.big = nb
		}
		n, err := r.src.Read(r.big[len(r.big):cap(r.big)])
		r.big = r.big[:len(r.big)+n]
		switch {
		case n > 0:
			empty = 0
		case err == io.EOF:
			return nil, io.ErrUnexpectedEOF
		case err != nil:
			return nil, err
		default:
			if empty++; empty >= maxEmptyReads {
				return nil, io.ErrNoProgress
			}
		}
	}
	body := r.big
	r.big = nil
	return decodePacket(r.bigHdr, body, r.bigK, v, true, &r.lastTopic)
}

// fill reads at least one byte into the buffer, making room first.
func (r *Reader) fill() error {
	if r.buf == nil {
		r.takeBuffer()
	}
	if r.r == r.w {
		r.r, r.w = 0, 0
	} else if r.w == len(r.buf) {
		r.compact()
	}
	for range maxEmptyReads {
		n, err := r.src.Read(r.buf[r.w:])
		r.w += n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// compact moves the unread bytes to the start of the buffer.
func (r *Reader) compact() {
	r.w = copy(r.buf, r.buf[r.r:r.w])
	r.r = 0
}

// Decode decodes the packet at the start of b (see ReadPacket for v and the
// errors) and returns it with its length in bytes. It returns io.EOF if b is
// empty and io.ErrUnexpectedEOF if b holds only part of a packet. The packet
// does not alias b. No maximum size applies.
func Decode(b []byte, v Version) (Packet, int, error) {
	v, ok := normVersion(v)
	if !ok {
		return nil, 0, versionErr(v)
	}
	if len(b) == 0 {
		return nil, 0, io.EOF
	}
	rl, k := parseVarint(b[1:])
	if k < 0 {
		return nil, 0, malformed(PacketType(b[0]>>4), "remaining length longer than 4 bytes")
	}
	if k == 0 {
		return nil, 0, io.ErrUnexpectedEOF
	}
	if err := checkHeader(b[0], v); err != nil {
		return nil, 0, err
	}
	total := 1 + k + int(rl)
	if len(b) < total {
		return nil, 0, io.ErrUnexpectedEOF
	}
	p, err := decodePacket(b[0], b[1+k:total], k, v, false, nil)
	if err != nil {
		return nil, 0, err
	}
	return p, total, nil
}

// decodePacket decodes a body and applies the 5.0 minimal remaining length
// rule (k is the number of bytes the remaining length was encoded in).
// lastTopic, if not nil, is the topic cache of decodeBody.
func decodePacket(hdr byte, body []byte, k int, v Version, own bool, lastTopic *string) (Packet, error) {
	p, err := decodeBody(hdr, body, v, own, lastTopic)
	if err != nil {
		return nil, err
	}
	if k != varintLen(uint32(len(body))) {
		if c, ok := p.(*Connect); ok {
			v = c.Version
		}
		if v == V5 {
			return nil, malformed(p.Type(), "remaining length not minimally encoded")
		}
	}
	return p, nil
}
