package listen

// The upgraded connection (wsConn) as a net.Conn carrying the MQTT byte
// stream: its pump goroutine, deadlines that behave as on a TCP socket,
// the MQTT packet sizes it follows for close status 1009, and the bounded
// close handshake. The invariants are those of ws.go's header.
import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// wsConn is an upgraded connection as a net.Conn.
type wsConn struct {
	ws     *websocket.Conn
	raw    net.Conn     // the socket under it, closed when the peer does not answer the close
	filter *frameFilter // the library's view of raw; nil in tests that build a wsConn without one

	rmu     sync.Mutex // one Read at a time
	chunks  chan []byte
	free    chan struct{}
	rest    []byte
	rerr    error // the pump's end; valid once chunks is closed
	rdl     deadline
	maxPkt  atomic.Uint32 // SetMaxPacketSize; 0: not checked
	packets packetSizer   // Read's

	wmu sync.Mutex
	wdl atomic.Int64 // write deadline, UnixNano; 0 = none

	closeOnce sync.Once
	closed    chan struct{}
	pumpDone  chan struct{}
	texts     *atomic.Uint64
	code      atomic.Int32 // close status to send (StatusNormalClosure unless a violation)
}

func newWSConn(ws *websocket.Conn, raw net.Conn, f *frameFilter, texts *atomic.Uint64) *wsConn {
	ws.SetReadLimit(-1) // a stream: the MQTT reader bounds the packet size
	c := &wsConn{
		ws:       ws,
		raw:      raw,
		filter:   f,
		chunks:   make(chan []byte),
		free:     make(chan struct{}),
		rdl:      makeDeadline(),
		closed:   make(chan struct{}),
		pumpDone: make(chan struct{}),
		texts:    texts,
	}
	c.code.Store(int32(websocket.StatusNormalClosure))
	go c.pump()
	return c
}

// SetMaxPacketSize tells the connection the broker's maximum MQTT packet
// size (fixed header included; 0: none), to close with 1009 (message too
// big) rather than 1000 when the broker refuses a packet over it. Call it
// before the first Read.
func (c *wsConn) SetMaxPacketSize(n uint32) { c.maxPkt.Store(n) }

// setCode sets the close status, unless one other than normal is set.
func (c *wsConn) setCode(code websocket.StatusCode) {
	c.code.CompareAndSwap(int32(websocket.StatusNormalClosure), int32(code))
}

// available is how many bytes of message payload can be read from the
// library without waiting for the socket, given that consumed were read.
func (c *wsConn) available(consumed int64) int64 {
	if c.filter == nil {
		return wsChunk
	}
	return max(c.filter.data.Load()-consumed, 0)
}

// pump reads the messages and hands their bytes to Read, one chunk at a
// time. It asks the library for no more than has arrived (at least one
// byte): the library fills a read whole before it returns.
func (c *wsConn) pump() {
	defer close(c.pumpDone)
	defer close(c.chunks)
	buf := make([]byte, wsChunk)
	var consumed int64
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			c.rerr = c.readErr(err)
			return
		}
		if typ != websocket.MessageBinary {
			c.texts.Add(1)
			c.setCode(websocket.StatusUnsupportedData)
			c.rerr = errTextMessage
			return
		}
		for {
			want := min(max(c.available(consumed), 1), int64(len(buf)))
			n, err := r.Read(buf[:want])
			consumed += int64(n)
			for err == nil && n < len(buf) { // what arrived meanwhile
				a := min(c.available(consumed), int64(len(buf)-n))
				if a == 0 {
					break
				}
				var m int
				m, err = r.Read(buf[n : n+int(a)])
				n += m
				consumed += int64(m)
			}
			if n > 0 {
				select {
				case c.chunks <- buf[:n]:
				case <-c.closed:
					c.rerr = net.ErrClosed
					return
				}
				select {
				case <-c.free:
				case <-c.closed:
					c.rerr = net.ErrClosed
					return
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				c.rerr = c.readErr(err)
				return
			}
		}
	}
}

// readErr maps the library's errors: a close frame from the client is EOF;
// a violation the frame filter found sets the close status.
func (c *wsConn) readErr(err error) error {
	var v *wsViolation
	if errors.As(err, &v) {
		c.setCode(v.Code)
		return err
	}
	if websocket.CloseStatus(err) != -1 {
		return io.EOF
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rdl.expired() {
		return 0, os.ErrDeadlineExceeded
	}
	if len(c.rest) == 0 {
		select {
		case ch, ok := <-c.chunks:
			if !ok {
				return 0, c.rerr
			}
			c.rest = ch
		case <-c.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	if limit := c.maxPkt.Load(); limit != 0 && c.packets.scan(p[:n], limit) {
		c.setCode(websocket.StatusMessageTooBig)
	}
	if len(c.rest) == 0 {
		c.rest = nil
		select {
		case c.free <- struct{}{}:
		case <-c.closed:
		}
	}
	return n, nil
}

// packetSizer follows the MQTT packets of the byte stream by their fixed
// headers, to see a packet over the maximum size as the broker's reader
// does (wire.Reader: 1 + the remaining length's bytes + the remaining
// length). It stops at the first such packet, or at a malformed length.
type packetSizer struct {
	state int    // 0: the type byte next, 1: in the remaining length, 2: in the body
	rl    uint32 // remaining length so far
	k     int    // its bytes so far
	skip  uint32 // body bytes still to pass
	done  bool
}

// scan follows b; it reports whether a packet over limit was announced.
func (s *packetSizer) scan(b []byte, limit uint32) (over bool) {
	for i := 0; i < len(b) && !s.done; {
		switch s.state {
		case 0:
			s.state, s.rl, s.k = 1, 0, 0
			i++
		case 1:
			d := b[i]
			i++
			s.rl |= uint32(d&0x7f) << (7 * s.k)
			s.k++
			if d&0x80 != 0 {
				if s.k == 4 {
					s.done = true // malformed: the broker closes it as such
				}
				continue
			}
			if uint64(1+s.k)+uint64(s.rl) > uint64(limit) {
				s.done = true
				return true
			}
			s.state, s.skip = 2, s.rl
			if s.skip == 0 {
				s.state = 0
			}
		case 2:
			m := min(uint32(len(b)-i), s.skip)
			s.skip -= m
			i += int(m)
			if s.skip == 0 {
				s.state = 0
			}
		}
	}
	return false
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	ctx := context.Background()
	if dl := c.wdl.Load(); dl != 0 {
		t := time.Unix(0, dl)
		if !time.Now().Before(t) {
			return 0, os.ErrDeadlineExceeded
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, t)
		defer cancel()
	}
	if err := c.ws.Write(ctx, websocket.MessageBinary, p); err != nil {
		if ctx.Err() != nil {
			return 0, os.ErrDeadlineExceeded
		}
		return 0, err
	}
	return len(p), nil
}

// closeReason is the reason sent with a close status.
func closeReason(code websocket.StatusCode) string {
	switch code {
	case websocket.StatusProtocolError:
		return "protocol error"
	case websocket.StatusUnsupportedData:
		return "MQTT uses binary messages"
	case websocket.StatusInvalidFramePayloadData:
		return "invalid UTF-8"
	case websocket.StatusMessageTooBig:
		return "MQTT packet too large"
	}
	return ""
}

// Close does the close handshake, bounded by wsCloseWait.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		code := websocket.StatusCode(c.code.Load())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = c.ws.Close(code, closeReason(code))
		}()
		t := time.NewTimer(wsCloseWait)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
		if c.raw != nil {
			_ = c.raw.Close()
		}
		<-done
		<-c.pumpDone
	})
	return nil
}

// closeNow closes without the handshake.
func (c *wsConn) closeNow() {
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.ws.CloseNow()
		<-c.pumpDone
	})
}

func (c *wsConn) LocalAddr() net.Addr {
	if c.raw != nil {
		return c.raw.LocalAddr()
	}
	return wsAddr{}
}

func (c *wsConn) RemoteAddr() net.Addr {
	if c.raw != nil {
		return c.raw.RemoteAddr()
	}
	return wsAddr{}
}

func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error {
	c.rdl.set(t)
	return nil
}

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.wdl.Store(0)
	} else {
		c.wdl.Store(t.UnixNano())
	}
	return nil
}

// Unwrap returns the socket under the WebSocket (a *net.TCPConn or a
// *tls.Conn).
func (c *wsConn) Unwrap() net.Conn { return c.raw }

type wsAddr struct{}

func (wsAddr) Network() string { return "websocket" }
func (wsAddr) String() string  { return "websocket" }

// deadline is a settable read deadline (the pattern of net.Pipe's): wait
// returns a channel closed once the deadline has passed.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

func makeDeadline() deadline { return deadline{cancel: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for it to close cancel
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		ch := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func (d *deadline) expired() bool { return isClosed(d.wait()) }

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
