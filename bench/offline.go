package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// offline: a persistent QoS 1 subscriber subscribes and goes away; the
// publishers queue K messages for it (the enqueue rate: how fast the broker
// acknowledges messages it must keep for somebody who is not there); the
// subscriber comes back and drains them (the drain rate, the time to the
// first message, and whether all K arrived).

func runOffline(ctx context.Context, cfg Config, e *env) (*Result, error) {
	res := &Result{}
	subID := e.clientID("s", 0)
	filter := cfg.Prefix + "/offline/+"
	pubs := make([]*publisher, cfg.Clients)
	var sub *subscriber
	defer func() {
		for _, p := range pubs {
			if p != nil {
				p.c.close()
			}
		}
		if sub != nil {
			sub.c.close()
		}
		_ = e.purge(context.Background(), cfg, subID)
	}()

	// The subscriber's session: subscribe, then leave (DISCONNECT keeps a
	// persistent session and its subscription).
	cfg.Clean = false
	c, err := e.dialSession(ctx, cfg, subID)
	if err != nil {
		return nil, err
	}
	sub = newSubscriber(c, e.run, len(pubs), false)
	if err := c.subscribe([]string{filter}, cfg.QoS, 10*time.Second); err != nil {
		return nil, err
	}
	c.close()

	// Queue K messages, split across the publishers (clean sessions: only
	// the subscriber's session matters here).
	pcfg := cfg
	pcfg.Clean = true
	err = parallel(ctx, len(pubs), cfg.Parallel, func(i int) error {
		c, err := e.dialSession(ctx, pcfg, e.clientID("p", i))
		if err != nil {
			return err
		}
		pubs[i] = newPublisher(c, e.run, uint32(i), fmt.Sprintf("%s/offline/%d", cfg.Prefix, i), cfg.QoS, cfg.Window)
		c.start()
		return nil
	})
	if err != nil {
		return nil, err
	}
	cfg.logf("offline: queueing %d messages on %s (%s)", cfg.Count, e.name, e.addr)
	acked := func() int64 {
		var n int64
		for _, p := range pubs {
			n += p.acked.Load()
		}
		return n
	}
	stop := startProgress(cfg, "queueing", "msgs", cfg.Count, 0, acked)
	m := e.measure()
	start := clock()
	var wg sync.WaitGroup
	pubErr := make([]error, len(pubs))
	for i, p := range pubs {
		n := cfg.Count / int64(len(pubs))
		if i < int(cfg.Count%int64(len(pubs))) {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The count is the point here: the duration only bounds it.
			pubErr[i] = p.publish(ctx, publishOpts{count: n, until: time.Now().Add(max(cfg.Duration, 10*time.Minute)), rate: cfg.Rate, payload: cfg.Payload}, cfg.Grace)
		}()
	}
	wg.Wait()
	enqueueSecs := float64(clock()-start) / 1e9
	stop()
	var nacked int64
	for i, p := range pubs {
		p.c.close()
		nacked += p.acked.Load()
		res.Counts.Sent += p.sent.Load()
		if pubErr[i] != nil {
			res.noteErr("publisher %d: %v", i, pubErr[i])
		}
	}
	res.Counts.Acked = nacked
	res.Counts.Expected = nacked
	var rssQueued int64
	if e.pid > 0 {
		rssQueued, _ = readRSS(e.pid)
	}

	// Come back and drain.
	cfg.logf("offline: %d queued in %.2fs; draining", nacked, enqueueSecs)
	t0 := clock()
	c, err = dial(ctx, e.addr, e.connOpts(cfg, subID, false))
	if err != nil {
		return nil, fmt.Errorf("reconnecting the subscriber: %w", err)
	}
	if !c.sessionPresent {
		res.noteErr("the subscriber's session was not present on reconnect")
	}
	sub.attach(c)
	stop = startProgress(cfg, "draining", "msgs", nacked, 0, sub.received.Load)
	c.start()
	waitDeliveries(ctx, nacked, sub.received.Load, max(cfg.Grace, 10*time.Minute), 5*time.Second)
	stop()
	last := sub.lastRecv.Load()
	c.close()
	m.stop(res)

	res.Counts.Received = sub.received.Load()
	res.Counts.Duplicates = sub.dups.Load()
	for i, p := range pubs {
		res.Counts.Lost += sub.got[i].missing(&p.ackedSet)
	}
	if res.Counts.Lost > 0 {
		res.noteErr("%d acknowledged messages never arrived", res.Counts.Lost)
	}
	if c.err != nil {
		res.noteErr("subscriber: %v", c.err)
	}
	drainSecs := float64(last-t0) / 1e9
	res.Seconds = enqueueSecs + drainSecs
	res.add("drain_per_s", "drain rate", "msg/s", "higher", float64(res.Counts.Received)/max(drainSecs, 1e-9))
	res.add("enqueue_per_s", "enqueue rate", "msg/s", "higher", float64(nacked)/enqueueSecs)
	if f := sub.firstRecv.Load(); f > 0 {
		res.add("first_msg_ms", "reconnect to first message", "ms", "lower", float64(f-t0)/1e6)
	}
	res.add("drain_s", "drain time", "s", "lower", drainSecs)
	res.add("lost", "lost", "msgs", "lower", float64(res.Counts.Lost))
	if rssQueued > 0 {
		res.add("broker_rss_queued_mib", "broker RSS with K queued", "MiB", "", float64(rssQueued)/(1<<20))
	}
	var puback = NewHistogram()
	for _, p := range pubs {
		puback.Merge(p.puback)
	}
	pa := puback.Summary()
	res.Puback = &pa
	res.add("puback_p50_ms", "PUBACK latency p50", "ms", "lower", pa.P50)
	res.add("puback_p99_ms", "PUBACK latency p99", "ms", "lower", pa.P99)
	res.addProc(res.Counts.Received, "message")
	return res, nil
}
