package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Flows: publishers and subscribers connected at once, publishing for a
// duration (or a count), then waiting for the deliveries. fanin, fanout and
// pairs differ only in their topology (flowPlan).

// flowPlan is a topology: publisher i publishes on pubTopics[i]; subscriber
// j subscribes to subFilters[j] and hears the publishers hears[j].
type flowPlan struct {
	pubTopics  []string
	subFilters []string
	hears      [][]int
}

func runFanin(ctx context.Context, cfg Config, e *env) (*Result, error) {
	p := flowPlan{subFilters: []string{cfg.Prefix + "/fanin/+"}, hears: [][]int{nil}}
	for i := range cfg.Clients {
		p.pubTopics = append(p.pubTopics, fmt.Sprintf("%s/fanin/%d", cfg.Prefix, i))
		p.hears[0] = append(p.hears[0], i)
	}
	return runFlow(ctx, cfg, e, p)
}

func runFanout(ctx context.Context, cfg Config, e *env) (*Result, error) {
	topic := cfg.Prefix + "/fanout"
	p := flowPlan{pubTopics: []string{topic}}
	for range cfg.Clients {
		p.subFilters = append(p.subFilters, topic)
		p.hears = append(p.hears, []int{0})
	}
	return runFlow(ctx, cfg, e, p)
}

func runPairs(ctx context.Context, cfg Config, e *env) (*Result, error) {
	var p flowPlan
	for i := range cfg.Clients {
		t := fmt.Sprintf("%s/pairs/%d", cfg.Prefix, i)
		p.pubTopics = append(p.pubTopics, t)
		p.subFilters = append(p.subFilters, t)
		p.hears = append(p.hears, []int{i})
	}
	return runFlow(ctx, cfg, e, p)
}

// clientID names the scenario's clients so that a later run can purge the
// persistent sessions a failed run left behind.
func (e *env) clientID(role string, i int) string {
	return fmt.Sprintf("bench-%s-%s%d", e.scenario, role, i)
}

func (e *env) connOpts(cfg Config, id string, clean bool) connOptions {
	return connOptions{ClientID: id, Clean: clean, Version: cfg.Version, Username: cfg.Username, Password: cfg.Password}
}

// dialSession connects with a fresh session: for a persistent one, it first
// purges whatever an earlier run left under that client id, and checks that
// the broker agrees (session present = 0); if not, it tries again.
func (e *env) dialSession(ctx context.Context, cfg Config, id string) (*conn, error) {
	for attempt := 1; ; attempt++ {
		if !cfg.Clean {
			if err := e.purge(ctx, cfg, id); err != nil {
				return nil, err
			}
		}
		c, err := dial(ctx, e.addr, e.connOpts(cfg, id, cfg.Clean))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		if !c.sessionPresent {
			return c, nil
		}
		c.close()
		if attempt == 5 {
			return nil, fmt.Errorf("%s: the broker still reports a session present after %d purges", id, attempt)
		}
		time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
	}
}

// purge ends the session of client id (a clean connect, then DISCONNECT).
func (e *env) purge(ctx context.Context, cfg Config, id string) error {
	c, err := dial(ctx, e.addr, e.connOpts(cfg, id, true))
	if err != nil {
		return fmt.Errorf("%s: purging its session: %w", id, err)
	}
	c.close()
	return nil
}

func runFlow(ctx context.Context, cfg Config, e *env, plan flowPlan) (*Result, error) {
	res := &Result{}
	var fsyncRate float64
	if cfg.FsyncProbe > 0 {
		cfg.logf("%s: probing the disk's fsync rate for %v", e.scenario, cfg.FsyncProbe)
		r, err := probeFsync(cfg.ProbeDir, cfg.FsyncProbe)
		if err != nil {
			return nil, err
		}
		fsyncRate = r
	}
	subs := make([]*subscriber, len(plan.subFilters))
	pubs := make([]*publisher, len(plan.pubTopics))
	defer func() {
		// Disconnect everybody, then purge the persistent sessions.
		_ = parallel(context.Background(), len(subs)+len(pubs), cfg.Parallel, func(i int) error {
			if i < len(subs) {
				if subs[i] != nil {
					subs[i].c.close()
				}
			} else if p := pubs[i-len(subs)]; p != nil {
				p.c.close()
			}
			return nil
		})
		if !cfg.Clean {
			_ = parallel(context.Background(), len(subs)+len(pubs), cfg.Parallel, func(i int) error {
				if i < len(subs) {
					return e.purge(context.Background(), cfg, e.clientID("s", i))
				}
				return e.purge(context.Background(), cfg, e.clientID("p", i-len(subs)))
			})
		}
	}()

	cfg.logf("%s: connecting %d subscribers and %d publishers to %s (%s)", e.scenario, len(subs), len(pubs), e.name, e.addr)
	err := parallel(ctx, len(subs), cfg.Parallel, func(j int) error {
		c, err := e.dialSession(ctx, cfg, e.clientID("s", j))
		if err != nil {
			return err
		}
		s := newSubscriber(c, e.run, len(pubs), true)
		subs[j] = s
		if err := c.subscribe([]string{plan.subFilters[j]}, cfg.QoS, 10*time.Second); err != nil {
			return err
		}
		c.start()
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = parallel(ctx, len(pubs), cfg.Parallel, func(i int) error {
		c, err := e.dialSession(ctx, cfg, e.clientID("p", i))
		if err != nil {
			return err
		}
		pubs[i] = newPublisher(c, e.run, uint32(i), plan.pubTopics[i], cfg.QoS, cfg.Window)
		c.start()
		return nil
	})
	if err != nil {
		return nil, err
	}

	cfg.logf("%s: publishing for %v", e.scenario, cfg.Duration)
	received := func() int64 {
		var n int64
		for _, s := range subs {
			n += s.received.Load()
		}
		return n
	}
	var total int64
	if cfg.Count > 0 {
		for j := range subs {
			total += cfg.Count * int64(len(plan.hears[j]))
		}
	}
	stopProgress := startProgress(cfg, "publishing", "msgs", total, cfg.Duration, received)
	m := e.measure()
	start := clock()
	po := publishOpts{count: cfg.Count, until: time.Now().Add(cfg.Duration), rate: cfg.Rate, payload: cfg.Payload}
	var wg sync.WaitGroup
	pubErr := make([]error, len(pubs))
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pubErr[i] = p.publish(ctx, po, cfg.Grace)
		}()
	}
	wg.Wait()
	pubEnd := clock()

	// Wait for the deliveries: until every expected message arrived, or
	// nothing arrived for a while, or the grace period is over.
	expected := func() int64 {
		var n int64
		for j := range subs {
			for _, i := range plan.hears[j] {
				n += expectedOf(pubs[i], cfg.QoS)
			}
		}
		return n
	}
	waitDeliveries(ctx, expected(), received, cfg.Grace, 2*time.Second)
	stopProgress()
	end := start
	for _, s := range subs {
		end = max(end, s.lastRecv.Load())
	}
	if end == start {
		end = clock()
	}
	m.stop(res)

	// Close the connections before reading what their readers recorded.
	for _, s := range subs {
		s.c.close()
	}
	for _, p := range pubs {
		p.c.close()
	}
	lat, puback := NewHistogram(), NewHistogram()
	c := &res.Counts
	for i, p := range pubs {
		c.Sent += p.sent.Load()
		c.Acked += p.acked.Load()
		puback.Merge(p.puback)
		if pubErr[i] != nil {
			res.noteErr("publisher %d: %v", i, pubErr[i])
		}
		if n := p.refused.Load(); n > 0 {
			res.noteErr("publisher %d: %d publishes refused; first: %s", i, n, p.errs[0])
			res.Counts.Errors += n - 1
		}
	}
	for j, s := range subs {
		lat.Merge(s.latency)
		c.Received += s.received.Load()
		c.Duplicates += s.dups.Load()
		for _, i := range plan.hears[j] {
			c.Expected += expectedOf(pubs[i], cfg.QoS)
			if cfg.QoS > 0 {
				c.Lost += s.got[i].missing(&pubs[i].ackedSet)
			} else {
				c.Lost += max(0, pubs[i].sent.Load()-s.got[i].len())
			}
		}
		if s.c.err != nil {
			res.noteErr("subscriber %d: %v", j, s.c.err)
		}
		if n := s.foreign.Load(); n > 0 {
			res.noteErr("subscriber %d: %d messages without this run's stamp", j, n)
		}
	}
	if cfg.QoS > 0 && c.Lost > 0 {
		res.noteErr("%d acknowledged messages never arrived", c.Lost)
	}

	secs := float64(end-start) / 1e9
	pubSecs := float64(pubEnd-start) / 1e9
	res.Seconds = secs
	res.add("msgs_per_s", "messages/s delivered", "msg/s", "higher", float64(c.Received)/secs)
	published := c.Sent
	if cfg.QoS > 0 {
		published = c.Acked
	}
	res.add("pub_per_s", "publishes/s", "msg/s", "higher", float64(published)/pubSecs)
	l, pa := lat.Summary(), puback.Summary()
	res.Latency = &l
	res.addLatency("latency", "end-to-end latency", &l)
	if cfg.QoS > 0 {
		res.Puback = &pa
		res.add("puback_p50_ms", "PUBACK latency p50", "ms", "lower", pa.P50)
		res.add("puback_p99_ms", "PUBACK latency p99", "ms", "lower", pa.P99)
	}
	res.add("lost", "lost", "msgs", "lower", float64(c.Lost))
	if fsyncRate > 0 {
		res.add("disk_fsync_per_s", "disk fsync rate (one writer)", "fsync/s", "", fsyncRate)
		res.add("x_fsync", "messages/s delivered ÷ disk fsync rate", "×", "higher", float64(c.Received)/secs/fsyncRate)
	}
	res.addProc(c.Received, "message")
	return res, nil
}

// expectedOf is what a publisher's subscribers must receive.
func expectedOf(p *publisher, qos byte) int64 {
	if qos == 0 {
		return p.sent.Load()
	}
	return p.acked.Load()
}

// waitDeliveries waits until received() reaches want, or it has not moved
// for quiet, or grace is over.
func waitDeliveries(ctx context.Context, want int64, received func() int64, grace, quiet time.Duration) {
	deadline := time.Now().Add(grace)
	last, lastMove := received(), time.Now()
	for last < want && time.Now().Before(deadline) && time.Since(lastMove) < quiet && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
		if n := received(); n != last {
			last, lastMove = n, time.Now()
		}
	}
}
