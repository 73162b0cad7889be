package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress reporting. A scenario's long phases (publishing, queueing,
// draining, connecting) report where they are about five times a second
// through Config.Progress; ProgressBar draws that as one line on a terminal,
// rewritten in place. Nothing here runs unless Config.Progress is set, and
// the sampler only reads the counters the run keeps anyway (atomics), so it
// costs the measured run nothing measurable.

// Progress is a snapshot of a running phase.
type Progress struct {
	Phase string // "publishing", "draining", ...
	// Done units so far (messages, connections); Total the units the phase
	// will end at, 0 when only time bounds it.
	Done, Total int64
	Unit        string // "msgs", "conns"
	// Elapsed since the phase began; Limit its time bound (0: none).
	Elapsed, Limit time.Duration
	// Rate is units per second over the last sample interval.
	Rate float64
	// Final is set on the phase's last report.
	Final bool
}

// Fraction is how far the phase is, 0..1, or -1 when unknown: by count when
// Total is known, otherwise by time.
func (p Progress) Fraction() float64 {
	switch {
	case p.Total > 0:
		return min(max(float64(p.Done)/float64(p.Total), 0), 1)
	case p.Limit > 0:
		return min(max(float64(p.Elapsed)/float64(p.Limit), 0), 1)
	}
	return -1
}

// progressEvery is the sampling interval.
const progressEvery = 200 * time.Millisecond

// startProgress samples done() every progressEvery and reports to
// cfg.Progress until the returned stop is called (which sends a final
// report). Without cfg.Progress it does nothing.
func startProgress(cfg Config, phase, unit string, total int64, limit time.Duration, done func() int64) (stop func()) {
	if cfg.Progress == nil {
		return func() {}
	}
	t0 := time.Now()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		last, lastAt := done(), t0
		for {
			select {
			case <-quit:
				n := done()
				cfg.Progress(Progress{Phase: phase, Unit: unit, Done: n, Total: total, Elapsed: time.Since(t0), Limit: limit,
					Rate: float64(n) / max(time.Since(t0).Seconds(), 1e-9), Final: true})
				return
			case now := <-tick.C:
				n := done()
				cfg.Progress(Progress{Phase: phase, Unit: unit, Done: n, Total: total, Elapsed: now.Sub(t0), Limit: limit,
					Rate: float64(n-last) / max(now.Sub(lastAt).Seconds(), 1e-9)})
				last, lastAt = n, now
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			wg.Wait()
		})
	}
}

// ProgressBar returns a Config.Progress that draws a bar on w (a terminal):
// one line, rewritten with a carriage return, ended by a newline on each
// phase's final report.
func ProgressBar(w io.Writer, width int) func(Progress) {
	var mu sync.Mutex
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		line := "\r" + RenderProgress(p, width) + "\x1b[K" // erase the rest of the line
		if p.Final {
			line += "\n"
		}
		_, _ = io.WriteString(w, line)
	}
}

// RenderProgress formats p as a bar of width cells and its numbers, e.g.
//
//	publishing [#########...........]  45%  4.5s/10s  157,320 msgs  35,112 msgs/s
func RenderProgress(p Progress, width int) string {
	width = max(width, 4)
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s [", p.Phase)
	f := p.Fraction()
	if f < 0 {
		// Unknown end: a marker that moves with time.
		pos := int(p.Elapsed/progressEvery) % width
		b.WriteString(strings.Repeat(".", pos) + "#" + strings.Repeat(".", width-pos-1))
		b.WriteString("]   ?%")
	} else {
		full := int(f*float64(width) + 0.5)
		b.WriteString(strings.Repeat("#", full) + strings.Repeat(".", width-full))
		fmt.Fprintf(&b, "] %3.0f%%", 100*f)
	}
	fmt.Fprintf(&b, "  %s", p.Elapsed.Round(100*time.Millisecond))
	if p.Limit > 0 {
		fmt.Fprintf(&b, "/%s", p.Limit.Round(100*time.Millisecond))
	}
	fmt.Fprintf(&b, "  %s", withThousands(fmt.Sprintf("%d", p.Done)))
	if p.Total > 0 {
		fmt.Fprintf(&b, "/%s", withThousands(fmt.Sprintf("%d", p.Total)))
	}
	fmt.Fprintf(&b, " %s  %s %s/s", p.Unit, withThousands(fmt.Sprintf("%.0f", p.Rate)), p.Unit)
	return b.String()
}
