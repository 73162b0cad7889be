package bridge

import (
	"testing"
	"time"
)

// TestBackoff: waits are drawn from [bound/2, bound], the bound doubles
// from ReconnectMin up to ReconnectMax, a stable link resets it, and the
// draws differ (jitter).
func TestBackoff(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	bounds := []time.Duration{100, 200, 400, 800, 1000, 1000}
	seen := map[time.Duration]bool{}
	for i, ms := range bounds {
		bound := ms * time.Millisecond
		w := b.next(time.Second)
		if w < bound/2 || w > bound {
			t.Fatalf("attempt %d: wait %v outside [%v, %v]", i, w, bound/2, bound)
		}
		seen[w] = true
	}
	if len(seen) < 3 {
		t.Fatalf("waits %v: no jitter", seen)
	}
	if w := b.next(stableLink); w > 100*time.Millisecond {
		t.Fatalf("after a stable link: wait %v, want at most ReconnectMin", w)
	}
	lo := &backoff{min: time.Second, max: time.Minute, bound: time.Second, rand: func(int64) int64 { return 0 }}
	hi := &backoff{min: time.Second, max: time.Minute, bound: time.Second, rand: func(n int64) int64 { return n - 1 }}
	if a, b := lo.next(0), hi.next(0); a != 500*time.Millisecond || b != time.Second {
		t.Fatalf("extremes %v and %v, want 500ms and 1s", a, b)
	}
}
