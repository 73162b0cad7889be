package listen

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"testing/iotest"
	"time"

	"github.com/coder/websocket"
)

// rawWS is a hand-made WebSocket client: it sends the frames the test
// builds, broken ones included, and reads the server's frames.
type rawWS struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

// dialRaw upgrades a TCP connection to addr with the subprotocol "mqtt".
func dialRaw(t *testing.T, addr string) *rawWS {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /mqtt HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %s", resp.Status)
	}
	return &rawWS{t: t, c: c, br: br}
}

// frame builds a client frame: b0 is FIN|RSV|opcode; masked frames use a
// fixed key.
func frame(b0 byte, masked bool, payload []byte) []byte {
	var h []byte
	var mbit byte
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		h = []byte{b0, mbit | byte(n)}
	case n < 1<<16:
		h = binary.BigEndian.AppendUint16([]byte{b0, mbit | 126}, uint16(n))
	default:
		h = binary.BigEndian.AppendUint64([]byte{b0, mbit | 127}, uint64(n))
	}
	return append(h, maskPayload(masked, payload)...)
}

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

func maskPayload(masked bool, p []byte) []byte {
	if !masked {
		return bytes.Clone(p)
	}
	out := append(testMask[:], p...)
	for i := range p {
		out[4+i] ^= testMask[i%4]
	}
	return out
}

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

func (r *rawWS) send(bs ...[]byte) {
	r.t.Helper()
	if _, err := r.c.Write(bytes.Join(bs, nil)); err != nil {
		r.t.Fatal(err)
	}
}

// readFrame reads one server frame (servers do not mask).
func (r *rawWS) readFrame() (b0 byte, payload []byte) {
	r.t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		r.t.Fatalf("reading a frame: %v", err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(r.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(r.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		r.t.Fatalf("reading a frame payload: %v", err)
	}
	return h[0], payload
}

// readClose skips binary messages (returned) up to the server's close
// frame and returns its status.
func (r *rawWS) readClose() (code int, msgs [][]byte) {
	r.t.Helper()
	for {
		b0, p := r.readFrame()
		switch b0 {
		case 0x82:
			msgs = append(msgs, p)
		case 0x88:
			if len(p) < 2 {
				return int(websocket.StatusNoStatusRcvd), msgs
			}
			return int(binary.BigEndian.Uint16(p)), msgs
		default:
			r.t.Fatalf("server frame %#x %q", b0, p)
		}
	}
}

// closeWith closes sc in the background (its handshake waits for the peer)
// and returns the close status the client reads; the client then drops
// the socket, so that Close returns at once.
func (r *rawWS) closeWith(sc net.Conn) (code int, msgs [][]byte) {
	r.t.Helper()
	done := make(chan struct{})
	go func() { sc.Close(); close(done) }()
	code, msgs = r.readClose()
	r.c.Close()
	<-done
	return code, msgs
}

// TestWSCloseCodes: the close status says why the server ends the
// connection: 1002 for an unmasked frame or a 64-bit length with the top
// bit set, 1009 for an MQTT packet over the maximum (in one frame or over
// several; what the broker wrote first still arrives), 1000 otherwise.
func TestWSCloseCodes(t *testing.T) {
	e := newWSEnv(t, WSOptions{})
	for _, tc := range []struct {
		name   string
		frames [][]byte
		read   int // bytes the server reads before it closes (0: until an error)
		want   int
	}{
		{"unmasked", [][]byte{frame(0x82, false, []byte("\xc0\x00"))}, 0, 1002},
		{"unmasked ping", [][]byte{frame(0x89, false, []byte("p"))}, 0, 1002},
		{"unmasked continuation", [][]byte{frame(0x02, true, []byte("\xc0")), frame(0x80, false, []byte("\x00"))}, 0, 1002},
		{"length msb", [][]byte{append([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, testMask[:]...)}, 0, 1002},
		{"too big", [][]byte{frame(0x82, true, []byte("\x30\xff\xff\xff\x7f"))}, 5, 1009},
		{"too big over frames", [][]byte{frame(0x02, true, []byte("\x30")), frame(0x00, true, []byte("\xc8")), frame(0x80, true, []byte("\x01"))}, 3, 1009},
		{"within the maximum", [][]byte{frame(0x82, true, []byte("\x30\x61\x00\x01t")), frame(0x82, true, bytes.Repeat([]byte("x"), 94))}, 99, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := dialRaw(t, e.l.Addr().String())
			sc := e.accept(t)
			sc.(*wsConn).SetMaxPacketSize(100)
			cl.send(tc.frames...)
			_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if tc.read > 0 {
				if _, err := io.ReadFull(sc, make([]byte, tc.read)); err != nil {
					t.Fatalf("server read: %v", err)
				}
				if _, err := sc.Write([]byte("\xe0\x02\x95\x00")); err != nil { // as the broker's DISCONNECT
					t.Fatal(err)
				}
			} else {
				_, err := io.ReadAll(sc)
				var v *wsViolation
				if !errors.As(err, &v) {
					t.Fatalf("server read %v, want the violation", err)
				}
			}
			code, msgs := cl.closeWith(sc)
			if code != tc.want {
				t.Fatalf("close status %d, want %d", code, tc.want)
			}
			if tc.read > 0 && (len(msgs) != 1 || string(msgs[0]) != "\xe0\x02\x95\x00") {
				t.Fatalf("messages before the close %q, want the DISCONNECT", msgs)
			}
		})
	}
}

// TestWSCloseReasonUTF8: a client close whose reason is not UTF-8 fails the
// connection with 1007 and is not echoed; a valid one is echoed.
func TestWSCloseReasonUTF8(t *testing.T) {
	e := newWSEnv(t, WSOptions{})
	cl := dialRaw(t, e.l.Addr().String())
	sc := e.accept(t)
	cl.send(frame(0x88, true, closePayload(1000, "\xff\xfe")))
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := sc.Read(make([]byte, 8))
	var v *wsViolation
	if !errors.As(err, &v) || v.Code != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("server read %v, want the 1007 violation", err)
	}
	if code, _ := cl.closeWith(sc); code != 1007 {
		t.Fatalf("close status %d, want 1007", code)
	}

	cl = dialRaw(t, e.l.Addr().String())
	sc = e.accept(t)
	cl.send(frame(0x88, true, closePayload(4000, "äpp")))
	b0, p := cl.readFrame()
	if b0 != 0x88 || string(p) != string(closePayload(4000, "äpp")) {
		t.Fatalf("echo %#x %q", b0, p)
	}
	cl.c.Close()
	sc.Close()
}

// TestWSClientCloseIsEOF: a close frame from the client, with any valid
// status or none, ends the stream like EOF on TCP: no read error.
func TestWSClientCloseIsEOF(t *testing.T) {
	e := newWSEnv(t, WSOptions{})
	for _, p := range [][]byte{closePayload(1000, ""), closePayload(1001, "bye"), closePayload(4000, "app"), closePayload(3000, ""), nil} {
		cl := dialRaw(t, e.l.Addr().String())
		sc := e.accept(t)
		cl.send(frame(0x88, true, p))
		_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := sc.Read(make([]byte, 8)); err != io.EOF {
			t.Errorf("close payload %q: server read %v, want EOF", p, err)
		}
		cl.c.Close()
		sc.Close()
	}
}

// TestWSPartialFrame: payload that has arrived reaches Read without the
// rest of its frame (MQTT-6.0.0-2: packets need not align with frames),
// and the stream stays exact over frame, message and control-frame
// boundaries.
func TestWSPartialFrame(t *testing.T) {
	e := newWSEnv(t, WSOptions{})
	cl := dialRaw(t, e.l.Addr().String())
	sc := e.accept(t)
	body := make([]byte, 40000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	body[0], body[1] = 0xc0, 0x00
	f := frame(0x82, true, body)
	hl := len(f) - len(body) // header and mask
	cl.send(f[:hl+2])
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 2)
	if _, err := io.ReadFull(sc, got); err != nil || string(got) != "\xc0\x00" {
		t.Fatalf("the first bytes of an open frame: %q %v", got, err)
	}
	// The rest, then a fragmented message with a ping inside.
	cl.send(f[hl+2:], frame(0x02, true, []byte("ab")), frame(0x89, true, []byte("p")), frame(0x80, true, []byte("cd")))
	rest := make([]byte, len(body)-2+4)
	if _, err := io.ReadFull(sc, rest); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest[:len(body)-2], body[2:]) || string(rest[len(body)-2:]) != "abcd" {
		t.Fatal("the stream was altered")
	}
	if b0, p := cl.readFrame(); b0 != 0x8a || string(p) != "p" {
		t.Fatalf("pong %#x %q", b0, p)
	}
	// A frame sent one byte at a time.
	for _, b := range frame(0x82, true, []byte("\xd0\x00")) {
		cl.send([]byte{b})
	}
	if _, err := io.ReadFull(sc, got); err != nil || string(got) != "\xd0\x00" {
		t.Fatalf("a frame in single bytes: %q %v", got, err)
	}
	cl.c.Close()
	sc.Close()
}

// TestFrameFilter: the filter hands up a valid stream unchanged however the
// socket splits it, counts exactly the data frames' payload, and stops
// before a frame that breaks the rules.
func TestFrameFilter(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 70000)
	valid := bytes.Join([][]byte{
		frame(0x82, true, []byte("\x10\x05")),
		frame(0x89, true, []byte("ping")),
		frame(0x02, true, big[:300]),
		frame(0x8a, true, nil),
		frame(0x80, true, big),
		frame(0x88, true, closePayload(1000, "bye")),
		[]byte("after the close"),
	}, nil)
	dataLen := int64(2 + 300 + len(big))
	for _, tc := range []struct {
		name   string
		stream []byte
		pass   int // bytes handed up
		data   int64
		code   websocket.StatusCode // 0: none, EOF at the end
	}{
		{"valid", valid, len(valid), dataLen, 0},
		{"unmasked", append(frame(0x82, true, []byte("ok")), frame(0x82, false, []byte("no"))...), 8, 2, websocket.StatusProtocolError},
		{"length msb", append(frame(0x82, true, []byte("ok")), 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4), 8, 2, websocket.StatusProtocolError},
		{"close reason", append(frame(0x82, true, []byte("ok")), frame(0x88, true, closePayload(1000, "a\xc3("))...), 8, 2, websocket.StatusInvalidFramePayloadData},
	} {
		for _, split := range []struct {
			name string
			r    func(io.Reader) io.Reader
			size int
		}{
			{"whole", func(r io.Reader) io.Reader { return r }, 4096},
			{"one byte", iotest.OneByteReader, 4096},
			{"half", iotest.HalfReader, 7},
		} {
			t.Run(tc.name+"/"+split.name, func(t *testing.T) {
				f := &frameFilter{src: split.r(bytes.NewReader(tc.stream))}
				var out []byte
				buf := make([]byte, split.size)
				var err error
				for err == nil {
					var n int
					n, err = f.Read(buf)
					out = append(out, buf[:n]...)
				}
				if !bytes.Equal(out, tc.stream[:tc.pass]) {
					t.Fatalf("handed up %d bytes, want the first %d", len(out), tc.pass)
				}
				if d := f.data.Load(); d != tc.data {
					t.Fatalf("data %d, want %d", d, tc.data)
				}
				var v *wsViolation
				switch {
				case tc.code == 0 && err != io.EOF:
					t.Fatalf("end %v, want EOF", err)
				case tc.code != 0 && (!errors.As(err, &v) || v.Code != tc.code):
					t.Fatalf("end %v, want status %d", err, tc.code)
				}
			})
		}
	}
}

// TestPacketSizer: the sizer sees a packet over the limit as wire.Reader
// does, wherever the stream is split.
func TestPacketSizer(t *testing.T) {
	for _, tc := range []struct {
		stream string
		over   bool
	}{
		{"\xc0\x00\x30\x03\x00\x01t", false},
		{"\x30\x0a\x00\x01t1234567", false}, // 12 bytes: the limit
		{"\x30\x0b\x00\x01t12345678", true}, // 13
		{"\xc0\x00\x30\xff\xff\xff\x7f", true},
		{"\x30\xff\xff\xff\xff\x01", false}, // malformed: not a size
	} {
		for _, step := range []int{1, 2, len(tc.stream)} {
			var s packetSizer
			over := false
			for i := 0; i < len(tc.stream); i += step {
				over = s.scan([]byte(tc.stream[i:min(i+step, len(tc.stream))]), 12) || over
			}
			if over != tc.over {
				t.Errorf("%q in steps of %d: over %v, want %v", tc.stream, step, over, tc.over)
			}
		}
	}
}

// waitFor polls cond until it holds or 5 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readsToEOF reports whether the server closed c (EOF or reset) within 5 s.
func readsToEOF(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the server kept the socket open")
	}
}
