package auth

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// DefaultLimiterEntries is the number of source addresses a
// FailedLoginLimiter tracks when NewFailedLoginLimiter is given no bound.
const DefaultLimiterEntries = 65536

// FailedLoginLimiter bounds failed logins per source address with a token
// bucket: an address may fail perMinute times in a burst, and earns one more
// attempt every minute/perMinute. While its bucket is empty Allow refuses it.
// IPv4 addresses (and IPv4-mapped IPv6 ones) are tracked individually, IPv6
// addresses by their /64 prefix (what one host or site usually gets).
//
// Memory is bounded: at most maxEntries addresses are tracked, the least
// recently seen one is forgotten to make room (forgetting an address only
// forgives it). Successful logins do not refill the bucket, so knowing one
// account does not help to guess another. It is safe for concurrent use.
type FailedLoginLimiter struct {
	perMinute int
	burst     float64
	interval  time.Duration // time to earn one token
	max       int
	now       func() time.Time

	mu      sync.Mutex
	entries map[netip.Addr]*list.Element // of *bucket
	lru     list.List                    // front: most recently seen
}

type bucket struct {
	key    netip.Addr
	tokens float64
	last   time.Time
}

// NewFailedLoginLimiter returns a limiter allowing perMinute failures per
// minute per address (perMinute <= 0: no limit), tracking at most maxEntries
// addresses (<= 0: DefaultLimiterEntries).
func NewFailedLoginLimiter(perMinute, maxEntries int) *FailedLoginLimiter {
	return newLimiter(perMinute, maxEntries, time.Now)
}

func newLimiter(perMinute, maxEntries int, now func() time.Time) *FailedLoginLimiter {
	if maxEntries <= 0 {
		maxEntries = DefaultLimiterEntries
	}
	l := &FailedLoginLimiter{perMinute: perMinute, max: maxEntries, now: now, entries: make(map[netip.Addr]*list.Element)}
	if perMinute > 0 {
		l.burst = float64(perMinute)
		l.interval = time.Minute / time.Duration(perMinute)
	}
	return l
}

// limiterKey is the address a bucket is kept for, or false for an address
// that is not tracked (the zero Addr, e.g. a Unix socket).
func limiterKey(ip netip.Addr) (netip.Addr, bool) {
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, true
}

// Allow reports whether a login from ip may be attempted: false while its
// failures have used up its bucket. Call it before checking the password,
// and do not check the password when it says no. The zero Addr is always
// allowed.
func (l *FailedLoginLimiter) Allow(ip netip.Addr) bool {
	key, ok := limiterKey(ip)
	if !ok || l.perMinute <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		return true
	}
	b := e.Value.(*bucket)
	l.refill(b)
	l.lru.MoveToFront(e)
	return b.tokens >= 1
}

// Failed records a failed login from ip (a wrong password or an unknown
// user).
func (l *FailedLoginLimiter) Failed(ip netip.Addr) {
	key, ok := limiterKey(ip)
	if !ok || l.perMinute <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		for l.lru.Len() >= l.max {
			old := l.lru.Back()
			delete(l.entries, old.Value.(*bucket).key)
			l.lru.Remove(old)
		}
		e = l.lru.PushFront(&bucket{key: key, tokens: l.burst, last: l.now()})
		l.entries[key] = e
	} else {
		l.lru.MoveToFront(e)
	}
	b := e.Value.(*bucket)
	l.refill(b)
	b.tokens = max(b.tokens-1, 0)
}

// refill adds the tokens earned since b was last refilled.
func (l *FailedLoginLimiter) refill(b *bucket) {
	now := l.now()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.tokens+float64(d)/float64(l.interval), l.burst)
	}
	b.last = now
}

// Len returns the number of addresses tracked.
func (l *FailedLoginLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
