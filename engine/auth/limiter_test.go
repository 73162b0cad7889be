package auth

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLimiterBucket(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := newLimiter(5, 100, clk.now)
	ip := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	for i := range 5 {
		if !l.Allow(ip) {
			t.Fatalf("refused after %d failures", i)
		}
		l.Failed(ip)
	}
	if l.Allow(ip) {
		t.Fatal("allowed after 5 failures in a burst")
	}
	if !l.Allow(other) {
		t.Fatal("another address is limited too")
	}
	clk.advance(11 * time.Second) // one token per 12 s
	if l.Allow(ip) {
		t.Fatal("allowed before a token was earned")
	}
	clk.advance(time.Second)
	if !l.Allow(ip) {
		t.Fatal("refused after a token was earned")
	}
	l.Failed(ip)
	if l.Allow(ip) {
		t.Fatal("allowed after spending the earned token")
	}
	// Failures while refused do not dig a deeper hole than empty.
	for range 10 {
		l.Failed(ip)
	}
	clk.advance(12 * time.Second)
	if !l.Allow(ip) {
		t.Fatal("failures below empty were counted")
	}
	// A long pause refills to the burst, not beyond.
	clk.advance(time.Hour)
	for range 5 {
		l.Failed(ip)
	}
	if l.Allow(ip) {
		t.Fatal("bucket refilled beyond its burst")
	}
}

func TestLimiterAddressGrouping(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := newLimiter(1, 100, clk.now)
	l.Failed(netip.MustParseAddr("2001:db8:1:2::1"))
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"2001:db8:1:2::1", false},
		{"2001:db8:1:2:ffff::9", false}, // same /64
		{"fe80::1%eth0", true},
		{"2001:db8:1:3::1", true}, // another /64
	} {
		if got := l.Allow(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Allow(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	l.Failed(netip.MustParseAddr("::ffff:192.0.2.7"))
	if l.Allow(netip.MustParseAddr("192.0.2.7")) {
		t.Error("an IPv4-mapped address is not the IPv4 address")
	}
	if !l.Allow(netip.MustParseAddr("192.0.2.8")) {
		t.Error("IPv4 addresses are grouped")
	}
	// The zero Addr (no IP, e.g. a Unix socket) is not tracked.
	l.Failed(netip.Addr{})
	if !l.Allow(netip.Addr{}) || l.Len() != 2 {
		t.Errorf("zero address tracked: Len %d", l.Len())
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := newLimiter(1, 50, clk.now)
	victim := netip.MustParseAddr("198.51.100.1")
	l.Failed(victim)
	a := netip.MustParseAddr("10.0.0.0")
	for range 10000 {
		a = a.Next()
		l.Failed(a)
		if l.Len() > 50 {
			t.Fatalf("tracking %d addresses, cap 50", l.Len())
		}
		if len(l.entries) != l.lru.Len() {
			t.Fatal("map and list disagree")
		}
	}
	if !l.Allow(victim) {
		t.Fatal("the least recently seen address was not evicted")
	}
	// Recently seen addresses stay: touch one, then push 49 others.
	recent := a
	l.Allow(recent)
	for range 49 {
		a = a.Next()
		l.Failed(a)
	}
	if l.Allow(recent) {
		t.Fatal("a recently seen address was evicted")
	}
}

func TestLimiterDisabled(t *testing.T) {
	l := NewFailedLoginLimiter(0, 0)
	ip := netip.MustParseAddr("192.0.2.1")
	for range 100 {
		l.Failed(ip)
	}
	if !l.Allow(ip) || l.Len() != 0 {
		t.Fatal("a disabled limiter limits")
	}
	if l := NewFailedLoginLimiter(5, 0); l.max != DefaultLimiterEntries {
		t.Fatalf("default entries %d", l.max)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewFailedLoginLimiter(10, 64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := netip.AddrFrom4([4]byte{10, byte(g), 0, 0})
			for range 500 {
				a = a.Next()
				if l.Allow(a) {
					l.Failed(a)
				}
			}
		}()
	}
	wg.Wait()
	if l.Len() > 64 {
		t.Fatalf("Len %d", l.Len())
	}
}
