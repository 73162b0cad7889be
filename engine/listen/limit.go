package listen

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// LimitedListener is a net.Listener that bounds the connections open at once,
// in total and per source IP address. A connection over either bound is
// closed at once (with a TCP reset, so that a flood leaves no TIME_WAIT
// sockets behind) and counted; Accept goes on to the next one. A connection
// counts until it is closed.
type LimitedListener struct {
	net.Listener
	maxTotal, maxPerIP int

	mu     sync.Mutex
	active int
	perIP  map[netip.Addr]int

	accepted, rejectedTotal, rejectedPerIP atomic.Uint64
}

// LimitStats are a LimitedListener's counters.
type LimitStats struct {
	Active        int    // connections open now
	Sources       int    // distinct source addresses among them
	Accepted      uint64 // connections handed out by Accept
	RejectedTotal uint64 // closed because maxTotal connections were open
	RejectedPerIP uint64 // closed because maxPerIP connections from the address were open
}

// LimitListener wraps l: at most maxTotal connections at once (<= 0: no
// limit) and at most maxPerIP from one IP address (<= 0: no limit; the
// address is compared exactly, IPv4-mapped IPv6 as IPv4). Connections whose
// remote address has no IP (Unix sockets) count only toward maxTotal. Put it
// under the TLS listener (tls.NewListener(LimitListener(tcp, ...), cfg)) so
// that refused connections cost no handshake.
func LimitListener(l net.Listener, maxTotal, maxPerIP int) *LimitedListener {
	return &LimitedListener{Listener: l, maxTotal: maxTotal, maxPerIP: maxPerIP, perIP: make(map[netip.Addr]int)}
}

// Accept returns the next connection within the limits. Its errors are
// those of the wrapped listener.
func (l *LimitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := RemoteIP(c.RemoteAddr())
		if l.admit(ip) {
			l.accepted.Add(1)
			return &limitedConn{Conn: c, l: l, ip: ip}, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
}

// admit takes a slot for ip, or counts the refusal.
func (l *LimitedListener) admit(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxTotal > 0 && l.active >= l.maxTotal {
		l.rejectedTotal.Add(1)
		return false
	}
	if ip.IsValid() {
		if l.maxPerIP > 0 && l.perIP[ip] >= l.maxPerIP {
			l.rejectedPerIP.Add(1)
			return false
		}
		l.perIP[ip]++
	}
	l.active++
	return true
}

func (l *LimitedListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	if ip.IsValid() {
		if l.perIP[ip] <= 1 {
			delete(l.perIP, ip)
		} else {
			l.perIP[ip]--
		}
	}
}

// Stats returns the listener's counters.
func (l *LimitedListener) Stats() LimitStats {
	l.mu.Lock()
	active, sources := l.active, len(l.perIP)
	l.mu.Unlock()
	return LimitStats{
		Active:        active,
		Sources:       sources,
		Accepted:      l.accepted.Load(),
		RejectedTotal: l.rejectedTotal.Load(),
		RejectedPerIP: l.rejectedPerIP.Load(),
	}
}

// limitedConn gives its slot back when closed (once, however many times
// Close is called).
type limitedConn struct {
	net.Conn
	l      *LimitedListener
	ip     netip.Addr
	closed atomic.Bool
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.ip)
	}
	return err
}

// Unwrap returns the underlying connection (a *net.TCPConn for TCP).
func (c *limitedConn) Unwrap() net.Conn { return c.Conn }

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
