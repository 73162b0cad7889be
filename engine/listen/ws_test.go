package listen

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsEnv is a WebSocket listener whose accepted connections go to conns.
type wsEnv struct {
	l     *WSListener
	conns chan net.Conn
}

func newWSEnv(t *testing.T, o WSOptions) *wsEnv {
	t.Helper()
	l, err := ListenWS("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	e := &wsEnv{l: l, conns: make(chan net.Conn, 16)}
	done := make(chan struct{})
	var accepted []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("accept: %v", err)
				}
				return
			}
			accepted = append(accepted, c)
			e.conns <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range accepted {
			c.Close()
		}
	})
	return e
}

func (e *wsEnv) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-e.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted within 5s")
		return nil
	}
}

func dialWS(t *testing.T, url string, o *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, o)
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// TestWSStream: the negotiated subprotocol is the MQTT one the client
// offered; bytes flow both ways as a stream however the client splits its
// messages; every Write is one binary message; the remote address is the
// client's.
func TestWSStream(t *testing.T) {
	e := newWSEnv(t, WSOptions{})
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"mqtt"}, "mqtt"},
		{[]string{"mqttv3.1"}, "mqttv3.1"},
		{[]string{"chat", "mqttv3.1", "mqtt"}, "mqtt"},
	} {
		t.Run(strings.Join(tc.offer, ","), func(t *testing.T) {
			cc, _, err := dialWS(t, e.l.URL(), &websocket.DialOptions{Subprotocols: tc.offer})
			if err != nil {
				t.Fatal(err)
			}
			if cc.Subprotocol() != tc.want {
				t.Fatalf("negotiated %q, want %q", cc.Subprotocol(), tc.want)
			}
			sc := e.accept(t)
			if sc.RemoteAddr().String() == "websocket" || !strings.HasPrefix(sc.RemoteAddr().String(), "127.0.0.1:") {
				t.Fatalf("RemoteAddr %v, want the client's TCP address", sc.RemoteAddr())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// One "packet" split over two messages, then two in one.
			for _, m := range []string{"\x10\x05ab", "cde", "\xc0\x00\xd0\x00"} {
				if err := cc.Write(ctx, websocket.MessageBinary, []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			got := make([]byte, 11)
			_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(sc, got); err != nil {
				t.Fatal(err)
			}
			if string(got) != "\x10\x05abcde\xc0\x00\xd0\x00" {
				t.Fatalf("server read %q", got)
			}
			if _, err := sc.Write([]byte("\x20\x02\x00\x00")); err != nil {
				t.Fatal(err)
			}
			typ, msg, err := cc.Read(ctx)
			if err != nil || typ != websocket.MessageBinary || string(msg) != "\x20\x02\x00\x00" {
				t.Fatalf("client read %v %q %v, want one binary message", typ, msg, err)
			}
			// A normal close from the client is EOF on the server.
			cc.Close(websocket.StatusNormalClosure, "")
			if _, err := sc.Read(got); !errors.Is(err, io.EOF) {
				t.Fatalf("after the client's close: %v, want EOF", err)
			}
			sc.Close()
		})
	}
	if st := e.l.Stats(); st.Upgraded != 3 {
		t.Fatalf("stats %+v, want 3 upgraded", st)
	}
}

// TestWSRefusals: no MQTT subprotocol (400), a foreign origin (403), another
// path (404) and a plain HTTP request are refused and counted; allowed
// origins pass.
func TestWSRefusals(t *testing.T) {
	e := newWSEnv(t, WSOptions{OriginPatterns: []string{"app.example.org", "*.trusted.example"}})
	mqtt := &websocket.DialOptions{Subprotocols: []string{"mqtt"}}
	status := func(resp *http.Response) int {
		if resp == nil {
			return 0
		}
		return resp.StatusCode
	}

	_, resp, err := dialWS(t, e.l.URL(), &websocket.DialOptions{Subprotocols: []string{"chat"}})
	if err == nil || status(resp) != http.StatusBadRequest {
		t.Fatalf("without an MQTT subprotocol: %v (HTTP %d), want 400", err, status(resp))
	}
	_, resp, err = dialWS(t, e.l.URL(), nil)
	if err == nil || status(resp) != http.StatusBadRequest {
		t.Fatalf("without any subprotocol: %v (HTTP %d), want 400", err, status(resp))
	}
	for origin, ok := range map[string]bool{
		"https://evil.example":          false,
		"http://app.example.org":        true,
		"http://x.trusted.example":      true,
		"http://" + e.l.Addr().String(): true, // same origin
		"http://127.0.0.1:1":            false,
	} {
		cc, resp, err := dialWS(t, e.l.URL(), &websocket.DialOptions{Subprotocols: []string{"mqtt"}, HTTPHeader: http.Header{"Origin": {origin}}})
		switch {
		case ok && err != nil:
			t.Errorf("origin %s: %v, want it accepted", origin, err)
		case !ok && (err == nil || status(resp) != http.StatusForbidden):
			t.Errorf("origin %s: %v (HTTP %d), want 403", origin, err, status(resp))
		case ok:
			cc.CloseNow() // the server's close then needs no answer
			e.accept(t).Close()
		}
	}
	_, resp, err = dialWS(t, "ws://"+e.l.Addr().String()+"/other", mqtt)
	if err == nil || status(resp) != http.StatusNotFound {
		t.Fatalf("another path: %v (HTTP %d), want 404", err, status(resp))
	}
	r, err := http.Get("http://" + e.l.Addr().String() + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET /mqtt: HTTP %d", r.StatusCode)
	}
	st := e.l.Stats()
	if st.RefusedProtocol != 3 || st.RefusedOrigin != 2 || st.RefusedNotFound != 1 || st.Upgraded != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestWSTextMessage: a text message is a read error on the server, and the
// client is told 1003 (unsupported data) when the server closes.
func TestWSTextMessage(t *testing.T) {
	e := newWSEnv(t, WSOptions{})
	cc, _, err := dialWS(t, e.l.URL(), &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	sc := e.accept(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cc.Write(ctx, websocket.MessageText, []byte("\x10\x00")); err != nil {
		t.Fatal(err)
	}
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := sc.Read(make([]byte, 8)); !errors.Is(err, errTextMessage) {
		t.Fatalf("server read %v, want the text-message error", err)
	}
	closed := make(chan struct{})
	go func() { sc.Close(); close(closed) }()
	_, _, err = cc.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("client read %v, want close status 1003", err)
	}
	<-closed
	if e.l.Stats().BinaryViolations != 1 {
		t.Fatalf("stats %+v", e.l.Stats())
	}
}

// TestWSReadDeadline: an expired read deadline interrupts Read without
// closing the connection: the server still writes and reads afterwards.
func TestWSReadDeadline(t *testing.T) {
	e := newWSEnv(t, WSOptions{})
	cc, _, err := dialWS(t, e.l.URL(), &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	sc := e.accept(t)
	buf := make([]byte, 8)
	_ = sc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err = sc.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the deadline took %v", d)
	}
	// A deadline in the past set while a Read waits interrupts it too.
	errc := make(chan error, 1)
	_ = sc.SetReadDeadline(time.Time{})
	go func() { _, err := sc.Read(buf); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	_ = sc.SetReadDeadline(time.Unix(1, 0))
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("interrupted read: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sc.Write([]byte("\xe0\x00")); err != nil {
		t.Fatalf("write after the read deadline: %v", err)
	}
	if _, msg, err := cc.Read(ctx); err != nil || string(msg) != "\xe0\x00" {
		t.Fatalf("client read %q %v", msg, err)
	}
	_ = sc.SetReadDeadline(time.Time{})
	if err := cc.Write(ctx, websocket.MessageBinary, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if n, err := sc.Read(buf); err != nil || string(buf[:n]) != "ok" {
		t.Fatalf("read after clearing the deadline: %q %v", buf[:n], err)
	}
	// An expired write deadline fails the write.
	_ = sc.SetWriteDeadline(time.Unix(1, 0))
	if _, err := sc.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v", err)
	}
	cc.CloseNow()
	sc.Close()
}

// TestWSCloseUnresponsivePeer: Close does not wait for a peer that never
// answers the close handshake longer than wsCloseWait.
func TestWSCloseUnresponsivePeer(t *testing.T) {
	e := newWSEnv(t, WSOptions{})
	raw, err := net.Dial("tcp", e.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	req := "GET /mqtt HTTP/1.1\r\nHost: " + e.l.Addr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	if _, err := raw.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "mqtt" {
		t.Fatalf("upgrade answered %s, protocol %q", resp.Status, resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	sc := e.accept(t)
	start := time.Now()
	sc.Close() // the raw client never answers the close frame
	if d := time.Since(start); d > wsCloseWait+time.Second {
		t.Fatalf("Close took %v, want at most about %v", d, wsCloseWait)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("the socket was not closed: %v", err)
	}
}

// TestWSS: the same over TLS.
func TestWSS(t *testing.T) {
	tl, ca := wsTLS(t)
	e := newWSEnv(t, WSOptions{TLS: tl.Config()})
	if !strings.HasPrefix(e.l.URL(), "wss://") {
		t.Fatalf("URL %s", e.l.URL())
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	cc, _, err := dialWS(t, e.l.URL(), &websocket.DialOptions{Subprotocols: []string{"mqtt"}, HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	sc := e.accept(t)
	if _, ok := sc.(*wsConn).Unwrap().(*tls.Conn); !ok {
		t.Fatalf("the socket under a wss connection is %T, want *tls.Conn", sc.(*wsConn).Unwrap())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cc.Write(ctx, websocket.MessageBinary, []byte("\xc0\x00")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "\xc0\x00" {
		t.Fatalf("read %q %v", buf, err)
	}
	cc.CloseNow()
	sc.Close()

	// A client that does not trust the certificate fails the handshake,
	// which is counted.
	if _, _, err := dialWS(t, e.l.URL(), &websocket.DialOptions{Subprotocols: []string{"mqtt"}}); err == nil {
		t.Fatal("a client without the CA connected")
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.l.Stats().HandshakeFailures == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.l.Stats().HandshakeFailures == 0 {
		t.Fatalf("stats %+v, want a handshake failure", e.l.Stats())
	}
}

func TestValidateOriginPatterns(t *testing.T) {
	if err := ValidateOriginPatterns([]string{"*.example.org", "localhost:*", "https://x.org"}); err != nil {
		t.Fatal(err)
	}
	if err := ValidateOriginPatterns([]string{"[bad"}); err == nil || !strings.Contains(err.Error(), "[bad") {
		t.Fatalf("bad pattern: %v", err)
	}
}

// TestWSConnLimit: a ConnLimiter wrapping a WebSocket listener counts its
// TCP sockets: an upgraded connection holds one slot (not two), a socket
// over the limit is refused at accept, before the upgrade (reset, no 101),
// and counted, and the slot is free again once the admitted one closes.
func TestWSConnLimit(t *testing.T) {
	l, lim, conns := limitedWS(t, 1, 0)
	mqtt := &websocket.DialOptions{Subprotocols: []string{"mqtt"}}

	first, _, err := dialWS(t, l.URL(), mqtt)
	if err != nil {
		t.Fatal(err)
	}
	var admitted net.Conn
	select {
	case admitted = <-conns:
	case <-time.After(5 * time.Second):
		t.Fatal("the first connection was not accepted")
	}
	if _, ok := admitted.(*wsConn); !ok {
		t.Fatalf("accepted a %T, want the WebSocket connection itself", admitted)
	}
	if s := lim.Stats(); s.Active != 1 {
		t.Fatalf("limiter %+v, want the upgraded connection counted once", s)
	}
	// The second is refused before any HTTP: the dial fails with no answer.
	if _, resp, err := dialWS(t, l.URL(), mqtt); err == nil || resp != nil {
		t.Fatalf("the connection over the limit: %v, response %v; want it refused before the upgrade", err, resp)
	}
	if s := lim.Stats(); s.RejectedTotal != 1 || s.Active != 1 {
		t.Fatalf("limiter %+v, want 1 rejected, 1 active", s)
	}
	// Once the first is closed, a new one is admitted.
	first.CloseNow()
	admitted.Close()
	waitFor(t, "the slot freed", func() bool { return lim.Stats().Active == 0 })
	third, _, err := dialWS(t, l.URL(), mqtt)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-conns:
		third.CloseNow() // first, so that the server's close does not wait for an answer
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatalf("no connection admitted after the slot was freed: %+v", lim.Stats())
	}
	waitFor(t, "the slot freed", func() bool { return lim.Stats().Active == 0 })
}

// limitedWS listens for WebSockets under a ConnLimiter (lim) of maxTotal
// and maxPerIP and hands the upgraded connections it accepts to the channel;
// the listener is closed when the test ends.
func limitedWS(t *testing.T, maxTotal, maxPerIP int) (*WSListener, *ConnLimiter, <-chan net.Conn) {
	t.Helper()
	l, err := ListenWS("127.0.0.1:0", WSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lim := NewConnLimiter(maxTotal, maxPerIP)
	ll := lim.Wrap(l)
	conns := make(chan net.Conn, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ll.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l, lim, conns
}

// wsTLS is a TLS setup with a server certificate from a fresh test CA,
// and the CA for the clients.
func wsTLS(t *testing.T) (*TLS, *testCA) {
	t.Helper()
	ca := newCA(t, "ws CA")
	dir := t.TempDir()
	cert, key := ca.server(t, "ws server")
	tl, err := NewTLS(TLSOptions{CertFile: writeTemp(t, dir, "s.crt", cert), KeyFile: writeTemp(t, dir, "s.key", key)})
	if err != nil {
		t.Fatal(err)
	}
	return tl, ca
}
