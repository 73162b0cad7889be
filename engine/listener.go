package engine

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cairn-mqtt/cairn/engine/listen"
)

// Listeners: accepting connections within the connection limits, TLS, and
// the per-listener authentication facts (anonymous access, certificate user
// names).
//
// Invariants:
//   - Every listener's connections count toward one ConnLimiter (the
//     global and per-address bounds of Limits); the limiter sits under TLS,
//     so a refused connection costs no handshake. A WebSocket listener is
//     limited by its TCP sockets, under its HTTP server (listen.ConnLimiter.Wrap):
//     the sockets that have not upgraded (yet) count as well.
//   - A connection that can say why it is closed (a WebSocket: close status
//     1009) is told the maximum packet size before it is served.
//   - The TLS handshake runs on the connection's goroutine within the
//     CONNECT deadline: a peer that stalls it is closed like one that never
//     sends CONNECT.
//   - A client certificate names the user only if it was verified against
//     the listener's client CAs (listen.ClientIdentity).
//   - An accept error that passes (no file descriptors left, say) is
//     retried with a growing pause, never the end of the listener.

// Listener says how the connections of one listener are served.
type Listener struct {
	// Name is used in logs ("tcp", "tls").
	Name string
	// TLS, if set, makes the listener TLS (listen.TLS.Config()).
	TLS *tls.Config
	// AllowAnonymous admits clients that present no credentials (see
	// auth.Policy). It only matters with Options.Auth set.
	AllowAnonymous bool
	// CertUsername, if set, takes the user name from this field of a
	// verified client certificate; such a client needs no password.
	CertUsername listen.IdentityField

	internal bool // the in-process connections of DialInternal (internal.go)
}

// plainListener is how connections handed to ServeConn are served.
var plainListener = Listener{Name: "conn", AllowAnonymous: true}

// Serve accepts plain TCP connections on l, admitting anonymous clients,
// until Shutdown or an accept error.
func (b *Broker) Serve(l net.Listener) error {
	return b.ServeListener(l, Listener{Name: "tcp", AllowAnonymous: true})
}

// ServeListener accepts connections on l, served as lc says, until Shutdown
// or an accept error that does not pass. l is closed when it returns, also
// when Shutdown came first (as net/http's Serve does): a listener left open
// would keep its port, and a broker restarted on it could not bind.
func (b *Broker) ServeListener(l net.Listener, lc Listener) error {
	lp := &lc
	var ll net.Listener = b.sec.connLimit.Wrap(l)
	if lc.TLS != nil {
		ll = tls.NewListener(ll, lc.TLS)
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		ll.Close()
		return ErrClosed
	}
	b.listeners[ll] = struct{}{}
	b.mu.Unlock()
	b.deadl.start() // normally FinishRestore already did (expiry.go)
	stopWatch := make(chan struct{})
	go b.watchStore(stopWatch) // storefail.go
	defer func() {
		close(stopWatch)
		b.mu.Lock()
		delete(b.listeners, ll)
		b.mu.Unlock()
		ll.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ll.Accept()
		if err != nil {
			if err := b.storeFailure(); err != nil {
				return err
			}
			b.mu.RLock()
			closing := b.closing
			b.mu.RUnlock()
			if closing {
				return ErrClosed
			}
			if retryableAccept(err) {
				b.stats.Security.AcceptErrors.Add(1)
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				b.log.Warn("accept failed; retrying", "listener", lc.Name, "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("engine: accept on %s: %w", l.Addr(), err)
		}
		backoff = 0
		if ps, ok := nc.(interface{ SetMaxPacketSize(uint32) }); ok {
			ps.SetMaxPacketSize(b.opts.MaxPacketSize)
		}
		if !b.serveConn(nc, lp) {
			return ErrClosed
		}
	}
}

// ConnLimits returns the connection limiter's counters.
func (b *Broker) ConnLimits() listen.LimitStats { return b.sec.connLimit.Stats() }

// handshake completes the TLS handshake of a TLS connection (within the
// CONNECT deadline already set for reading) and takes the user name from a
// verified client certificate when the listener says so. It returns false
// if the handshake failed: the connection is to be closed.
func (c *conn) handshake() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.b.opts.ConnectTimeout))
	if err := tc.Handshake(); err != nil {
		c.b.stats.Security.TLSHandshakeFailed.Add(1)
		var rec tls.RecordHeaderError
		if errors.As(err, &rec) {
			c.log.Info("closing connection: not TLS", "listener", c.sec.lis.Name)
		} else {
			c.log.Info("closing connection: TLS handshake failed", "listener", c.sec.lis.Name, "err", err)
		}
		return false
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	st := tc.ConnectionState()
	c.log = c.log.With("tls", tls.VersionName(st.Version))
	if f := c.sec.lis.CertUsername; f != "" {
		if id, ok := listen.ClientIdentity(&st, f); ok {
			c.sec.certID = id
		}
	}
	return true
}

// OpenConns returns the number of connections being served (from accept
// until their goroutines are done).
func (b *Broker) OpenConns() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.conns)
}
