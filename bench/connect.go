package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// connect: a connect storm. N clients connect, Parallel at a time (each one
// dial, CONNECT, CONNACK); then they stay connected and idle while the
// broker's memory is read, giving its RSS per idle connection.

func runConnect(ctx context.Context, cfg Config, e *env) (*Result, error) {
	res := &Result{}
	conns := make([]*conn, cfg.Clients)
	defer func() {
		_ = parallel(context.Background(), len(conns), cfg.Parallel, func(i int) error {
			if conns[i] != nil {
				conns[i].close()
			}
			if !cfg.Clean {
				return e.purge(context.Background(), cfg, e.clientID("c", i))
			}
			return nil
		})
	}()
	var rss0 int64
	if e.pid > 0 {
		rss0, _ = readRSS(e.pid)
	}
	if !cfg.Clean {
		// Purge leftovers first so that every connect creates a session.
		cfg.logf("connect: purging %d client ids", len(conns))
		if err := parallel(ctx, len(conns), cfg.Parallel, func(i int) error {
			return e.purge(ctx, cfg, e.clientID("c", i))
		}); err != nil {
			return nil, err
		}
		if e.pid > 0 {
			rss0, _ = readRSS(e.pid)
		}
	}

	cfg.logf("connect: %d connections, %d at a time, to %s (%s)", len(conns), cfg.Parallel, e.name, e.addr)
	var (
		mu    sync.Mutex
		hist  = NewHistogram()
		fails int64
	)
	var connected atomic.Int64
	stop := startProgress(cfg, "connecting", "conns", int64(len(conns)), 0, connected.Load)
	m := e.measure()
	start := time.Now()
	deadline := start.Add(cfg.Duration + cfg.Grace)
	_ = parallel(ctx, len(conns), cfg.Parallel, func(i int) error {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		t := time.Now()
		o := e.connOpts(cfg, e.clientID("c", i), cfg.Clean)
		o.BufSize = 4 << 10 // idle connections
		// A keep alive, as idle clients have (60 s is mosquitto_sub's and
		// paho's default). The connections live for seconds, far less
		// than the 90 s after which a broker may close a silent one, so
		// the client needs no PINGREQs.
		o.KeepAlive = 60
		c, err := dial(ctx, e.addr, o)
		d := time.Since(t)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			fails++
			res.noteErr("connection %d: %v", i, err)
			return nil
		}
		conns[i] = c
		hist.RecordDuration(d)
		connected.Add(1)
		return nil
	})
	elapsed := time.Since(start)
	stop()
	m.stop(res)
	nconn := int64(hist.Count())
	res.Counts.Sent = int64(len(conns))
	res.Counts.Acked = nconn
	res.Seconds = elapsed.Seconds()
	res.add("connects_per_s", "connects/s", "conn/s", "higher", float64(nconn)/elapsed.Seconds())
	l := hist.Summary()
	res.Connect = &l
	res.addLatency("connect", "CONNACK latency", &l)
	res.add("failed", "failed connects", "conns", "lower", float64(fails))

	// Idle: let the broker settle, then read its memory.
	if e.pid > 0 && nconn > 0 {
		time.Sleep(500 * time.Millisecond)
		if rss, err := readRSS(e.pid); err == nil {
			res.add("rss_per_conn_kib", "broker RSS per idle connection", "KiB", "lower", float64(rss-rss0)/float64(nconn)/1024)
			res.add("broker_rss_mib", "broker RSS with all connected", "MiB", "", float64(rss)/(1<<20))
		}
	}
	res.addProc(nconn, "connection")
	return res, nil
}
