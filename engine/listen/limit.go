package listen

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// Connection limits.
//
// Invariants:
//   - A ConnLimiter counts every connection it admitted until that
//     connection's first Close, whichever listener it came from: the bounds
//     are global when several listeners share one limiter.
//   - A connection over either bound is closed at once, before a byte is read
//     or a TLS handshake is started (with a TCP reset, so that a flood leaves
//     no TIME_WAIT sockets behind), and counted; Accept goes on to the next.
//   - The per-address map holds only addresses with open connections, so it
//     is bounded by the number of open connections.
//   - A WSListener is limited by its TCP sockets (Wrap), from accept: an
//     HTTP request that never becomes a WebSocket counts too, and an
//     upgraded connection holds its socket's slot, counted once.

// ConnLimiter bounds the connections open at once, in total and per source
// IP address, over any number of listeners. It is safe for concurrent use.
type ConnLimiter struct {
	maxTotal, maxPerIP int

	mu     sync.Mutex
	active int
	perIP  map[netip.Addr]int

	accepted, rejectedTotal, rejectedPerIP atomic.Uint64

	// refused, if set, is told of every connection closed for a bound
	// (perIP: the per-address one), after the close; see OnRefused.
	refused func(ip netip.Addr, perIP bool)
}

// OnRefused sets fn to be told of every connection the limiter refuses
// (perIP: for the per-address bound, else for the total), after it is
// closed, on the accepting goroutine (the broker logs them). Set it before
// the limiter's listeners accept.
func (lim *ConnLimiter) OnRefused(fn func(ip netip.Addr, perIP bool)) { lim.refused = fn }

// NewConnLimiter returns a limiter of at most maxTotal connections at once
// (<= 0: no limit) and at most maxPerIP from one IP address (<= 0: no limit;
// the address is compared exactly, IPv4-mapped IPv6 as IPv4). Connections
// whose remote address has no IP (Unix sockets) count only toward maxTotal.
func NewConnLimiter(maxTotal, maxPerIP int) *ConnLimiter {
	return &ConnLimiter{maxTotal: maxTotal, maxPerIP: maxPerIP, perIP: make(map[netip.Addr]int)}
}

// Wrap returns l limited by the limiter. Put it under the TLS listener
// (tls.NewListener(lim.Wrap(tcp), cfg)) so that refused connections cost no
// handshake.
//
// A *WSListener not yet accepting is limited underneath, by its TCP
// sockets, under its HTTP server and TLS (see ws.go), and its upgraded
// connections pass through the returned listener as they are. (Wrapped
// after its first Accept, or by a second limiter, only its upgraded
// connections are counted.)
func (lim *ConnLimiter) Wrap(l net.Listener) *LimitedListener {
	if w, ok := l.(*WSListener); ok && w.limitWith(lim) {
		return &LimitedListener{Listener: l, lim: lim, under: true}
	}
	return &LimitedListener{Listener: l, lim: lim}
}

// LimitedListener is a net.Listener whose connections a ConnLimiter bounds.
type LimitedListener struct {
	net.Listener
	lim   *ConnLimiter
	under bool // the wrapped listener applies the limiter itself
}

// LimitStats are a ConnLimiter's counters.
type LimitStats struct {
	Active        int    // connections open now
	Sources       int    // distinct source addresses among them
	Accepted      uint64 // connections handed out by Accept
	RejectedTotal uint64 // closed because maxTotal connections were open
	RejectedPerIP uint64 // closed because maxPerIP connections from the address were open
}

// LimitListener wraps l with a limiter of its own (see NewConnLimiter).
func LimitListener(l net.Listener, maxTotal, maxPerIP int) *LimitedListener {
	return NewConnLimiter(maxTotal, maxPerIP).Wrap(l)
}

// Accept returns the next connection within the limits. Its errors are
// those of the wrapped listener.
func (l *LimitedListener) Accept() (net.Conn, error) {
	if l.under {
		return l.Listener.Accept()
	}
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := RemoteIP(c.RemoteAddr())
		ok, perIP := l.lim.admit(ip)
		if ok {
			l.lim.accepted.Add(1)
			return &limitedConn{Conn: c, lim: l.lim, ip: ip}, nil
		}
		switch tc := c.(type) {
		case *net.TCPConn:
			_ = tc.SetLinger(0)
			c.Close()
		case *wsConn:
			// No close handshake: a refused WebSocket must not hold up
			// Accept for a peer that does not answer (ws.go).
			tc.closeNow()
		default:
			c.Close()
		}
		if fn := l.lim.refused; fn != nil {
			fn(ip, perIP)
		}
	}
}

// Stats returns the counters of the listener's limiter (shared with every
// listener it wraps).
func (l *LimitedListener) Stats() LimitStats { return l.lim.Stats() }

// admit takes a slot for ip, or counts the refusal (perIP: by the
// per-address bound).
func (lim *ConnLimiter) admit(ip netip.Addr) (ok, perIP bool) {
	lim.mu.Lock()
	defer lim.mu.Unlock()
	if lim.maxTotal > 0 && lim.active >= lim.maxTotal {
		lim.rejectedTotal.Add(1)
		return false, false
	}
	if ip.IsValid() {
		if lim.maxPerIP > 0 && lim.perIP[ip] >= lim.maxPerIP {
			lim.rejectedPerIP.Add(1)
			return false, true
		}
		lim.perIP[ip]++
	}
	lim.active++
	return true, false
}

func (lim *ConnLimiter) release(ip netip.Addr) {
	lim.mu.Lock()
	defer lim.mu.Unlock()
	lim.active--
	if ip.IsValid() {
		if lim.perIP[ip] <= 1 {
			delete(lim.perIP, ip)
		} else {
			lim.perIP[ip]--
		}
	}
}

// Stats returns the limiter's counters.
func (lim *ConnLimiter) Stats() LimitStats {
	lim.mu.Lock()
	active, sources := lim.active, len(lim.perIP)
	lim.mu.Unlock()
	return LimitStats{
		Active:        active,
		Sources:       sources,
		Accepted:      lim.accepted.Load(),
		RejectedTotal: lim.rejectedTotal.Load(),
		RejectedPerIP: lim.rejectedPerIP.Load(),
	}
}

// limitedConn gives its slot back when closed (once, however many times
// Close is called).
type limitedConn struct {
	net.Conn
	lim    *ConnLimiter
	ip     netip.Addr
	closed atomic.Bool
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.lim.release(c.ip)
	}
	return err
}

// Unwrap returns the underlying connection (a *net.TCPConn for TCP).
func (c *limitedConn) Unwrap() net.Conn { return c.Conn }

// CloseWrite half-closes the underlying connection if it can (TCP): the
// broker's lingering close sends its FIN through the wrapper.
func (c *limitedConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return errors.ErrUnsupported
}

// errNoRawConn: the wrapped connection has no file descriptor of its own.
var errNoRawConn = errors.New("listen: the wrapped connection has no raw file descriptor")

// SyscallConn is the wrapped connection's, when it has one (a TCP or Unix
// socket): the broker's idle readers wait on the descriptor without a read
// buffer (engine/idle.go), and without this method a connection limit would
// silently cost every idle connection its read buffer. A wrapped connection
// that buffers data of its own (WebSocket) has none, so that nothing waits
// on a socket while data sits in a buffer above it.
func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoRawConn
}

// RemoteIP returns the IP address of a remote address (IPv4-mapped IPv6
// addresses as IPv4, without zone), or the zero Addr if it has none (a Unix
// socket).
func RemoteIP(a net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	case *net.UDPAddr:
		ip = a.AddrPort().Addr()
	case nil:
		return netip.Addr{}
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}
		}
		ip = ap.Addr()
	}
	return ip.Unmap().WithZone("")
}

// IsLoopback reports whether a listener's bound address is a loopback
// address (127.0.0.0/8, ::1): only local processes can reach it. An
// unspecified address (0.0.0.0, ::) or one without an IP is not.
func IsLoopback(a net.Addr) bool {
	ip := RemoteIP(a)
	return ip.IsValid() && ip.IsLoopback()
}

// ConnectionState returns the TLS state of c if it is a TLS connection
// (possibly under wrappers with an Unwrap() net.Conn method), or nil. Call
// it after the handshake (on a server, the first Read completes it), e.g.
// when handling CONNECT, and pass the result to ClientIdentity.
func ConnectionState(c net.Conn) *tls.ConnectionState {
	for c != nil {
		if tc, ok := c.(*tls.Conn); ok {
			st := tc.ConnectionState()
			return &st
		}
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			return nil
		}
		c = u.Unwrap()
	}
	return nil
}
