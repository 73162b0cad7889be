package listen

// The WebSocket transport: MQTT over WebSocket (MQTT 3.1.1 §6, 5.0 §6) as a
// net.Listener, so that the broker serves it exactly like TCP.
//
// An HTTP server on the listener's socket (TLS for wss) answers the upgrade
// at one path (/mqtt by default); every upgraded connection comes out of
// Accept as a net.Conn carrying the MQTT byte stream.
//
// Invariants:
//   - Only an upgrade that offers the subprotocol "mqtt" (or "mqttv3.1",
//     older clients) is accepted, and the chosen one is returned
//     (MQTT-6.0.0-3/4); anything else is refused with an HTTP error before
//     the upgrade, counted and logged.
//   - Cross-origin browser requests are refused (403) unless their origin
//     matches WSOptions.OriginPatterns: the MQTT listener may admit
//     anonymous clients on loopback, and any web page a user opens could
//     otherwise reach it. Requests without an Origin header (non-browser
//     clients) and same-origin ones are accepted.
//   - MQTT data travels in binary messages only: a text message ends the
//     connection (read error; close status 1003), MQTT-6.0.0-1. Packets may
//     span messages and a message may hold several packets (the conn is a
//     byte stream); every Write is one binary message.
//   - Deadlines behave as on a TCP socket: an expired read deadline
//     interrupts Read without closing the connection (the broker uses it to
//     stop a reader and then still writes its DISCONNECT). The websocket
//     library closes a connection whose read is cancelled, so one pump
//     goroutine per connection does the reading and Read waits for it. An
//     expired write deadline does close the connection (the library cannot
//     abandon half a frame).
//   - Close does the WebSocket close handshake but never waits more than
//     wsCloseWait for a peer that does not answer: then the socket is
//     closed under it. No goroutine outlives Close.
//   - The pump holds at most one chunk (wsChunk bytes) the broker has not
//     read: a client cannot make the server buffer more than that.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// WSSubprotocols are the WebSocket subprotocols of MQTT, in order of
// preference.
var WSSubprotocols = []string{"mqtt", "mqttv3.1"}

const (
	// DefaultWSPath is where the upgrade is answered.
	DefaultWSPath = "/mqtt"
	wsChunk       = 32 << 10
	wsCloseWait   = 2 * time.Second
)

// WSOptions configure a WebSocket listener.
type WSOptions struct {
	// Path is the URL path of the upgrade (DefaultWSPath if empty).
	Path string
	// TLS, if set, makes the listener wss (TLS.Config(), say).
	TLS *tls.Config
	// OriginPatterns are the host patterns (path.Match syntax, e.g.
	// "*.example.com", "127.0.0.1:*"; a pattern with "://" is matched
	// against scheme://host) of the web origins allowed besides the
	// broker's own; "*" allows every origin.
	OriginPatterns []string
	// HandshakeTimeout bounds the TLS handshake and the HTTP upgrade
	// request (default 10s).
	HandshakeTimeout time.Duration
	Logger           *slog.Logger
}

// WSStats are a WebSocket listener's counters.
type WSStats struct {
	Upgraded          uint64 // connections handed to Accept
	RefusedProtocol   uint64 // upgrade without an MQTT subprotocol
	RefusedOrigin     uint64 // cross-origin request from an origin not allowed
	RefusedHandshake  uint64 // not a valid WebSocket upgrade (or not one at all)
	RefusedNotFound   uint64 // a request for another path
	BinaryViolations  uint64 // connections ended by a text message
	HandshakeFailures uint64 // TLS handshakes that failed (wss)
}

// WSListener accepts MQTT connections over WebSocket.
type WSListener struct {
	opts   WSOptions
	log    *slog.Logger
	l      net.Listener // the TCP socket
	srv    *http.Server
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	served chan struct{}

	upgraded, refProto, refOrigin, refHandshake, refPath, textMsgs, tlsFailed atomic.Uint64
}

type rawConnKey struct{}

// ListenWS listens on the TCP address addr and serves WebSocket upgrades.
func ListenWS(addr string, o WSOptions) (*WSListener, error) {
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("websocket: listening on %s: %w", addr, err)
	}
	return NewWSListener(tl, o), nil
}

// NewWSListener serves WebSocket upgrades on the TCP listener l, which it
// owns from now on.
func NewWSListener(l net.Listener, o WSOptions) *WSListener {
	if o.Path == "" {
		o.Path = DefaultWSPath
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	scheme := "ws"
	if o.TLS != nil {
		scheme = "wss"
	}
	w := &WSListener{
		opts:   o,
		log:    o.Logger.With("listener", scheme),
		l:      l,
		conns:  make(chan net.Conn),
		done:   make(chan struct{}),
		served: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc(o.Path, w.upgrade)
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		w.refPath.Add(1)
		w.log.Info("websocket request for an unknown path refused", "remote", r.RemoteAddr, "path", r.URL.Path, "want", o.Path)
		http.Error(rw, "MQTT over WebSocket is served at "+o.Path, http.StatusNotFound)
	})
	w.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: o.HandshakeTimeout,
		IdleTimeout:       o.HandshakeTimeout,
		MaxHeaderBytes:    16 << 10,
		// No HTTP/2: the upgrade needs HTTP/1.1.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, rawConnKey{}, c)
		},
		ErrorLog: slog.NewLogLogger(&tlsErrorCounter{Handler: w.log.Handler(), n: &w.tlsFailed}, slog.LevelInfo),
	}
	var sl net.Listener = l
	if o.TLS != nil {
		sl = tls.NewListener(l, o.TLS)
	}
	go func() {
		defer close(w.served)
		_ = w.srv.Serve(sl) // ends with Close
	}()
	return w
}

// Accept returns the next upgraded connection; net.ErrClosed after Close.
func (w *WSListener) Accept() (net.Conn, error) {
	select {
	case c := <-w.conns:
		return c, nil
	case <-w.done:
		return nil, fmt.Errorf("websocket: accept on %s: %w", w.l.Addr(), net.ErrClosed)
	}
}

// Close stops accepting and closes the socket. Connections already handed
// out by Accept are the caller's; upgrades in progress are dropped.
func (w *WSListener) Close() error {
	w.once.Do(func() {
		close(w.done)
		_ = w.srv.Close() // closes the socket and idle HTTP connections, not hijacked ones
		<-w.served
	})
	return nil
}

// Addr is the TCP address.
func (w *WSListener) Addr() net.Addr { return w.l.Addr() }

// URL is the ws:// or wss:// URL of the listener.
func (w *WSListener) URL() string {
	s := "ws"
	if w.opts.TLS != nil {
		s = "wss"
	}
	return s + "://" + w.l.Addr().String() + w.opts.Path
}

// Stats returns the listener's counters.
func (w *WSListener) Stats() WSStats {
	return WSStats{
		Upgraded:          w.upgraded.Load(),
		RefusedProtocol:   w.refProto.Load(),
		RefusedOrigin:     w.refOrigin.Load(),
		RefusedHandshake:  w.refHandshake.Load(),
		RefusedNotFound:   w.refPath.Load(),
		BinaryViolations:  w.textMsgs.Load(),
		HandshakeFailures: w.tlsFailed.Load(),
	}
}

// upgrade answers one upgrade request.
func (w *WSListener) upgrade(rw http.ResponseWriter, r *http.Request) {
	log := w.log.With("remote", r.RemoteAddr)
	if !offersSubprotocol(r) {
		w.refProto.Add(1)
		log.Info("websocket upgrade refused: no MQTT subprotocol offered", "offered", r.Header.Values("Sec-WebSocket-Protocol"))
		http.Error(rw, `MQTT over WebSocket needs the subprotocol "mqtt" (or "mqttv3.1")`, http.StatusBadRequest)
		return
	}
	if err := w.checkOrigin(r); err != nil {
		w.refOrigin.Add(1)
		log.Warn("websocket upgrade refused: origin not allowed (cairn serve --ws-origins allows more)", "origin", r.Header.Get("Origin"), "host", r.Host, "err", err)
		http.Error(rw, "origin not allowed", http.StatusForbidden)
		return
	}
	ws, err := websocket.Accept(rw, r, &websocket.AcceptOptions{
		Subprotocols:       WSSubprotocols,
		InsecureSkipVerify: true, // checked above
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		w.refHandshake.Add(1)
		log.Info("websocket upgrade refused", "err", err)
		return // Accept answered the request
	}
	raw, _ := r.Context().Value(rawConnKey{}).(net.Conn)
	c := newWSConn(ws, raw, &w.textMsgs)
	select {
	case w.conns <- c:
		w.upgraded.Add(1)
		log.Debug("websocket connection upgraded", "subprotocol", ws.Subprotocol())
	case <-w.done:
		c.closeNow()
	}
}

// offersSubprotocol reports whether the request offers an MQTT
// subprotocol.
func offersSubprotocol(r *http.Request) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			for _, want := range WSSubprotocols {
				if strings.EqualFold(strings.TrimSpace(p), want) {
					return true
				}
			}
		}
	}
	return false
}

// checkOrigin applies the origin rule (see the header comment).
func (w *WSListener) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("origin %q is not a URL with a host", origin)
	}
	if strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	for _, p := range w.opts.OriginPatterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return nil
		}
	}
	return fmt.Errorf("origin %q is not allowed for host %q", u.Host, r.Host)
}

// ValidateOriginPatterns checks the syntax of origin patterns.
func ValidateOriginPatterns(ps []string) error {
	for _, p := range ps {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("origin pattern %q: %w", p, err)
		}
	}
	return nil
}

// tlsErrorCounter counts the http.Server's TLS handshake errors on their
// way to the log.
type tlsErrorCounter struct {
	slog.Handler
	n *atomic.Uint64
}

func (h *tlsErrorCounter) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "TLS handshake error") {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

// errTextMessage ends a connection that sent a text message.
var errTextMessage = errors.New("websocket: text message received; MQTT uses binary messages only")

// wsConn is an upgraded connection as a net.Conn.
type wsConn struct {
	ws  *websocket.Conn
	raw net.Conn // the socket under it, closed when the peer does not answer the close

	rmu    sync.Mutex // one Read at a time
	chunks chan []byte
	free   chan struct{}
	rest   []byte
	rerr   error // the pump's end; valid once chunks is closed
	rdl    deadline

	wmu sync.Mutex
	wdl atomic.Int64 // write deadline, UnixNano; 0 = none

	closeOnce sync.Once
	closed    chan struct{}
	pumpDone  chan struct{}
	texts     *atomic.Uint64
	code      atomic.Int32 // close status to send (StatusNormalClosure unless a violation)
}

func newWSConn(ws *websocket.Conn, raw net.Conn, texts *atomic.Uint64) *wsConn {
	ws.SetReadLimit(-1) // a stream: the MQTT reader bounds the packet size
	c := &wsConn{
		ws:       ws,
		raw:      raw,
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

// pump reads the messages and hands their bytes to Read, one chunk at a
// time.
func (c *wsConn) pump() {
	defer close(c.pumpDone)
	defer close(c.chunks)
	buf := make([]byte, wsChunk)
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			c.rerr = readErr(err)
			return
		}
		if typ != websocket.MessageBinary {
			c.texts.Add(1)
			c.code.Store(int32(websocket.StatusUnsupportedData))
			c.rerr = errTextMessage
			return
		}
		for {
			n, err := r.Read(buf)
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
				c.rerr = readErr(err)
				return
			}
		}
	}
}

// readErr maps the library's errors: a normal close is EOF.
func readErr(err error) error {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
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
	if len(c.rest) == 0 {
		c.rest = nil
		select {
		case c.free <- struct{}{}:
		case <-c.closed:
		}
	}
	return n, nil
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

// Close does the close handshake, bounded by wsCloseWait.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		code := websocket.StatusCode(c.code.Load())
		reason := ""
		if code == websocket.StatusUnsupportedData {
			reason = "MQTT uses binary messages"
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = c.ws.Close(code, reason)
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
