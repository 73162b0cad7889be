package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/engine/listen"
	"github.com/cairn-mqtt/cairn/engine/topics"
	"github.com/cairn-mqtt/cairn/store"
)

// Broker is one MQTT broker over one store.
//
// Lock order: Broker.mu before Session.mu; neither is held while calling the
// store or writing to a socket.
type Broker struct {
	opts  Options
	log   *slog.Logger
	store *store.Store

	subs     *topics.Trie
	retained *topics.Retained[*store.Message]
	// retainedQuota holds what admitted retained publishes reserved under
	// the retained limits (retainlimit.go).
	retainedQuota retainedQuota

	mu        sync.RWMutex
	sessions  map[string]*Session
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	closing   bool
	connWG    sync.WaitGroup
	connectW  connectWorkers // CONNECT handling (connectpool.go)

	connects idLocks
	stats    Stats
	sec      brokerSecurity

	sys      sysState   // $SYS publisher (sys.go)
	deadl    *deadlines // offline sessions' expiry and will times (expiry.go)
	settleMu sync.Mutex // one settle at a time (expiry.go)

	idrops internalDrops // queue-limit losses of internal sessions (internal.go)

	failOnce sync.Once // the store failed (storefail.go)
	failed   error     // guarded by mu
}

// Stats are the broker's counters.
type Stats struct {
	ConnectionsTotal  atomic.Int64
	Connected         atomic.Int64
	MessagesReceived  atomic.Int64
	MessagesSent      atomic.Int64
	MessagesDropped   atomic.Int64
	ProtocolErrors    atomic.Int64
	WillsPublished    atomic.Int64
	CommitFailures    atomic.Int64
	StoreFullRefusals atomic.Int64 // work refused: free space below the store's reserve (storefull.go)
	SessionsTakenOver atomic.Int64
	SessionsExpired   atomic.Int64
	PublisherPauses   atomic.Int64  // readers paused for a subscriber to catch up (backpressure.go)
	Maint             MaintStats    // compaction task and queue limits (compact.go)
	Security          SecurityStats // logins, limits, ACL refusals (limits.go)
	Traffic           TrafficStats  // bytes, packets, drops by reason (counters.go)
}

// ErrClosed is returned by Serve after Shutdown.
var ErrClosed = errors.New("engine: broker closed")

// New returns a broker over st. Restore state (package recovery) before
// serving.
func New(st *store.Store, opts Options) *Broker {
	opts = opts.withDefaults()
	b := &Broker{
		opts:      opts,
		log:       opts.Logger,
		store:     st,
		subs:      topics.New(),
		retained:  topics.NewRetainedSized(retainedSize),
		sessions:  make(map[string]*Session),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
	}
	b.connectW.init()
	b.deadl = newDeadlines(opts.Now, b.onDeadlines)
	b.sec.connLimit = listen.NewConnLimiter(opts.Limits.MaxConnections, opts.Limits.MaxConnectionsPerIP)
	b.sec.connLimit.OnRefused(b.logConnRefused)
	return b
}

// Stats returns the broker's live counters.
func (b *Broker) Stats() *Stats { return &b.stats }

// ServeConn runs the MQTT protocol on an accepted connection in its own
// goroutines. It returns false (and closes nc) if the broker is shutting down.
func (b *Broker) ServeConn(nc net.Conn) bool { return b.serveConn(nc, &plainListener) }

func (b *Broker) serveConn(nc net.Conn, lis *Listener) bool {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		nc.Close()
		return false
	}
	c := newConn(b, nc)
	c.sec.lis = lis
	b.conns[c] = struct{}{}
	b.connWG.Add(1)
	b.mu.Unlock()
	b.stats.ConnectionsTotal.Add(1)
	b.connectW.start(c)
	return true
}

func (b *Broker) forgetConn(c *conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	b.connWG.Done()
}

// Shutdown stops accepting, closes every connection without publishing
// wills (the clients did nothing wrong; their sessions keep their wills
// armed), waits for the connections to finish and their last commits to be
// durable. The store is the caller's to close afterwards.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closing = true
	for l := range b.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	// No expiry or delayed will while shutting down: the deadlines are in
	// the store and the next start honours them.
	b.deadl.stop()
	for _, c := range conns {
		c.shutdown()
	}
	done := make(chan struct{})
	go func() { b.connWG.Wait(); b.connectW.shutdown(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("engine: shutdown: %w", ctx.Err())
	}
}

// lookup returns the live session of a client id, or nil.
func (b *Broker) lookup(id string) *Session {
	b.mu.RLock()
	s := b.sessions[id]
	b.mu.RUnlock()
	return s
}

// isOnline reports whether client has a connection (shared-subscription
// member choice).
func (b *Broker) isOnline(id string) bool {
	s := b.lookup(id)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != nil
}

func (b *Broker) now() time.Time { return b.opts.Now() }

// newClientID makes an identifier for a client that sent an empty one.
func newClientID() string {
	var r [12]byte
	_, _ = rand.Read(r[:])
	return "cairn-" + hex.EncodeToString(r[:])
}

// commit hands events to the store and runs then (in this connection's
// pipeline order when st is non-nil) once they are durable (or applied, when
// durable is false). With no events then runs as soon as the step reaches the
// head of the pipeline.
func (b *Broker) commit(evs []*store.Event, durable bool, done func(error)) {
	if len(evs) == 0 {
		done(nil)
		return
	}
	if err := b.store.Commit(evs, durable, done); err != nil {
		if !isNoSpace(err) { // a refusal, not a failure (storefull.go)
			b.stats.CommitFailures.Add(1)
		}
		done(err)
	}
}
