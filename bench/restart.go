package bench

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// restart: how long a broker takes to come back with a loaded store. The
// broker is started on an empty data directory (time to listen, cold);
// Sessions persistent QoS 1 subscribers subscribe (each to a topic of its
// own) and leave; Clients publishers queue Count messages for them, spread
// evenly; the broker is stopped (SIGTERM, or SIGKILL with Kill) and started
// again on the same directory. Measured: the time from process start to the
// listener accepting, to the first queued message delivered (one session
// reconnects first), and to the last once every session has reconnected and
// drained; and whether every acknowledged message survived.

func (e *env) restartTopic(cfg Config, j int) string {
	return fmt.Sprintf("%s/restart/%d", cfg.Prefix, j)
}

func runRestart(ctx context.Context, cfg Config, e *env) (*Result, error) {
	res := &Result{}
	l := e.launcher
	t0 := time.Now()
	addr, pid, err := l.Start(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", e.name, err)
	}
	cold := time.Since(t0)
	e.addr, e.pid = addr, pid
	running := true
	defer func() {
		if running {
			_ = l.Stop(false)
		}
	}()

	nsess := cfg.Sessions
	npub := min(max(cfg.Clients, 1), nsess) // every publisher has a session to fill
	cfg.Clean = false
	small := e.connOpts(cfg, "", false)
	small.BufSize = 4 << 10 // thousands of mostly idle connections
	dialSmall := func(id string, clean bool) (*conn, error) {
		o := small
		o.ClientID, o.Clean = id, clean
		return dial(ctx, e.addr, o)
	}
	purge := func(ctx context.Context, j int) error {
		c, err := dialSmall(e.clientID("s", j), true)
		if err != nil {
			return fmt.Errorf("%s: purging its session: %w", e.clientID("s", j), err)
		}
		c.close()
		return nil
	}

	cfg.logf("restart: %d sessions subscribing on %s (%s)", nsess, e.name, addr)
	var subscribed atomic.Int64
	stop := startProgress(cfg, "sessions", "sessions", int64(nsess), 0, subscribed.Load)
	err = parallel(ctx, nsess, cfg.Parallel, func(j int) error {
		if err := purge(ctx, j); err != nil {
			return err
		}
		c, err := dialSmall(e.clientID("s", j), false)
		if err != nil {
			return err
		}
		defer c.close()
		if c.sessionPresent {
			return fmt.Errorf("%s: a session is present after purging it", e.clientID("s", j))
		}
		if err := c.subscribe([]string{e.restartTopic(cfg, j)}, cfg.QoS, 10*time.Second); err != nil {
			return err
		}
		subscribed.Add(1)
		return nil
	})
	stop()
	if err != nil {
		return nil, err
	}

	// Publisher i fills the sessions j ≡ i (mod npub), in turn.
	pubs := make([]*publisher, npub)
	defer func() {
		for _, p := range pubs {
			if p != nil {
				p.c.close()
			}
		}
	}()
	for i := range pubs {
		pc, err := dial(ctx, addr, e.connOpts(cfg, e.clientID("p", i), true))
		if err != nil {
			return nil, err
		}
		p := newPublisher(pc, e.run, uint32(i), "", cfg.QoS, cfg.Window)
		p.topics = p.topics[:0]
		for j := i; j < nsess; j += npub {
			p.topics = append(p.topics, e.restartTopic(cfg, j))
		}
		pubs[i] = p
		pc.start()
	}
	cfg.logf("restart: queueing %d messages for %d sessions on %s (%s)", cfg.Count, nsess, e.name, addr)
	acked := func() int64 {
		var n int64
		for _, p := range pubs {
			n += p.acked.Load()
		}
		return n
	}
	stop = startProgress(cfg, "queueing", "msgs", cfg.Count, 0, acked)
	var wg sync.WaitGroup
	pubErr := make([]error, npub)
	for i, p := range pubs {
		n := cfg.Count / int64(npub)
		if i < int(cfg.Count%int64(npub)) {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pubErr[i] = p.publish(ctx, publishOpts{count: n, until: time.Now().Add(max(cfg.Duration, 10*time.Minute)), payload: cfg.Payload}, cfg.Grace)
		}()
	}
	wg.Wait()
	stop()
	for i, p := range pubs {
		p.c.close()
		if pubErr[i] != nil {
			res.noteErr("publisher %d: %v", i, pubErr[i])
		}
		res.Counts.Sent += p.sent.Load()
		res.Counts.Acked += p.acked.Load()
	}
	res.Counts.Expected = res.Counts.Acked

	how := "SIGTERM"
	if cfg.Kill {
		how = "SIGKILL"
	}
	cfg.logf("restart: %d queued; stopping %s with %s and starting it again", res.Counts.Acked, e.name, how)
	running = false
	if err := l.Stop(cfg.Kill); err != nil {
		return nil, fmt.Errorf("stopping %s: %w", e.name, err)
	}

	t1 := time.Now()
	c1 := clock()
	addr, pid, err = l.Start(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("restarting %s: %w", e.name, err)
	}
	listen := time.Since(t1)
	running = true
	e.addr, e.pid = addr, pid
	m := e.measure()

	// Session 0 first (the time to the first queued message), then all the
	// others, Parallel at a time; every one drains its queue.
	tal := newTally(npub, false, nsess > 1)
	subs := make([]*subscriber, nsess)
	defer func() {
		_ = parallel(context.Background(), nsess, cfg.Parallel, func(j int) error {
			if subs[j] != nil {
				subs[j].c.close()
			}
			return purge(context.Background(), j)
		})
	}()
	reconnect := func(j int) error {
		c, err := dialSmall(e.clientID("s", j), false)
		if err != nil {
			return fmt.Errorf("reconnecting %s: %w", e.clientID("s", j), err)
		}
		if !c.sessionPresent {
			res.noteErr("%s: session not present after the restart", e.clientID("s", j))
		}
		subs[j] = newSubscriberTally(c, e.run, tal)
		c.start()
		return nil
	}
	if err := reconnect(0); err != nil {
		return nil, err
	}
	stop = startProgress(cfg, "draining", "msgs", res.Counts.Acked, 0, tal.received.Load)
	deadline := time.Now().Add(time.Minute)
	for tal.firstRecv.Load() == 0 && time.Now().Before(deadline) && ctx.Err() == nil && res.Counts.Acked > 0 {
		time.Sleep(time.Millisecond)
	}
	if err := parallel(ctx, nsess-1, cfg.Parallel, func(j int) error { return reconnect(j + 1) }); err != nil {
		stop()
		return nil, err
	}
	waitDeliveries(ctx, res.Counts.Acked, tal.received.Load, max(cfg.Grace, time.Minute), 5*time.Second)
	stop()
	m.stop(res)
	for _, s := range subs {
		s.c.close()
		if s.c.err != nil {
			res.noteErr("subscriber: %v", s.c.err)
		}
	}

	res.Counts.Received = tal.received.Load()
	res.Counts.Duplicates = tal.dups.Load()
	for i, p := range pubs {
		res.Counts.Lost += tal.got[i].missing(&p.ackedSet)
	}
	if res.Counts.Lost > 0 {
		res.noteErr("%d acknowledged messages did not survive the restart (%s)", res.Counts.Lost, lostBySession(pubs, tal, npub, e))
	}
	res.add("listen_ms", "start to listening (K queued)", "ms", "lower", float64(listen)/1e6)
	if f := tal.firstRecv.Load(); f > 0 {
		res.add("first_msg_ms", "start to first queued message", "ms", "lower", float64(f-c1)/1e6)
		res.add("all_msgs_ms", "start to last queued message", "ms", "lower", float64(tal.lastRecv.Load()-c1)/1e6)
	}
	res.add("cold_listen_ms", "start to listening (empty)", "ms", "lower", float64(cold)/1e6)
	res.add("lost", "lost", "msgs", "lower", float64(res.Counts.Lost))
	res.Seconds = float64(clock()-c1) / 1e9
	res.addProc(res.Counts.Received, "message")
	return res, nil
}

// lostBySession names the sessions whose messages are missing, most first
// (at most five): publisher i sends its message seq to the session
// i + (seq mod its topic count) × npub (see the topic lists above), so a
// loss can be traced to a session and looked up in the broker's log.
func lostBySession(pubs []*publisher, tal *tally, npub int, e *env) string {
	lost := map[int]int64{}
	for i, p := range pubs {
		if len(p.topics) == 0 {
			continue
		}
		tal.got[i].eachMissing(&p.ackedSet, func(seq uint64) {
			lost[i+int(seq%uint64(len(p.topics)))*npub]++
		})
	}
	sessions := slices.SortedFunc(maps.Keys(lost), func(a, b int) int {
		if c := cmp.Compare(lost[b], lost[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	var parts []string
	for _, j := range sessions[:min(len(sessions), 5)] {
		parts = append(parts, fmt.Sprintf("%s: %d", e.clientID("s", j), lost[j]))
	}
	if len(sessions) > 5 {
		parts = append(parts, fmt.Sprintf("and %d more sessions", len(sessions)-5))
	}
	return strings.Join(parts, ", ")
}
