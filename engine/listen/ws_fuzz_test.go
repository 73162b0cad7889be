package listen

// Fuzz targets for the frame filter and the packet sizer, each checked
// against a small reference scan of the whole input written here, and a
// hostile-client test of a real listener (bounded held bytes, no goroutine
// left after Close).
//
//	go test ./engine/listen/ -run '^$' -fuzz '^FuzzFrameFilter$' -fuzztime 3m -fuzzminimizetime 10s
//	go test ./engine/listen/ -run '^$' -fuzz '^FuzzPacketSizer$' -fuzztime 3m -fuzzminimizetime 10s
//
// (The default minimization, 60 s per new input, stalls a 3-minute run.)
//	go test ./engine/listen/ -run 'FuzzFrameFilter|FuzzPacketSizer|TestWSHostileClients'

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/cairn-mqtt/cairn/wire"
)

// fzMask is the mask key of the seed frames (another than testMask).
var fzMask = [4]byte{0xa1, 0x07, 0x5e, 0xc3}

// fzFrame builds a masked client frame whose length uses the encoding
// lenCode says: 0 the shortest, 126 or 127 that one (also for small
// lengths, which RFC 6455 calls non-minimal but the filter must follow).
func fzFrame(b0 byte, lenCode int, payload []byte) []byte {
	n := len(payload)
	if lenCode == 0 {
		switch {
		case n < 126:
		case n < 1<<16:
			lenCode = 126
		default:
			lenCode = 127
		}
	}
	var h []byte
	switch lenCode {
	case 126:
		h = binary.BigEndian.AppendUint16([]byte{b0, 0x80 | 126}, uint16(n))
	case 127:
		h = binary.BigEndian.AppendUint64([]byte{b0, 0x80 | 127}, uint64(n))
	default:
		h = []byte{b0, 0x80 | byte(n)}
	}
	h = append(h, fzMask[:]...)
	for i, c := range payload {
		h = append(h, c^fzMask[i%4])
	}
	return h
}

// fzHeader64 is the header (with mask key) of a masked frame announcing a
// payload of n bytes in the 64-bit length.
func fzHeader64(b0 byte, n uint64) []byte {
	return append(binary.BigEndian.AppendUint64([]byte{b0, 0x80 | 127}, n), fzMask[:]...)
}

// refFrames is the reference model of the frame filter: it parses the
// whole input at once and returns how many bytes the filter hands up
// before the input ends (pass), the close status of the violation it must
// report (0: none), and the spans of data frame payload in input[:pass].
//
// The model: frames follow each other from the first byte. An unmasked
// frame (known from its second byte), a 64-bit length with the top bit set
// (known once the 8 length bytes are there) and a complete FIN close frame
// of at most 125 bytes whose reason (after the 2-byte code) is not UTF-8
// are violations: the bytes before that frame pass, nothing after. After a
// valid such close frame everything passes. A header or a close frame cut
// off by the end of the input is never complete: the filter holds it back,
// so those trailing bytes do not pass (and there is no violation).
func refFrames(in []byte) (pass int, code websocket.StatusCode, spans [][2]int) {
	pos := 0
	for {
		rest := in[pos:]
		if len(rest) == 0 {
			return len(in), 0, spans
		}
		if len(rest) < 2 {
			return pos, 0, spans
		}
		if rest[1]&0x80 == 0 {
			return pos, websocket.StatusProtocolError, spans
		}
		var plen uint64
		ext := 0
		switch l7 := rest[1] & 0x7f; l7 {
		case 126:
			ext = 2
		case 127:
			ext = 8
		default:
			plen = uint64(l7)
		}
		if len(rest) < 2+ext {
			return pos, 0, spans
		}
		for _, c := range rest[2 : 2+ext] {
			plen = plen<<8 | uint64(c)
		}
		if ext == 8 && plen >= 1<<63 {
			return pos, websocket.StatusProtocolError, spans
		}
		hl := 2 + ext + 4
		if len(rest) < hl {
			return pos, 0, spans
		}
		key := rest[hl-4 : hl]
		fin, op := rest[0]&0x80 != 0, rest[0]&0x0f
		if op == 0x8 && fin && plen <= 125 {
			if uint64(len(rest)-hl) < plen {
				return pos, 0, spans
			}
			var reason []byte
			for j := 2; j < int(plen); j++ {
				reason = append(reason, rest[hl+j]^key[j%4])
			}
			if !utf8.Valid(reason) {
				return pos, websocket.StatusInvalidFramePayloadData, spans
			}
			return len(in), 0, spans
		}
		take := min(uint64(len(rest)-hl), plen)
		if op <= 0x2 && take > 0 {
			spans = append(spans, [2]int{pos + hl, pos + hl + int(take)})
		}
		pos += hl + int(take)
		if take < plen {
			return len(in), 0, spans
		}
	}
}

// dataIn is how many data payload bytes the spans hold in input[:n].
func dataIn(spans [][2]int, n int) int64 {
	var d int64
	for _, s := range spans {
		if s[0] >= n {
			break
		}
		d += int64(min(s[1], n) - s[0])
	}
	return d
}

// fzSource is a socket that returns the input in reads of the sizes the
// fuzzer chose (cycling; 0 is a (0, nil) read, never twice in a row; 200 and
// over are large reads), the last one with io.EOF if eofWithLast.
type fzSource struct {
	b           []byte
	sizes       []byte
	i           int
	lastZero    bool
	eofWithLast bool
}

func (s *fzSource) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := len(s.b)
	if len(s.sizes) > 0 {
		v := int(s.sizes[s.i%len(s.sizes)])
		s.i++
		switch {
		case v == 0 && s.lastZero:
			v = 1
		case v >= 200:
			v = (v - 199) * 97
		}
		n = v
	}
	s.lastZero = n == 0
	n = min(n, len(p), len(s.b))
	copy(p, s.b[:n])
	s.b = s.b[n:]
	if len(s.b) == 0 && s.eofWithLast {
		return n, io.EOF
	}
	return n, nil
}

// fzReadSize maps a fuzz byte to the size of one Read of the filter: small
// reads (the staging path), sizes around maxHold, and the library's 4096.
func fzReadSize(reads []byte, i int) int {
	if len(reads) == 0 {
		return 4096
	}
	switch v := int(reads[i%len(reads)]); {
	case v == 255:
		return 4096
	case v >= 248:
		return maxHold - 3 + (v - 248) // maxHold-3 .. maxHold+3
	default:
		return v + 1
	}
}

// checkFrameFilter reads a frameFilter over stream to the end and checks it
// against refFrames.
func checkFrameFilter(t *testing.T, stream, chunks, reads []byte) {
	t.Helper()
	pass, code, spans := refFrames(stream)
	src := &fzSource{b: stream, sizes: chunks, eofWithLast: len(chunks)%2 == 1}
	f := &frameFilter{src: src}
	var got []byte
	var err error
	for i := 0; ; i++ {
		if i > 2*len(stream)+4 {
			t.Fatalf("no end after %d reads (%d bytes handed up)", i, len(got))
		}
		size := fzReadSize(reads, i)
		buf := make([]byte, size)
		var n int
		n, err = f.Read(buf)
		if n < 0 || n > size {
			t.Fatalf("Read of %d returned %d", size, n)
		}
		// io.Reader allows (n, EOF) and (0, nil); the filter only passes
		// them up from the socket, after a close frame (unexamined).
		if n > 0 && err != nil && (err != io.EOF || len(src.b) != 0 || !f.through) {
			t.Fatalf("Read returned %d bytes and %v", n, err)
		}
		if n == 0 && err == nil && (!src.lastZero || !f.through) {
			t.Fatalf("Read of %d returned (0, nil), the socket did not", size)
		}
		if len(got)+n > len(stream) || !bytes.Equal(buf[:n], stream[len(got):len(got)+n]) {
			t.Fatalf("read %d: bytes %d..%d handed up are not the input's", i, len(got), len(got)+n)
		}
		got = append(got, buf[:n]...)
		// Memory: the held-back bytes are at most maxHold; with the
		// staging buffer (reads of up to maxHold bytes) hold and out
		// together come from one read of 2*maxHold.
		if len(f.hold) > maxHold || cap(f.hold) > 2*maxHold {
			t.Fatalf("hold %d bytes (cap %d), over maxHold %d", len(f.hold), cap(f.hold), maxHold)
		}
		if len(f.hold)+len(f.out) > 2*maxHold {
			t.Fatalf("hold %d + out %d bytes, over 2*maxHold", len(f.hold), len(f.out))
		}
		// The data counter counts exactly the data payload handed up
		// (returned, or staged in out to be returned without the socket).
		if d, want := f.data.Load(), dataIn(spans, len(got)+len(f.out)); d != want {
			t.Fatalf("after %d bytes (+%d staged): data %d, want %d", len(got), len(f.out), d, want)
		}
		if err != nil {
			break
		}
	}
	if len(got) != pass {
		t.Fatalf("handed up %d bytes, want %d (of %d)", len(got), pass, len(stream))
	}
	var v *wsViolation
	switch {
	case code == 0 && err != io.EOF:
		t.Fatalf("end %v, want EOF (no violation)", err)
	case code != 0 && (!errors.As(err, &v) || v.Code != code):
		t.Fatalf("end %v, want the violation %d", err, code)
	}
	if code != 0 {
		// Sticky: the violation stays.
		if _, err2 := f.Read(make([]byte, 4096)); err2 != err {
			t.Fatalf("Read after the violation: %v, want %v again", err2, err)
		}
	}
	if d, want := f.data.Load(), dataIn(spans, pass); d != want {
		t.Fatalf("data %d at the end, want %d", d, want)
	}
}

// fzFilterStreams are the seed streams of FuzzFrameFilter.
func fzFilterStreams() [][]byte {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4200) // 67200: 64-bit length
	join := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	reason := func(code uint16, s string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, code), s...)
	}
	return [][]byte{
		nil,
		fzFrame(0x82, 0, []byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")),
		fzFrame(0x82, 0, []byte("\xc0\x00")),
		// A message fragmented over three frames with a ping inside.
		join(fzFrame(0x02, 0, []byte("\x30\x05")), fzFrame(0x89, 0, []byte("hi")),
			fzFrame(0x00, 0, []byte("\x00\x01t")), fzFrame(0x80, 0, []byte("xy"))),
		// Control frames: ping, pong, a close with a reason, bytes after it.
		join(fzFrame(0x89, 0, nil), fzFrame(0x8a, 0, []byte("pong")),
			fzFrame(0x88, 0, reason(1000, "bye äö")), []byte("after the close")),
		fzFrame(0x88, 0, nil),
		fzFrame(0x88, 0, reason(1001, "")),
		// 16-bit and 64-bit lengths, and both used for small payloads.
		fzFrame(0x82, 126, bytes.Repeat([]byte("m"), 300)),
		fzFrame(0x82, 127, []byte("\xe0\x00")),
		fzFrame(0x82, 126, []byte("\xd0\x00")),
		// A 64-bit length cut inside the payload (whole frames of that size
		// make the fuzzer's minimization slow; TestFrameFilter has them).
		fzFrame(0x82, 0, big)[:200],
		// The largest close frame the filter holds: 127 encoding, 125 bytes.
		fzFrame(0x88, 127, reason(1000, string(bytes.Repeat([]byte("r"), 123)))),
		fzFrame(0x88, 126, reason(4000, "app")),
		// A 2^62 frame that has only begun.
		append(fzHeader64(0x82, 1<<62), "\x30\x7f\x00\x01t"...),
		// Violations, alone and after valid frames.
		join(fzFrame(0x82, 0, []byte("ok")), []byte{0x82, 0x02, 'n', 'o'}),
		{0x89, 0x00},
		join(fzFrame(0x82, 0, []byte("ok")), fzHeader64(0x82, 1<<63|5), []byte("12345")),
		fzHeader64(0x82, ^uint64(0)),
		join(fzFrame(0x82, 0, []byte("ok")), fzFrame(0x88, 0, reason(1000, "a\xc3("))),
		fzFrame(0x88, 127, reason(1000, "\xff")),
		// A close that is not one the library takes (not FIN, too long).
		join(fzFrame(0x08, 0, reason(1000, "\xff")), fzFrame(0x82, 0, []byte("z"))),
		join(fzFrame(0x88, 126, bytes.Repeat([]byte{0xff}, 126)), fzFrame(0x82, 0, []byte("z"))),
		// Reserved opcodes and RSV bits (the library's to refuse).
		join(fzFrame(0x83, 0, []byte("r")), fzFrame(0xc2, 0, []byte("s")), fzFrame(0x8b, 0, nil)),
		// Cut off in a header and in a close frame.
		join(fzFrame(0x82, 0, []byte("ok")), []byte{0x82}),
		join(fzFrame(0x82, 0, []byte("ok")), fzHeader64(0x82, 9)[:7]),
		fzFrame(0x88, 0, reason(1000, "cut"))[:9],
	}
}

func FuzzFrameFilter(f *testing.F) {
	splits := [][]byte{nil, {1}, {0, 1, 3, 7}, {13, 2, 250}, {2, 1}}
	reads := [][]byte{nil, {0}, {136, 250, 5}, {255, 1}, {6, 254, 30}}
	for i, s := range fzFilterStreams() {
		for j, c := range splits {
			f.Add(s, c, reads[(i+j)%len(reads)])
		}
	}
	f.Fuzz(func(t *testing.T, stream, chunks, reads []byte) {
		if len(stream) > 16<<10 { // keeps executions (and minimizing) fast
			return
		}
		checkFrameFilter(t, stream, chunks, reads)
	})
}

// refPackets is the reference model of the packet sizer: the MQTT packets
// of the stream one after the other (a type byte, a remaining length of 1
// to 4 bytes, the body); over reports the first whose 1 + length bytes +
// remaining length exceeds limit, at is the index of that length's last
// byte and index the packet's number. The scan stops at a remaining length
// whose 4th byte has the continuation bit (malformed) and at the end.
func refPackets(in []byte, limit uint32) (over bool, at, index int) {
	pos := 0
	for index = 0; pos < len(in); index++ {
		pos++ // type and flags
		var rl uint64
		for k := 0; ; k++ {
			if pos == len(in) {
				return false, 0, 0
			}
			c := in[pos]
			rl += uint64(c&0x7f) << (7 * k)
			pos++
			if c&0x80 == 0 {
				if size := uint64(1+k+1) + rl; size > uint64(limit) {
					return true, pos - 1, index
				}
				break
			}
			if k == 3 {
				return false, 0, 0
			}
		}
		pos += int(rl)
	}
	return false, 0, 0
}

// checkPacketSizer feeds stream to a packetSizer in the chunks splits say
// and checks it against refPackets and wire.Reader.
func checkPacketSizer(t *testing.T, stream, splits []byte, limit uint32) {
	t.Helper()
	over, at, index := refPackets(stream, limit)
	var s packetSizer
	reports, reportedAt := 0, -1
	lastEmpty := false
	for i, j := 0, 0; i < len(stream) || j == 0; j++ {
		n := len(stream) - i
		if len(splits) > 0 {
			c := int(splits[j%len(splits)]) % 23 // 0: an empty chunk, never twice in a row
			if c == 0 && lastEmpty {
				c = 1
			}
			n = min(n, c)
		}
		lastEmpty = n == 0
		if s.scan(stream[i:i+n], limit) {
			reports++
			if n > 0 && at >= i && at < i+n {
				reportedAt = at
			}
		}
		i += n
		if j > 4*len(stream)+4 {
			t.Fatal("no progress")
		}
	}
	switch {
	case over && (reports != 1 || reportedAt != at):
		t.Fatalf("packet %d over %d (length ends at byte %d): reported %d times, in the chunk of byte %d", index, limit, at, reports, reportedAt)
	case !over && reports != 0:
		t.Fatalf("no packet over %d, reported %d times", limit, reports)
	}
	// In one piece, and byte by byte, the same.
	var whole, single packetSizer
	if w := whole.scan(stream, limit); w != over {
		t.Fatalf("in one scan: over %v, want %v", w, over)
	}
	got := false
	for i := range stream {
		got = single.scan(stream[i:i+1], limit) || got
	}
	if got != over {
		t.Fatalf("byte by byte: over %v, want %v", got, over)
	}
	// The broker's reader: a packet it refuses as too large is the one the
	// sizer reports; and once it has read the packets before the one the
	// sizer reports, it refuses that one (too large, or its header).
	r := wire.NewReaderSize(bytes.NewReader(stream), limit, 64)
	for n := 0; ; n++ {
		_, err := r.ReadPacket(wire.V311)
		if err == nil {
			if over && n == index {
				t.Fatalf("wire.Reader read packet %d, which the sizer sees over %d", n, limit)
			}
			continue
		}
		we := wire.AsError(err)
		if we != nil && we.Code == wire.PacketTooLarge && (!over || n != index) {
			t.Fatalf("wire.Reader: packet %d too large (%v); sizer over %v at packet %d", n, err, over, index)
		}
		if over && n == index && (we == nil || we.Code != wire.PacketTooLarge && we.Code != wire.MalformedPacket && we.Code != wire.ProtocolError) {
			t.Fatalf("wire.Reader on packet %d, over the limit: %v", n, err)
		}
		break
	}
}

func FuzzPacketSizer(f *testing.F) {
	pub := []byte("\x30\x0a\x00\x01t1234567") // 12 bytes
	streams := [][]byte{
		nil,
		[]byte("\xc0\x00\xd0\x00"),
		pub,
		append(bytes.Clone(pub), "\x30\x0b\x00\x01t12345678"...),
		[]byte("\xc0\x00\x30\xff\xff\xff\x7f"),
		[]byte("\x30\xff\xff\xff\xff\x01"),
		[]byte("\x30\x80\x01"),             // 128, 2 length bytes
		[]byte("\x30\x80\x80\x80\x00\x00"), // zero in 4 bytes (non-minimal)
		[]byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00\x82\x06\x00\x01\x00\x01a\x01"),
		append(bytes.Repeat([]byte("\xc0\x00"), 20), "\x32\x90\x03"...),
	}
	for _, s := range streams {
		for _, sp := range [][]byte{nil, {1}, {2, 3}, {0, 1, 5}} {
			for _, limit := range []uint32{1, 2, 12, 100, 268_435_460} {
				f.Add(s, sp, limit)
			}
		}
	}
	f.Fuzz(func(t *testing.T, stream, splits []byte, limit uint32) {
		if limit == 0 { // not checked (SetMaxPacketSize(0))
			return
		}
		checkPacketSizer(t, stream, splits, limit)
	})
}

// TestWSHostileClients: clients that split their frames into tiny pieces,
// announce a 2^62-byte frame and trickle it, or open a frame and go silent
// get their bytes through as they arrive, hold no more than maxHold bytes
// in the filter and a bounded heap, and leave no goroutine once the
// connection and the listener are closed.
func TestWSHostileClients(t *testing.T) {
	leakOpts := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leakOpts) }) // after the listener's cleanup
	e := newWSEnv(t, WSOptions{})
	addr := e.l.Addr().String()
	filterOf := func(sc net.Conn) *frameFilter {
		t.Helper()
		f := sc.(*wsConn).filter
		if f == nil {
			t.Fatal("the connection has no frame filter")
		}
		return f // read its fields only after Close (the pump has ended)
	}
	closeFast := func(cl *rawWS, sc net.Conn) {
		t.Helper()
		start := time.Now()
		if code, _ := cl.closeWith(sc); code != int(websocket.StatusNormalClosure) {
			t.Fatalf("close status %d", code)
		}
		if d := time.Since(start); d > wsCloseWait+time.Second {
			t.Fatalf("Close took %v", d)
		}
	}

	t.Run("tiny writes and reads", func(t *testing.T) {
		cl := dialRaw(t, addr)
		sc := e.accept(t)
		big := bytes.Repeat([]byte("\x01\x02\x03\x04\x05\x06\x07"), 9400) // 65800: 64-bit length
		var want []byte
		var stream []byte
		add := func(fr []byte, data []byte) { stream = append(stream, fr...); want = append(want, data...) }
		add(fzFrame(0x02, 0, []byte("\x30\x05")), []byte("\x30\x05"))
		add(fzFrame(0x89, 0, []byte("p1")), nil)
		add(fzFrame(0x80, 127, []byte("\x00\x01tx")), []byte("\x00\x01tx"))
		add(fzFrame(0x82, 126, bytes.Repeat([]byte("m"), 300)), bytes.Repeat([]byte("m"), 300))
		add(fzFrame(0x8a, 0, nil), nil)
		add(fzFrame(0x82, 0, big), big)
		add(fzFrame(0x82, 126, []byte("\xc0\x00")), []byte("\xc0\x00"))
		errc := make(chan error, 1)
		go func() {
			for i := 0; i < len(stream); {
				n := min(1+i%3, len(stream)-i)
				if _, err := cl.c.Write(stream[i : i+n]); err != nil {
					errc <- err
					return
				}
				i += n
			}
			errc <- nil
		}()
		_ = sc.SetReadDeadline(time.Now().Add(20 * time.Second))
		got := make([]byte, 0, len(want))
		b := make([]byte, 1)
		for len(got) < len(want) {
			if _, err := sc.Read(b); err != nil {
				t.Fatalf("after %d bytes: %v", len(got), err)
			}
			got = append(got, b[0])
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("the stream was altered")
		}
		if b0, p := cl.readFrame(); b0 != 0x8a || string(p) != "p1" {
			t.Fatalf("pong %#x %q", b0, p)
		}
		f := filterOf(sc)
		closeFast(cl, sc)
		if len(f.hold) != 0 || f.data.Load() != int64(len(want)) {
			t.Fatalf("after Close: hold %d, data %d (want 0, %d)", len(f.hold), f.data.Load(), len(want))
		}
	})

	t.Run("2^62 frame trickled", func(t *testing.T) {
		cl := dialRaw(t, addr)
		sc := e.accept(t)
		cl.send(fzHeader64(0x82, 1<<62))
		_ = sc.SetReadDeadline(time.Now().Add(20 * time.Second))
		// Each piece reaches Read on its own: the pump never waits for
		// the frame's rest.
		var sent int64
		plain := []byte("\x30\x7f\x00\x01tpayload")
		for i := range 300 {
			piece := plain[:1+i%len(plain)]
			masked := make([]byte, len(piece))
			for j, c := range piece {
				masked[j] = c ^ fzMask[(sent+int64(j))%4]
			}
			cl.send(masked)
			got := make([]byte, len(piece))
			if _, err := io.ReadFull(sc, got); err != nil {
				t.Fatalf("piece %d: %v", i, err)
			}
			if !bytes.Equal(got, piece) {
				t.Fatalf("piece %d: %q, want %q", i, got, piece)
			}
			sent += int64(len(piece))
		}
		// Then 8 MiB in 32 KiB writes, read as it comes: the heap must not
		// grow with it.
		const chunk = 32 << 10
		block := make([]byte, chunk)
		if sent%4 != 0 {
			pad := make([]byte, 4-sent%4)
			for j := range pad {
				pad[j] = fzMask[(sent+int64(j))%4]
			}
			cl.send(pad)
			if _, err := io.ReadFull(sc, make([]byte, len(pad))); err != nil {
				t.Fatal(err)
			}
			sent += int64(len(pad))
		}
		for j := range block {
			block[j] = byte(j) ^ fzMask[j%4]
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		const blocks = 256
		errc := make(chan error, 1)
		go func() {
			for range blocks {
				if _, err := cl.c.Write(block); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		buf := make([]byte, chunk)
		for got := 0; got < blocks*chunk; {
			n, err := sc.Read(buf)
			if err != nil {
				t.Fatalf("after %d bytes: %v", got, err)
			}
			for j := range n {
				if buf[j] != byte(got+j) {
					t.Fatalf("byte %d altered", got+j)
				}
			}
			got += n
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		sent += blocks * chunk
		runtime.GC()
		runtime.ReadMemStats(&after)
		if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 2<<20 {
			t.Fatalf("the heap grew by %d bytes over %d MiB of one frame", grow, blocks*chunk>>20)
		}
		f := filterOf(sc)
		closeFast(cl, sc)
		if len(f.hold) != 0 || f.data.Load() != sent || f.skip != 1<<62-sent {
			t.Fatalf("after Close: hold %d, data %d, skip %d; want 0, %d, %d", len(f.hold), f.data.Load(), f.skip, sent, int64(1<<62)-sent)
		}
	})

	// Frames opened and left: the payload that came is readable, a Read
	// past it waits (its deadline works), and the filter holds at most
	// maxHold bytes.
	for _, tc := range []struct {
		name   string
		sent   []byte
		read   int // payload bytes readable
		hold   int // bytes held back once the client is silent
		silent bool
	}{
		{"data frame", fzFrame(0x82, 126, bytes.Repeat([]byte("d"), 1000))[:8+10], 10, 0, false},
		{"64-bit header", fzHeader64(0x82, 70000)[:5], 0, 5, false},
		{"close frame", fzFrame(0x88, 127, closePayload(1000, string(bytes.Repeat([]byte("r"), 123))))[:maxHold-1], 0, maxHold - 1, false},
		{"close frame, peer silent at the close", fzFrame(0x88, 0, closePayload(1000, "half"))[:9], 0, 9, true},
	} {
		t.Run("opened and silent/"+tc.name, func(t *testing.T) {
			cl := dialRaw(t, addr)
			sc := e.accept(t)
			cl.send(fzFrame(0x82, 0, []byte("\xc0\x00")), tc.sent)
			_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := make([]byte, 2+tc.read)
			if _, err := io.ReadFull(sc, got); err != nil {
				t.Fatal(err)
			}
			_ = sc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := sc.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read past what came: %d, %v; want the deadline", n, err)
			}
			f := filterOf(sc)
			if tc.silent {
				start := time.Now()
				sc.Close() // the client never answers the close
				if d := time.Since(start); d > wsCloseWait+time.Second {
					t.Fatalf("Close took %v", d)
				}
				cl.c.Close()
			} else {
				closeFast(cl, sc)
			}
			if len(f.hold) != tc.hold || len(f.hold) > maxHold {
				t.Fatalf("after Close: hold %d bytes, want %d (at most %d)", len(f.hold), tc.hold, maxHold)
			}
			if f.data.Load() != int64(2+tc.read) {
				t.Fatalf("data %d, want %d", f.data.Load(), 2+tc.read)
			}
		})
	}
}
