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
//     read: a client cannot make the server buffer more than that. It hands
//     up frame payload as it arrives (it reads no more than the frame filter
//     has seen arrive), never waiting for the rest of a frame or a full
//     chunk: packets need not align with frames (MQTT-6.0.0-2).
//   - The close status says why (RFC 6455 §7.4.1): 1002 for an unmasked
//     frame or a 64-bit length with the top bit set, 1003 for a text
//     message, 1007 for a close reason that is not UTF-8, 1009 for an MQTT
//     packet over the broker's maximum (SetMaxPacketSize; the broker's own
//     answer, a 5.0 DISCONNECT 0x95, goes first), else 1000. The first
//     cause found wins. A close frame from the client, whatever its valid
//     code, is the orderly end of the stream (EOF).
//   - The connection limits (ConnLimiter.Wrap) count the TCP sockets under
//     the HTTP server, from accept: a socket over a bound is refused at once,
//     before any byte of HTTP or TLS, and an upgraded connection keeps the
//     one slot its socket took. The HTTP server does no keep-alive: a
//     request that is not an upgrade gets its answer with "Connection:
//     close", and its socket is closed. Request headers not complete within
//     HandshakeTimeout close the socket; that is counted and logged (gated,
//     like the unknown-path line: the first at once, then at most one line
//     per loggate.Every with the count).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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

	"github.com/cairn-mqtt/cairn/engine/loggate"
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
	HeaderTimeouts    uint64 // sockets closed because the request headers did not arrive within HandshakeTimeout
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

	// The HTTP server accepts once the limiter is settled (ready closed):
	// by ConnLimiter.Wrap, or without limits by the first Accept.
	startMu sync.Mutex
	started bool
	lim     *ConnLimiter // nil: no limits on the sockets
	ready   chan struct{}

	pathGate, timeoutGate loggate.Gate
	sockClosed            atomic.Pointer[func(net.Conn)] // tests: told after connState handled a closed socket

	upgraded, refProto, refOrigin, refHandshake, refPath, textMsgs, tlsFailed, hdrTimeouts atomic.Uint64
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
		ready:  make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc(o.Path, w.upgrade)
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		w.refPath.Add(1)
		if n, ok := w.pathGate.Pass(time.Now()); ok {
			w.log.Info("websocket request for an unknown path refused", "remote", r.RemoteAddr, "path", r.URL.Path, "want", o.Path, "refused", n)
		}
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
		ConnState: w.connState,
		ErrorLog:  slog.NewLogLogger(&tlsErrorCounter{Handler: w.log.Handler(), n: &w.tlsFailed}, slog.LevelInfo),
	}
	// One request per socket: an upgrade, or a refusal with "Connection:
	// close" (net/http keeps "Connection: Upgrade" on a 101).
	w.srv.SetKeepAlivesEnabled(false)
	var sl net.Listener = &wsSockListener{w: w, Listener: l}
	if o.TLS != nil {
		sl = tls.NewListener(sl, o.TLS)
	}
	go func() {
		defer close(w.served)
		_ = w.srv.Serve(sl) // ends with Close
	}()
	return w
}

// Accept returns the next upgraded connection; net.ErrClosed after Close.
// Without ConnLimiter.Wrap before it, the sockets are not limited.
func (w *WSListener) Accept() (net.Conn, error) {
	w.limitWith(nil)
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

// limitWith settles the limiter of the sockets (nil: none) and lets the
// HTTP server accept. Only the first call decides: it reports whether lim is
// the limiter in force.
func (w *WSListener) limitWith(lim *ConnLimiter) bool {
	w.startMu.Lock()
	defer w.startMu.Unlock()
	if !w.started {
		w.started, w.lim = true, lim
		close(w.ready)
	}
	return w.lim == lim
}

// wsSockListener is the WSListener's TCP socket as the HTTP server sees it:
// it waits until the limiter is settled, admits sockets through it, and
// wraps each one in a wsSock.
type wsSockListener struct {
	net.Listener
	w     *WSListener
	once  sync.Once
	inner net.Listener // Listener, limited if the WSListener is
}

func (l *wsSockListener) Accept() (net.Conn, error) {
	select {
	case <-l.w.ready:
	case <-l.w.done:
		return nil, fmt.Errorf("websocket: accept on %s: %w", l.Addr(), net.ErrClosed)
	}
	l.once.Do(func() {
		l.inner = l.Listener
		if lim := l.w.lim; lim != nil { // set before ready was closed
			l.inner = lim.Wrap(l.Listener)
		}
	})
	c, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	return &wsSock{Conn: c}, nil
}

// wsSock is an accepted socket of the HTTP server (under TLS for wss). It
// notes a read that timed out before a request was read: the header
// timeout, or for wss possibly the TLS handshake's (connState tells them
// apart).
type wsSock struct {
	net.Conn
	active, timedOut atomic.Bool
}

func (s *wsSock) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if err != nil && !s.active.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		s.timedOut.Store(true)
	}
	return n, err
}

// Unwrap returns the socket under the limiter's wrapper (a *net.TCPConn):
// what the broker looks for under a connection (TLS state, TCP keep-alive).
func (s *wsSock) Unwrap() net.Conn {
	if lc, ok := s.Conn.(*limitedConn); ok {
		return lc.Conn
	}
	return s.Conn
}

// sockOf returns the wsSock of a connection of the HTTP server, or nil.
func sockOf(c net.Conn) *wsSock {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	s, _ := c.(*wsSock)
	return s
}

// connState follows the HTTP server's sockets: a socket closed after a
// read timed out before any request was read is a header timeout, counted
// and logged (gated). A TLS handshake that timed out is not: the server
// logs it as a handshake failure (HandshakeFailures).
func (w *WSListener) connState(c net.Conn, st http.ConnState) {
	s := sockOf(c)
	if s == nil {
		return
	}
	switch st {
	case http.StateActive, http.StateHijacked:
		s.active.Store(true)
	case http.StateClosed:
		if f := w.sockClosed.Load(); f != nil {
			defer (*f)(c)
		}
		if !s.timedOut.Load() {
			return
		}
		if tc, ok := c.(*tls.Conn); ok && !tc.ConnectionState().HandshakeComplete {
			return
		}
		w.hdrTimeouts.Add(1)
		if n, ok := w.timeoutGate.Pass(time.Now()); ok {
			w.log.Warn("websocket socket closed: the request headers did not arrive in time", "remote", c.RemoteAddr().String(), "timeout", w.opts.HandshakeTimeout, "closed", n)
		}
	}
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
		HeaderTimeouts:    w.hdrTimeouts.Load(),
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
	hj := &filterHijacker{ResponseWriter: rw}
	ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
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
	c := newWSConn(ws, raw, hj.f, &w.textMsgs)
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
