package listen

import (
	"bufio"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cairn-mqtt/cairn/store/storetest"
)

// TestWSPreUpgradeLimit: sockets that have not upgraded count toward the
// limits too: the one over the per-address bound is refused at accept, and
// a slot freed by a socket that goes away takes a WebSocket again.
func TestWSPreUpgradeLimit(t *testing.T) {
	l, lim, conns := limitedWS(t, 0, 2)

	var slow []net.Conn
	for range 2 {
		c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n")); err != nil { // and no more
			t.Fatal(err)
		}
		slow = append(slow, c)
	}
	waitFor(t, "two sockets admitted", func() bool { return lim.Stats().Active == 2 })
	third, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err == nil {
		defer third.Close()
		readsToEOF(t, third)
	}
	if s := lim.Stats(); s.RejectedPerIP != 1 || s.Active != 2 {
		t.Fatalf("limiter %+v, want 1 refused for the address, 2 active", s)
	}
	slow[0].Close()
	waitFor(t, "the slot freed", func() bool { return lim.Stats().Active == 1 })
	cc, _, err := dialWS(t, l.URL(), &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-conns:
		cc.CloseNow()
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
	}
}

// TestWSNoKeepAlive: a request that is not an upgrade gets its answer with
// "Connection: close" and the socket is closed: a second request on it is
// not served. The unknown-path log line is gated: one line for a burst.
func TestWSNoKeepAlive(t *testing.T) {
	logs := &storetest.LogBuffer{}
	e := newWSEnv(t, WSOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	for _, path := range []string{"/", "/mqtt", "/other"} {
		c, err := net.DialTimeout("tcp", e.l.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"
		if _, err := c.Write([]byte(req + req)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 4 || !resp.Close { // Close: "Connection: close" (ReadResponse takes the header out)
			t.Fatalf("GET %s: %s, close %v; want a refusal with Connection: close", path, resp.Status, resp.Close)
		}
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("GET %s: the socket stayed open: %v", path, err)
		}
		if len(rest) != 0 {
			t.Fatalf("GET %s: more after the answer: %q", path, rest)
		}
	}
	if st := e.l.Stats(); st.RefusedNotFound != 2 {
		t.Fatalf("stats %+v, want 2 not found", st)
	}
	if n := logs.Count("unknown path"); n != 1 {
		t.Fatalf("%d unknown-path log lines for 2 requests, want 1:\n%s", n, logs.String())
	}
}

// TestWSHeaderTimeout: a socket whose request headers do not arrive within
// HandshakeTimeout is closed, counted, and logged at warn through a gate;
// sockets served in time, or closed by the client, are not counted. Over
// wss, a stalled TLS handshake counts as a handshake failure, not twice.
func TestWSHeaderTimeout(t *testing.T) {
	tl, ca := wsTLS(t)
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{{"ws", nil}, {"wss", tl.Config()}} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &storetest.LogBuffer{}
			e := newWSEnv(t, WSOptions{TLS: tc.tls, HandshakeTimeout: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			dial := func() net.Conn {
				c, err := net.DialTimeout("tcp", e.l.Addr().String(), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				if tc.tls != nil {
					tc := tls.Client(c, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
					_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
					if err := tc.Handshake(); err != nil {
						t.Fatal(err)
					}
					return tc
				}
				return c
			}
			// Closed by the client, and served in time: not counted.
			dial().Close()
			c := dial()
			if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			readsToEOF(t, c)
			// Two slow ones.
			for range 2 {
				c := dial()
				if _, err := c.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n")); err != nil {
					t.Fatal(err)
				}
				readsToEOF(t, c)
			}
			waitFor(t, "2 header timeouts", func() bool { return e.l.Stats().HeaderTimeouts == 2 })

			if n := logs.Count("level=WARN msg=\"websocket socket closed: the request headers did not arrive in time\""); n != 1 {
				t.Fatalf("%d header-timeout lines for 2, want 1:\n%s", n, logs.String())
			}
			if tc.tls == nil {
				return
			}
			// A TCP connection that never starts TLS.
			raw, err := net.DialTimeout("tcp", e.l.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			closed := make(chan struct{}, 1)
			seen := func(c net.Conn) {
				if c.RemoteAddr().String() == raw.LocalAddr().String() {
					closed <- struct{}{}
				}
			}
			e.l.sockClosed.Store(&seen)
			readsToEOF(t, raw)
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("the socket's close was not seen")
			}
			if st := e.l.Stats(); st.HeaderTimeouts != 2 || st.HandshakeFailures != 1 {
				t.Fatalf("stats %+v: a TLS handshake timeout counted as a header timeout", st)
			}
		})
	}
}
