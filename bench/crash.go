package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// crash: an external kill -9 checker. The broker is started as a child
// process; persistent publishers (--clients, QoS 1, QoS 2 and retained QoS
// 1 publishes) and two persistent subscribers (QoS 1 and QoS 2, each online
// in some rounds only, so that queues build up while they are away) run
// against it, and it is SIGKILLed at a random moment after the round's
// first acknowledgement (uniform in 0.2–1.8 × --kill-interval), then
// started again on the same data directory, --kills times. After the last
// restart the publishers complete what they have in flight, the
// subscribers drain their sessions, and the run checks:
//
//   - lost: every QoS 1 / QoS 2 publish the broker acknowledged (PUBACK,
//     PUBREC) reached its subscriber, whichever kills came between;
//   - duplicates: no QoS 2 message was delivered twice to the exactly-once
//     subscriber, counting all its connections (QoS 1 redeliveries are
//     allowed, and counted);
//   - retained: each retained topic holds a value at least as new as the
//     last acknowledged one (a newer unacknowledged one may have survived);
//   - sessions: every reconnect found its persistent session (CONNACK
//     session present), and no delivery was of a message never sent.
//
// The result's Summary is one line; any violation is an error of the
// result. The client state machines are in crashclients.go.

// crashEnd is how one client of a round ended.
type crashEnd struct {
	who string
	err error
	at  time.Time
}

func runCrash(ctx context.Context, cfg Config, e *env) (*Result, error) {
	res := &Result{}
	l := e.launcher
	seed := uint64(e.run)
	rng := rand.New(rand.NewPCG(seed, 0xc4a54))
	addr, pid, err := l.Start(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", e.name, err)
	}
	e.addr, e.pid = addr, pid
	running := true
	defer func() {
		if running {
			_ = l.Stop(false)
		}
	}()
	cfg.Clean = false
	subs := []*crashSub{
		newCrashSub(e.run, e.clientID("s", 1), cfg.Prefix+"/crash/1/+", 1, cfg.Clients),
		newCrashSub(e.run, e.clientID("s", 2), cfg.Prefix+"/crash/2/+", 2, cfg.Clients),
	}
	for _, s := range subs {
		c, err := e.dialSession(ctx, cfg, s.id)
		if err != nil {
			return nil, err
		}
		err = c.subscribe([]string{s.filter}, s.qos, 10*time.Second)
		c.close()
		if err != nil {
			return nil, err
		}
	}
	pubs := make([]*crashPub, cfg.Clients)
	for i := range pubs {
		id := e.clientID("p", i)
		if err := e.purge(ctx, cfg, id); err != nil {
			return nil, err
		}
		pubs[i] = newCrashPub(e.run, uint32(i), id, cfg.Prefix, cfg.Window)
	}
	cfg.logf("crash: %d publishers, 2 subscribers, %d kills of %s (seed %d)", len(pubs), cfg.Kills, e.name, seed)

	var restarts []float64
	kills := 0
	started := clock()
	for round := 0; round <= cfg.Kills; round++ {
		final := round == cfg.Kills
		if round > 0 {
			t0 := time.Now()
			if e.addr, e.pid, err = l.Start(ctx, false); err != nil {
				res.noteErr("restart after kill %d: %v", round, err)
				break
			}
			running = true
			restarts = append(restarts, float64(time.Since(t0))/1e6)
		}
		var m *measure
		if final { // the process stats are those of the last run of the broker
			m = e.measure()
		}
		killedAt, err := crashRound(ctx, cfg, e, rng, round, final, pubs, subs, res)
		if m != nil {
			m.stop(res)
		}
		if err != nil {
			res.noteErr("round %d: %v", round, err)
		}
		if !killedAt.IsZero() {
			running = false
			kills++
		}
		if final || err != nil {
			break
		}
	}
	res.Seconds = float64(clock()-started) / 1e9

	stale, current := 0, 0
	if running {
		stale, current = checkRetained(ctx, cfg, e, pubs, res)
		for _, s := range subs {
			_ = e.purge(context.Background(), cfg, s.id)
		}
		for _, p := range pubs {
			_ = e.purge(context.Background(), cfg, p.id)
		}
	}
	crashResults(res, cfg, pubs, subs, kills, restarts, stale, current)
	return res, nil
}

// crashRound runs the clients of one round: until the kill, or (final)
// until everything acknowledged was delivered. It returns when the broker
// was killed (zero if it was not).
func crashRound(ctx context.Context, cfg Config, e *env, rng *rand.Rand, round int, final bool,
	pubs []*crashPub, subs []*crashSub, res *Result) (time.Time, error) {
	online := subs
	if !final {
		online = nil
		if round%2 == 0 {
			online = append(online, subs[0])
		}
		if round%3 != 1 {
			online = append(online, subs[1])
		}
	}
	stop := make(chan struct{})
	ackCh := make(chan struct{}, 1)
	acked := func() {
		select {
		case ackCh <- struct{}{}:
		default:
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ends    []crashEnd
		pubDone sync.WaitGroup
	)
	end := func(who string, err error) {
		mu.Lock()
		ends = append(ends, crashEnd{who: who, err: err, at: time.Now()})
		mu.Unlock()
	}
	for _, s := range online {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(ctx, e.addr, e.connOpts(cfg, s.id, false))
			if err != nil {
				end(s.id, err)
				return
			}
			if !c.sessionPresent {
				s.mu.Lock()
				s.problem("round %d: CONNACK without the persistent session", round)
				s.mu.Unlock()
			}
			s.attach(c)
			c.start()
			select {
			case <-c.done:
				end(s.id, c.errOr(errBrokerClosed))
			case <-stop:
				c.close()
			}
		}()
	}
	for _, p := range pubs {
		wg.Add(1)
		pubDone.Add(1)
		go func() {
			defer wg.Done()
			defer pubDone.Done()
			c, err := dial(ctx, e.addr, e.connOpts(cfg, p.id, false))
			if err != nil {
				end(p.id, err)
				return
			}
			if round > 0 && !c.sessionPresent {
				p.mu.Lock()
				p.problem("round %d: CONNACK without the persistent session", round)
				p.mu.Unlock()
			}
			err = p.session(ctx, c, cfg.Payload, final, acked, stop)
			if err != nil {
				end(p.id, err)
			}
			c.close()
		}()
	}
	var killedAt time.Time
	var roundErr error
	if !final {
		select {
		case <-ackCh:
		case <-time.After(15 * time.Second):
			roundErr = errors.New("no acknowledgement within 15s")
		case <-ctx.Done():
			roundErr = ctx.Err()
		}
		delay := time.Duration((0.2 + 1.6*rng.Float64()) * float64(cfg.KillInterval))
		time.Sleep(delay)
		killedAt = time.Now()
		if err := e.launcher.Stop(true); err != nil {
			roundErr = errors.Join(roundErr, fmt.Errorf("SIGKILL: %w", err))
		}
		close(stop)
	} else {
		if !waitOrTimeout(&pubDone, cfg.Grace) {
			roundErr = fmt.Errorf("publishers still have publishes in flight %v after the last restart", cfg.Grace)
		}
		drained := func() bool {
			for _, s := range subs {
				s.mu.Lock()
				waiting := len(s.awaitRel)
				s.mu.Unlock()
				if waiting > 0 || s.missing(pubs) > 0 {
					return false
				}
			}
			return true
		}
		deadline := time.Now().Add(cfg.Grace)
		for !drained() && time.Now().Before(deadline) && ctx.Err() == nil && sinceLastRecv(subs) < 5*time.Second {
			time.Sleep(5 * time.Millisecond)
		}
		close(stop)
	}
	if !waitOrTimeout(&wg, 30*time.Second) {
		return killedAt, errors.New("clients did not end within 30s")
	}
	for _, x := range ends {
		if final || x.at.Before(killedAt) {
			res.noteErr("round %d: %s: %v", round, x.who, x.err)
		}
	}
	var counts [3]int64
	for _, p := range pubs {
		p.mu.Lock()
		for i := range counts {
			counts[i] += p.counts[i]
		}
		p.mu.Unlock()
	}
	cfg.logf("crash: round %d done (%s); acknowledged so far: QoS 1 %d, QoS 2 %d, retained %d",
		round, map[bool]string{true: "final drain", false: "SIGKILL"}[final], counts[0], counts[1], counts[2])
	return killedAt, roundErr
}

func sinceLastRecv(subs []*crashSub) time.Duration {
	var last time.Time
	for _, s := range subs {
		s.mu.Lock()
		if s.lastRecv.After(last) {
			last = s.lastRecv
		}
		s.mu.Unlock()
	}
	if last.IsZero() {
		return 0
	}
	return time.Since(last)
}

func waitOrTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// checkRetained reads every publisher's retained topic on a clean
// connection and compares it with the last acknowledged value: it returns
// how many are older than that (stale) and how many are current.
func checkRetained(ctx context.Context, cfg Config, e *env, pubs []*crashPub, res *Result) (stale, current int) {
	c, err := dial(ctx, e.addr, e.connOpts(cfg, e.clientID("r", 0), true))
	if err != nil {
		res.noteErr("retained check: %v", err)
		return 0, 0
	}
	defer c.close()
	got := make(chan [2]int64, 4*len(pubs)) // publisher, seq
	c.onPublish = func(p *publishView) {
		run, pub, seq, _, ok := readStamp(p.Payload)
		if ok && run == e.run && p.Retain {
			select {
			case got <- [2]int64{int64(pub), int64(seq)}:
			default:
			}
		}
	}
	if err := c.subscribe([]string{cfg.Prefix + "/crash/r/+"}, 1, 10*time.Second); err != nil {
		res.noteErr("retained check: %v", err)
		return 0, 0
	}
	c.start()
	want := 0
	for _, p := range pubs {
		p.mu.Lock()
		if p.retAcked >= 0 {
			want++
		}
		p.mu.Unlock()
	}
	have := map[int64]int64{}
	for timeout := time.After(5 * time.Second); len(have) < want; {
		select {
		case g := <-got:
			have[g[0]] = g[1]
		case <-timeout:
			want = 0
		}
	}
	for i, p := range pubs {
		v, ok := have[int64(i)]
		p.mu.Lock()
		acked, sent := p.retAcked, p.retSent
		p.mu.Unlock()
		switch {
		case acked < 0:
		case !ok:
			stale++
			res.noteErr("retained: %s has no retained message; %d was acknowledged", p.topics[2], acked)
		case v < acked:
			stale++
			res.noteErr("retained: %s holds %d, older than the acknowledged %d", p.topics[2], v, acked)
		case v > sent:
			stale++
			res.noteErr("retained: %s holds %d, never published", p.topics[2], v)
		default:
			current++
		}
	}
	return stale, current
}

// crashResults fills in the counts, metrics and summary.
func crashResults(res *Result, cfg Config, pubs []*crashPub, subs []*crashSub, kills int, restarts []float64, stale, current int) {
	var acked [3]int64
	for _, p := range pubs {
		p.mu.Lock()
		for i := range acked {
			acked[i] += p.counts[i]
		}
		res.Counts.Sent += p.sentCount
		for _, pr := range p.problems {
			res.noteErr("%s", pr)
		}
		p.mu.Unlock()
	}
	res.Counts.Acked = acked[0] + acked[1] + acked[2]
	res.Counts.Expected = acked[0] + acked[1]
	var dups, redeliveries, phantoms int64
	for _, s := range subs {
		lost := s.missing(pubs)
		ph := s.phantoms(pubs)
		s.mu.Lock()
		for i := range s.got {
			res.Counts.Received += s.got[i].len()
		}
		dups += s.duplicates
		redeliveries += s.redeliveries
		phantoms += ph
		res.Counts.Lost += lost
		if lost > 0 {
			res.noteErr("%s: %d acknowledged QoS %d messages never delivered", s.id, lost, s.qos)
		}
		if s.duplicates > 0 {
			res.noteErr("%s: %d QoS 2 messages delivered twice", s.id, s.duplicates)
		}
		if ph > 0 {
			res.noteErr("%s: %d deliveries of messages never sent", s.id, ph)
		}
		if n := len(s.awaitRel); n > 0 {
			res.noteErr("%s: %d QoS 2 deliveries still await PUBREL after the drain", s.id, n)
		}
		for _, pr := range s.problems {
			res.noteErr("%s", pr)
		}
		s.mu.Unlock()
	}
	res.Counts.Duplicates = dups + redeliveries
	sort.Float64s(restarts)
	var p50, worst float64
	if n := len(restarts); n > 0 {
		p50, worst = restarts[n/2], restarts[n-1]
	}
	res.add("kills", "SIGKILLs", "kills", "", float64(kills))
	res.add("lost", "acknowledged messages lost", "msgs", "lower", float64(res.Counts.Lost))
	res.add("qos2_duplicates", "QoS 2 messages delivered twice", "msgs", "lower", float64(dups))
	res.add("retained_stale", "retained topics older than acknowledged", "topics", "lower", float64(stale))
	res.add("acked", "acknowledged publishes", "msgs", "higher", float64(res.Counts.Acked))
	res.add("qos1_redeliveries", "QoS 1 redeliveries (allowed)", "msgs", "", float64(redeliveries))
	res.add("restart_p50_ms", "restart to listening p50", "ms", "lower", p50)
	res.add("restart_max_ms", "restart to listening max", "ms", "lower", worst)
	res.addProc()
	verdict := "PASS"
	if res.Counts.Errors > 0 {
		verdict = fmt.Sprintf("FAIL (%d errors)", res.Counts.Errors)
	}
	n := func(v int64) string { return withThousands(fmt.Sprint(v)) }
	res.Summary = fmt.Sprintf("crash: %d SIGKILLs, %s acknowledged (QoS 1 %s, QoS 2 %s, retained %s), %s lost, %s QoS 2 duplicates, %s QoS 1 redeliveries, retained %d/%d current, restart to listening p50 %.0f ms max %.0f ms: %s",
		kills, n(res.Counts.Acked), n(acked[0]), n(acked[1]), n(acked[2]), n(res.Counts.Lost), n(dups), n(redeliveries), current, current+stale, p50, worst, verdict)
}
