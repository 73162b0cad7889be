package main

// A progress bar for long tool runs (replay), drawn on stderr only when it
// is a terminal: logs and pipes get no carriage-return noise.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

type progressBar struct {
	w     io.Writer
	label string
	start time.Time
	last  time.Time
	drawn bool
}

// newProgress returns a bar on stderr, or nil (whose methods do nothing)
// when stderr is not a terminal.
func newProgress(label string) *progressBar {
	if !isTerminal(os.Stderr) {
		return nil
	}
	return &progressBar{w: os.Stderr, label: label, start: time.Now()}
}

const progressWidth = 30

func (p *progressBar) update(done, total uint64) {
	if p == nil {
		return
	}
	t := time.Now()
	if done < total && t.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.drawn = t, true
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	n := int(frac * progressWidth)
	bar := strings.Repeat("=", n)
	if n < progressWidth {
		bar += ">" + strings.Repeat(" ", progressWidth-n-1)
	}
	fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %d/%d events %v ", p.label, bar, frac*100, done, total, t.Sub(p.start).Round(100*time.Millisecond))
}

func (p *progressBar) finish() {
	if p != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}
