package bench

import (
	"context"
	"fmt"
	"time"
)

// restart: how long a broker takes to come back. The broker is started on an
// empty data directory (time to listen, cold), a persistent QoS 1 subscriber
// subscribes and leaves, K messages are queued for it, and the broker is
// stopped (SIGTERM, or SIGKILL with Kill). It is started again on the same
// directory: the time from process start to the listener accepting, to the
// first queued message delivered, and to the last; and whether all K
// survived.

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

	subID := e.clientID("s", 0)
	cfg.Clean = false
	c, err := e.dialSession(ctx, cfg, subID)
	if err != nil {
		return nil, err
	}
	sub := newSubscriber(c, e.run, 1, false)
	if err := c.subscribe([]string{cfg.Prefix + "/restart"}, cfg.QoS, 10*time.Second); err != nil {
		c.close()
		return nil, err
	}
	c.close()

	pc, err := dial(ctx, addr, e.connOpts(cfg, e.clientID("p", 0), true))
	if err != nil {
		return nil, err
	}
	pub := newPublisher(pc, e.run, 0, cfg.Prefix+"/restart", cfg.QoS, cfg.Window)
	pc.start()
	cfg.logf("restart: queueing %d messages on %s (%s)", cfg.Count, e.name, addr)
	err = pub.publish(ctx, publishOpts{count: cfg.Count, until: time.Now().Add(max(cfg.Duration, 10*time.Minute)), payload: cfg.Payload}, cfg.Grace)
	pc.close()
	if err != nil {
		res.noteErr("publisher: %v", err)
	}
	res.Counts.Sent, res.Counts.Acked, res.Counts.Expected = pub.sent.Load(), pub.acked.Load(), pub.acked.Load()

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
	c, err = dial(ctx, addr, e.connOpts(cfg, subID, false))
	if err != nil {
		return nil, fmt.Errorf("reconnecting the subscriber: %w", err)
	}
	sub.attach(c)
	c.start()
	waitDeliveries(ctx, res.Counts.Acked, sub.received.Load, max(cfg.Grace, time.Minute), 5*time.Second)
	c.close()
	m.stop(res)
	_ = e.purge(context.Background(), cfg, subID)

	res.Counts.Received = sub.received.Load()
	res.Counts.Duplicates = sub.dups.Load()
	res.Counts.Lost = sub.got[0].missing(&pub.ackedSet)
	if res.Counts.Lost > 0 {
		res.noteErr("%d acknowledged messages did not survive the restart", res.Counts.Lost)
	}
	if c.err != nil {
		res.noteErr("subscriber: %v", c.err)
	}
	res.add("listen_ms", "start to listening (K queued)", "ms", "lower", float64(listen)/1e6)
	if f := sub.firstRecv.Load(); f > 0 {
		res.add("first_msg_ms", "start to first queued message", "ms", "lower", float64(f-c1)/1e6)
		res.add("all_msgs_ms", "start to last queued message", "ms", "lower", float64(sub.lastRecv.Load()-c1)/1e6)
	}
	res.add("cold_listen_ms", "start to listening (empty)", "ms", "lower", float64(cold)/1e6)
	res.add("lost", "lost", "msgs", "lower", float64(res.Counts.Lost))
	res.Seconds = float64(clock()-c1) / 1e9
	res.addProc()
	return res, nil
}
