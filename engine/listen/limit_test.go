package listen

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
)

// limitEnv is a LimitedListener on loopback whose accepted connections are
// handed to the test.
type limitEnv struct {
	l        *LimitedListener
	accepted chan net.Conn
}

func newLimitEnv(t *testing.T, maxTotal, maxPerIP int) *limitEnv {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &limitEnv{l: LimitListener(tcp, maxTotal, maxPerIP), accepted: make(chan net.Conn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := e.l.Accept()
			if err != nil {
				return
			}
			e.accepted <- c
		}
	}()
	t.Cleanup(func() {
		e.l.Close()
		<-done
		close(e.accepted)
		for c := range e.accepted {
			c.Close()
		}
	})
	return e
}

// dial connects from the local address from (empty: any) and returns the
// client side (nil if refused before the dial returned) and, if the listener
// kept the connection, the server side (nil if it was refused).
func (e *limitEnv) dial(t *testing.T, from string) (client, server net.Conn) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", e.l.Addr().String())
	if errors.Is(err, syscall.ECONNRESET) {
		return nil, nil // refused before the dial returned
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A refused connection is reset at once; a kept one stays silent.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	select {
	case s := <-e.accepted:
		_ = c.SetReadDeadline(time.Now()) // stop the reader
		<-readErr
		_ = c.SetReadDeadline(time.Time{})
		return c, s
	case err := <-readErr:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection neither accepted nor refused")
		}
		return c, nil
	}
}

func TestLimitListener(t *testing.T) {
	e := newLimitEnv(t, 3, 2)
	_, s1 := e.dial(t, "127.0.0.1")
	_, s2 := e.dial(t, "127.0.0.1")
	if s1 == nil || s2 == nil {
		t.Fatal("connections within the limits refused")
	}
	if _, s := e.dial(t, "127.0.0.1"); s != nil {
		t.Fatal("third connection from one address accepted")
	}
	if st := e.l.Stats(); st.Active != 2 || st.Sources != 1 || st.Accepted != 2 || st.RejectedPerIP != 1 || st.RejectedTotal != 0 {
		t.Fatalf("stats %+v", st)
	}

	// Another address may connect, up to the total.
	_, s3 := e.dial(t, "127.0.0.2")
	if s3 == nil {
		t.Skip("cannot dial from 127.0.0.2 on this system")
	}
	if _, s := e.dial(t, "127.0.0.3"); s != nil {
		t.Fatal("connection over the total accepted")
	}
	if st := e.l.Stats(); st.Active != 3 || st.Sources != 2 || st.RejectedTotal != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Closing gives the slot back, once however often Close is called.
	s1.Close()
	s1.Close()
	if st := e.l.Stats(); st.Active != 2 {
		t.Fatalf("after close: %+v", st)
	}
	_, s4 := e.dial(t, "127.0.0.1")
	if s4 == nil {
		t.Fatal("slot not given back")
	}
	if _, s := e.dial(t, "127.0.0.1"); s != nil {
		t.Fatal("limits lost after a close") // total full again (and .1 at its limit)
	}
	s3.Close()
	if _, s := e.dial(t, "127.0.0.1"); s != nil {
		t.Fatal("per-address limit lost after a close")
	}
	s2.Close()
	s4.Close()
	if st := e.l.Stats(); st.Active != 0 || st.Sources != 0 || st.Accepted != 4 || st.RejectedTotal != 2 || st.RejectedPerIP != 2 {
		t.Fatalf("final stats %+v", st)
	}
}

func TestLimitListenerUnlimited(t *testing.T) {
	e := newLimitEnv(t, 0, 0)
	var conns []net.Conn
	for range 10 {
		_, s := e.dial(t, "")
		if s == nil {
			t.Fatal("refused without limits")
		}
		conns = append(conns, s)
	}
	for _, c := range conns {
		c.Close()
	}
	if st := e.l.Stats(); st.Active != 0 || st.Accepted != 10 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLimitListenerConcurrentClose(t *testing.T) {
	e := newLimitEnv(t, 100, 100)
	var conns []net.Conn
	for range 20 {
		_, s := e.dial(t, "")
		conns = append(conns, s)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Close()
			}()
		}
	}
	wg.Wait()
	if st := e.l.Stats(); st.Active != 0 || st.Sources != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLimitedTLS: the limits under TLS, and the TLS state found through the
// wrapper.
func TestLimitedTLS(t *testing.T) {
	ca := newCA(t, "ca")
	dir := t.TempDir()
	cert, key := ca.server(t, "s")
	tl, err := NewTLS(TLSOptions{CertFile: writeTemp(t, dir, "c", cert), KeyFile: writeTemp(t, dir, "k", key)})
	if err != nil {
		t.Fatal(err)
	}
	e := newLimitEnv(t, 1, 1)
	client, s := e.dial(t, "")
	if s == nil {
		t.Fatal("refused")
	}
	srv := tls.Server(s, tl.Config())
	defer srv.Close()
	_ = srv.SetDeadline(time.Now().Add(5 * time.Second))
	cl := tls.Client(client, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	errc := make(chan error, 1)
	go func() { errc <- cl.Handshake() }()
	serr := srv.Handshake()
	if cerr := <-errc; serr != nil || cerr != nil {
		t.Fatalf("handshake: server %v, client %v", serr, cerr)
	}
	st := ConnectionState(srv)
	if st == nil || !st.HandshakeComplete {
		t.Fatal("no TLS state")
	}
	if ConnectionState(s) != nil || ConnectionState(nil) != nil {
		t.Fatal("TLS state of a plain connection")
	}
	if _, refused := e.dial(t, ""); refused != nil {
		t.Fatal("over the limit under TLS")
	}
}

func TestRemoteIP(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 1}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "eth0"}, "fe80::1"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, "2001:db8::1"},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, "invalid IP"},
		{nil, "invalid IP"},
		{fakeAddr("[2001:db8::2]:1883"), "2001:db8::2"},
	} {
		if got := RemoteIP(tc.addr).String(); got != tc.want {
			t.Errorf("RemoteIP(%v) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if RemoteIP(fakeAddr("x")) != (netip.Addr{}) {
		t.Error("garbage address parsed")
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "fake" }
func (a fakeAddr) String() string  { return string(a) }

// TestSharedLimiter: one limiter over two listeners bounds their sum.
func TestSharedLimiter(t *testing.T) {
	lim := NewConnLimiter(2, 0)
	var ls []*LimitedListener
	for range 2 {
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l := lim.Wrap(tcp)
		t.Cleanup(func() { l.Close() })
		ls = append(ls, l)
	}
	accept := func(l *LimitedListener) chan net.Conn {
		ch := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				ch <- c
			}
			close(ch)
		}()
		return ch
	}
	var kept []net.Conn
	for _, l := range ls {
		ch := accept(l)
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := <-ch
		if s == nil {
			t.Fatal("not accepted")
		}
		kept = append(kept, s)
	}
	// A third connection, on either listener, is over the shared bound: the
	// accepting listener resets it and waits for the next one.
	third := accept(ls[0])
	c, err := net.Dial("tcp", ls[0].Addr().String())
	if err == nil { // the reset may come before or after the dial returns
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("read data from a refused connection")
		}
	}
	for deadline := time.Now().Add(5 * time.Second); lim.Stats().RejectedTotal == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if st := lim.Stats(); st.Active != 2 || st.RejectedTotal != 1 {
		t.Fatalf("stats %+v", st)
	}
	kept[0].Close()
	kept[0].Close()
	if st := ls[1].Stats(); st.Active != 1 {
		t.Fatalf("after close: %+v", st)
	}
	kept[1].Close()
	ls[0].Close()
	if s := <-third; s != nil {
		t.Fatal("the refused connection was handed out")
	}
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1883}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.3.2.1"), Port: 1883}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1883}, true},
		{&net.TCPAddr{IP: net.ParseIP("0.0.0.0"), Port: 1883}, false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 1883}, false},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1883}, false},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, false},
	} {
		if got := IsLoopback(tc.addr); got != tc.want {
			t.Errorf("IsLoopback(%v) = %v", tc.addr, got)
		}
	}
}
