package listen

// The frame filter: the socket of an upgraded WebSocket connection as the
// websocket library reads it (handed over through filterHijacker), so that
// the broker can say why it ends a connection and can read MQTT bytes as
// they arrive.
//
// Invariants:
//   - What the library reads is exactly the client's bytes, in order, until
//     the filter finds a violation; from then on Read returns the
//     *wsViolation, whose Code is the close status (1002, 1007).
//   - It holds back at most maxHold bytes (a frame header, or a close frame
//     whole, until complete); everything else passes as it arrives.
//   - data counts the data frame payload passed: wsConn.pump never asks the
//     library for more than that, so it never blocks on a frame's rest.
import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// wsViolation is the read error of a connection whose client broke RFC 6455
// in a way the frame filter catches; Code is the close status it gets.
type wsViolation struct {
	Code websocket.StatusCode
	Msg  string
}

func (e *wsViolation) Error() string { return "websocket: " + e.Msg }

// filterHijacker hands the websocket library the socket through a
// frameFilter (the library reads only what the filter passes).
type filterHijacker struct {
	http.ResponseWriter
	f *frameFilter
}

func (h *filterHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("websocket: the http.ResponseWriter cannot hijack")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the HTTP server has read past the request go through the
	// filter too.
	b, _ := brw.Reader.Peek(brw.Reader.Buffered())
	h.f = &frameFilter{Conn: nc, src: io.MultiReader(bytes.NewReader(bytes.Clone(b)), nc)}
	return h.f, bufio.NewReadWriter(bufio.NewReader(h.f), brw.Writer), nil
}

const (
	maxFrameHeader = 14 // 2 + 8 (64-bit length) + 4 (mask)
	maxHold        = maxFrameHeader + 125
)

// frameFilter is the socket of an upgraded connection as the websocket
// library reads it. It follows the client's frames as they pass:
//   - it counts the payload bytes of data frames handed up (data): so many
//     bytes can be read from the library without waiting for the socket;
//   - it fails the connection (Read returns a *wsViolation from then on, the
//     frame is not handed up) on an unmasked frame or a 64-bit length with
//     the top bit set (1002, RFC 6455 §5.1, §5.2), which the library would
//     end without saying why, and on a close frame whose reason is not UTF-8
//     (1007, §5.5.1, §8.1), which the library would echo.
//
// A frame header, and a close frame whole, is held back until it is
// complete (at most maxHold bytes). After a valid close frame the bytes
// pass unexamined. One Read at a time (the library's read lock).
type frameFilter struct {
	net.Conn           // writes, deadlines and Close are the socket's
	src      io.Reader // the socket's bytes, from the first one after the request
	hold     []byte    // read, not handed up: the start of an incomplete header or close frame
	out      []byte    // handed up, not yet returned (small reads only)
	tmp      []byte    // their buffer
	skip     int64     // payload bytes of the current frame still to pass
	isData   bool      // the current frame is a data frame
	through  bool      // a close frame passed
	err      error     // sticky: a violation or the socket's error
	data     atomic.Int64
}

func (f *frameFilter) Read(p []byte) (int, error) {
	if len(f.out) == 0 && len(p) > maxHold {
		return f.read(p)
	}
	if len(f.out) == 0 {
		if f.tmp == nil {
			f.tmp = make([]byte, 2*maxHold)
		}
		n, err := f.read(f.tmp)
		if n == 0 {
			return 0, err
		}
		f.out = f.tmp[:n]
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}

// read fills p (longer than maxHold) with the bytes that can be handed up:
// the held ones first, then new ones from the socket.
func (f *frameFilter) read(p []byte) (int, error) {
	for {
		if f.err != nil {
			return 0, f.err
		}
		if f.through && len(f.hold) == 0 {
			return f.src.Read(p)
		}
		h := copy(p, f.hold)
		f.hold = f.hold[:0]
		n, err := f.src.Read(p[h:])
		total := h + n
		k := f.scan(p[:total])
		if f.err == nil {
			f.hold = append(f.hold, p[k:total]...)
			if err != nil {
				f.err = err
			}
		}
		if k > 0 {
			return k, nil
		}
	}
}

// scan follows the frames in b, which starts where the last scan stopped,
// and returns how many bytes of b can be handed up: up to the start of an
// incomplete header or close frame, or of a frame that breaks the rules
// (then f.err is set).
func (f *frameFilter) scan(b []byte) int {
	i := 0
	for i < len(b) {
		if f.through {
			return len(b)
		}
		if f.skip > 0 {
			m := min(int64(len(b)-i), f.skip)
			if f.isData {
				f.data.Add(m)
			}
			f.skip -= m
			i += int(m)
			continue
		}
		hdr := b[i:]
		if len(hdr) < 2 {
			return i
		}
		if hdr[1]&0x80 == 0 {
			f.fail(websocket.StatusProtocolError, "unmasked frame from the client")
			return i
		}
		hl, length := 2+4, int64(hdr[1]&0x7f)
		switch length {
		case 126:
			hl += 2
			if len(hdr) >= 4 {
				length = int64(binary.BigEndian.Uint16(hdr[2:]))
			}
		case 127:
			hl += 8
			if len(hdr) >= 10 {
				u := binary.BigEndian.Uint64(hdr[2:])
				if u>>63 != 0 {
					f.fail(websocket.StatusProtocolError, "frame length with the most significant bit set")
					return i
				}
				length = int64(u)
			}
		}
		if len(hdr) < hl {
			return i
		}
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0f
		if op == 0x8 && fin && length <= 125 { // a close frame the library takes
			if int64(len(hdr)) < int64(hl)+length {
				return i
			}
			payload := bytes.Clone(hdr[hl : int64(hl)+length])
			key := hdr[hl-4 : hl]
			for j := range payload {
				payload[j] ^= key[j%4]
			}
			if len(payload) > 2 && !utf8.Valid(payload[2:]) {
				f.fail(websocket.StatusInvalidFramePayloadData, "close reason is not valid UTF-8")
				return i
			}
			f.through = true
			return len(b)
		}
		f.isData = op <= 0x2 // continuation, text, binary
		f.skip = length
		i += hl
	}
	return i
}

func (f *frameFilter) fail(code websocket.StatusCode, msg string) {
	f.err = &wsViolation{Code: code, Msg: msg}
}
