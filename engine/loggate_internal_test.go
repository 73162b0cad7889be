package engine

import (
	"testing"
	"time"
)

// The gate logs the first occurrence, holds back the rest for an interval,
// and then logs one line that counts them all.
func TestLogGate(t *testing.T) {
	var g logGate
	t0 := time.Unix(1_800_000_000, 0)
	steps := []struct {
		at     time.Duration
		n      int64
		logged bool
	}{
		{0, 1, true},
		{time.Second, 0, false},
		{logGateEvery - time.Millisecond, 0, false},
		{logGateEvery, 3, true}, // this one and the two held back
		{logGateEvery + time.Second, 0, false},
		{3 * logGateEvery, 2, true},
	}
	for i, s := range steps {
		n, ok := g.pass(t0.Add(s.at))
		if n != s.n || ok != s.logged {
			t.Fatalf("step %d (+%v): pass = %d, %v; want %d, %v", i, s.at, n, ok, s.n, s.logged)
		}
	}
}
