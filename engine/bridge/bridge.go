package bridge

// One bridge: its internal session on the local broker, the link to the
// remote broker, reconnection with back-off, and its live status.
//
// Invariants:
//   - Start subscribes the internal session to the `out` rules' local
//     filters (and unsubscribes filters no rule names any more) before it
//     returns, so every message published after Start is queued for the
//     bridge, on disk, whether the remote is up or not.
//   - At most one link at a time; the run goroutine owns it. A link ends
//     as a whole: when either side fails, both connections close (the
//     local session goes offline, its unacknowledged deliveries stay in its
//     queue and are redelivered, DUP set, on the next link).
//   - Back-off: after a failed attempt the wait is drawn uniformly from
//     [bound/2, bound]; the bound starts at ReconnectMin, doubles after each
//     failure up to ReconnectMax, and is reset by a link that stayed up for
//     stableLink.
//   - Stop returns only after the link's goroutines ended; the local
//     session is closed with a normal DISCONNECT (its queue is kept).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// stableLink is how long a link must stay up for the back-off to start
// over from ReconnectMin.
const stableLink = 10 * time.Second

// errStopped ends a link that Stop ended.
var errStopped = errors.New("bridge stopped")

// stopDrain bounds how long stopping waits for the exchanges in progress.
const stopDrain = 2 * time.Second

// States of a bridge.
const (
	StateStarting   = "starting"
	StateConnecting = "connecting"
	StateConnected  = "connected"
	StateBackoff    = "waiting" // to reconnect
	StateStopped    = "stopped"
)

// Bridge forwards between the local broker and one remote broker.
type Bridge struct {
	cfg    Config
	broker *engine.Broker
	log    *slog.Logger
	outMap *topicMap
	inMap  *topicMap

	local     caps        // the local broker's limits, from Start's CONNACK
	noPrivate atomic.Bool // the remote refused protocol level 0x84

	stats counters
	rate  meters

	mu         sync.Mutex
	state      string
	since      time.Time
	lastErr    string
	lastErrAt  time.Time
	nextTry    time.Time
	remoteSubs bool // the in filters were subscribed on the remote in this process
	link       *link

	cancel context.CancelFunc
	done   chan struct{}
}

type counters struct {
	connects, failures                 atomic.Int64
	outForwarded, outDropped, outBytes atomic.Int64
	inForwarded, inDropped, inBytes    atomic.Int64
	subRefused                         atomic.Int64
}

// newBridge returns a bridge for a validated config.
func newBridge(b *engine.Broker, cfg Config, log *slog.Logger) *Bridge {
	return &Bridge{
		cfg: cfg, broker: b, log: log.With("bridge", cfg.Name, "remote", cfg.Address),
		outMap: outMap(cfg.Rules), inMap: inMap(cfg.Rules), state: StateStarting, since: time.Now(),
	}
}

// start prepares the internal session and starts forwarding.
func (br *Bridge) start() error {
	if err := br.setup(); err != nil {
		return fmt.Errorf("bridge %s: preparing its session on the local broker: %w", br.cfg.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	br.cancel, br.done = cancel, make(chan struct{})
	go br.run(ctx)
	return nil
}

// stop ends forwarding and waits for it.
func (br *Bridge) stop() {
	if br.cancel == nil {
		return
	}
	br.cancel()
	<-br.done
}

// setup connects the internal session once, learns the local broker's
// limits and makes its subscriptions those of the config.
func (br *Bridge) setup() error {
	// Receive Maximum 1: deliveries of an existing backlog may start at
	// once; they are left unacknowledged (redelivered on the first link).
	m, lc, err := br.dialLocal(1, 0)
	if err != nil {
		return err
	}
	defer func() {
		m.closeWith(&wire.Disconnect{})
		m.wait()
	}()
	br.local = lc
	want := filters(br.cfg.Rules, Out)
	keep := map[string]bool{}
	for _, s := range want {
		keep[s.Filter] = true
	}
	var stale []string
	for _, f := range br.broker.SessionFilters(br.cfg.ClientIDLocal()) {
		if !keep[f] {
			stale = append(stale, f)
		}
	}
	if len(stale) > 0 {
		if err := request(m, &wire.Unsubscribe{PacketID: 1, Filters: stale}); err != nil {
			return err
		}
		br.log.Info("bridge session unsubscribed from filters no rule names any more", "filters", stale)
	}
	if len(want) > 0 {
		for i := range want {
			want[i].QoS = min(want[i].QoS, lc.maxQoS)
		}
		if err := request(m, &wire.Subscribe{PacketID: 2, Subscriptions: want}); err != nil {
			return err
		}
	}
	return nil
}

// request sends a SUBSCRIBE or UNSUBSCRIBE and waits for its answer,
// leaving any delivery that arrives meanwhile unacknowledged.
func request(m *mconn, p wire.Packet) error {
	m.send(p)
	for {
		r, err := m.read(handshakeTimeout)
		if err != nil {
			return err
		}
		switch r := r.(type) {
		case *wire.Suback:
			for i, c := range r.ReasonCodes {
				if c.IsError() {
					return fmt.Errorf("SUBSCRIBE %s refused: 0x%02X", p.(*wire.Subscribe).Subscriptions[i].Filter, byte(c))
				}
			}
			return nil
		case *wire.Unsuback:
			return nil
		case *wire.Disconnect:
			return fmt.Errorf("disconnected: reason 0x%02X %s", byte(r.ReasonCode), reasonString(r.Props))
		}
	}
}

func (br *Bridge) setState(s string, err error) {
	br.mu.Lock()
	defer br.mu.Unlock()
	if s != br.state {
		br.state, br.since = s, time.Now()
	}
	if err != nil {
		br.lastErr, br.lastErrAt = err.Error(), time.Now()
	}
}

// backoff is the reconnection schedule (see the header's invariants).
type backoff struct {
	min, max, bound time.Duration
	rand            func(n int64) int64 // uniform in [0, n)
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, bound: min, rand: rand.Int64N}
}

// next returns the wait after a failure and doubles the bound; up is how
// long the failed link had been up (a stable one resets the bound first).
func (b *backoff) next(up time.Duration) time.Duration {
	if up >= stableLink {
		b.bound = b.min
	}
	wait := b.bound/2 + time.Duration(b.rand(int64(b.bound-b.bound/2)+1))
	b.bound = min(b.bound*2, b.max)
	return wait
}

// run connects, forwards and reconnects until ctx ends.
func (br *Bridge) run(ctx context.Context) {
	defer close(br.done)
	defer br.setState(StateStopped, nil)
	bo := newBackoff(br.cfg.ReconnectMin, br.cfg.ReconnectMax)
	for {
		br.setState(StateConnecting, nil)
		up, err := br.connectAndForward(ctx)
		if ctx.Err() != nil {
			return
		}
		br.stats.failures.Add(1)
		wait := bo.next(up)
		br.mu.Lock()
		br.nextTry = time.Now().Add(wait)
		br.mu.Unlock()
		br.setState(StateBackoff, err)
		if up > 0 {
			br.log.Warn("bridge link lost", "err", err, "was_up", up.Round(time.Millisecond), "retry_in", wait.Round(time.Millisecond))
		} else {
			br.log.Warn("bridge cannot connect", "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// connectAndForward runs one link. up is how long it was connected (0: it
// never was).
func (br *Bridge) connectAndForward(ctx context.Context) (up time.Duration, _ error) {
	remote, rc, err := br.dialRemote(ctx)
	if err != nil {
		return 0, err
	}
	local, lc, err := br.dialLocal(min(br.cfg.Window, rc.recvMax), rc.maxPacket)
	if err != nil {
		remote.closeWith(&wire.Disconnect{})
		remote.wait()
		return 0, err
	}
	// The local CONNACK of this link may differ from Start's only if the
	// broker was reconfigured; trust the newer one.
	br.local = lc
	l := newLink(br, remote, local, rc, lc)
	br.stats.connects.Add(1)
	start := time.Now()
	br.mu.Lock()
	br.link = l
	subscribe := !br.remoteSubs || !rc.present
	br.mu.Unlock()
	br.setState(StateConnected, nil)
	br.log.Info("bridge connected", "protocol", br.cfg.Protocol, "session_present", rc.present,
		"window", cap(l.sem), "remote_receive_max", rc.recvMax)
	if subs := filters(br.cfg.Rules, In); len(subs) > 0 && subscribe {
		for i := range subs {
			subs[i].QoS = min(subs[i].QoS, rc.maxQoS)
		}
		remote.send(&wire.Subscribe{PacketID: 1, Subscriptions: subs})
	}

	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); errc <- l.readLocal() }()
	go func() { defer wg.Done(); errc <- l.readRemote() }()
	pingCtx, stopPing := context.WithCancel(ctx)
	go func() { defer wg.Done(); l.ping(pingCtx) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		if derr := l.drain(stopDrain, errc); derr != nil {
			br.log.Info("bridge link failed while stopping", "err", derr)
		}
		err = errStopped
	}
	stopPing()
	remote.closeWith(&wire.Disconnect{})
	local.closeWith(&wire.Disconnect{})
	wg.Wait()
	remote.wait()
	local.wait()
	br.mu.Lock()
	br.link = nil
	br.mu.Unlock()
	if errors.Is(err, errClosed) {
		err = errStopped
	}
	return time.Since(start), err
}

// ping keeps the remote connection alive: a PINGREQ whenever nothing was
// written or nothing was read for half the keep alive (the remote's
// answer is what readRemote's deadline waits for).
func (l *link) ping(ctx context.Context) {
	ka := l.rc.keepAlive
	if ka <= 0 {
		return
	}
	t := time.NewTicker(ka / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.remote.done:
			return
		case now := <-t.C:
			lw := time.Unix(0, l.remote.lastWrite.Load())
			lr := time.Unix(0, l.remote.lastRead.Load())
			if now.Sub(lw) >= ka/2 || now.Sub(lr) >= ka/2 {
				l.remote.send(&wire.Pingreq{})
			}
		}
	}
}

// subacked checks the remote's answer to the in filters.
func (br *Bridge) subacked(p *wire.Suback) {
	subs := filters(br.cfg.Rules, In)
	ok := true
	for i, c := range p.ReasonCodes {
		if c.IsError() && i < len(subs) {
			ok = false
			br.stats.subRefused.Add(1)
			err := fmt.Errorf("remote refused SUBSCRIBE %s: 0x%02X", subs[i].Filter, byte(c))
			br.setState(StateConnected, err)
			br.log.Error("remote refused a subscription of an 'in' rule", "filter", subs[i].Filter, "reason", fmt.Sprintf("0x%02X", byte(c)))
		}
	}
	if ok {
		br.mu.Lock()
		br.remoteSubs = true
		br.mu.Unlock()
	}
}
