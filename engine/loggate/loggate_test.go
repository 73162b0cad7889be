package loggate

import (
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	var g Gate
	t0 := time.Unix(1000, 0)
	for i, s := range []struct {
		at   time.Duration
		n    int64
		pass bool
	}{
		{0, 1, true}, // the first at once
		{time.Second, 0, false},
		{Every - time.Millisecond, 0, false},
		{Every, 3, true}, // this one and the two held back
		{Every + time.Second, 0, false},
		{3 * Every, 2, true},
	} {
		n, ok := g.Pass(t0.Add(s.at))
		if n != s.n || ok != s.pass {
			t.Fatalf("step %d at %v: pass(%d, %v), want (%d, %v)", i, s.at, n, ok, s.n, s.pass)
		}
	}
}
