package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The free-space guard: the store refuses to grow when its volume runs low,
// before Pebble ever sees ENOSPC.
//
// Why a guard and not ENOSPC handling: Pebble treats a failed WAL write as
// fatal (a commit whose WAL record may be half written cannot be retried or
// reported as anything but a failed store, see pebbleLogger), and a flush or
// compaction that fails for lack of space leaves it unable to make room
// either. So the store keeps a reserve of free space and refuses new durable
// work below it, while everything that lets space be freed — acknowledgements,
// unsubscribes, session ends, expiry, the compaction task — still commits
// into the reserve. A real ENOSPC that reaches Pebble anyway (the reserve was
// too small, another process filled the disk within one check interval)
// fails the store loudly like any other write error.
//
// Invariants:
//   - A watcher goroutine measures the free space of the store's volume
//     (FS.GetDiskUsage, i.e. statfs) every Options.SpaceCheckInterval, and
//     at once when the commits since the last measurement may have eaten
//     into the reserve (their batch bytes are counted). It is the only
//     writer of the low state, so logging happens in one place: once when
//     the store goes low, once per Options.SpaceLogInterval while it stays
//     low (with how many commits were refused), once when it recovers.
//   - The store is low from a measurement below the reserve until one at or
//     above the reserve plus a margin (reserve/16, so that a volume hovering
//     at the threshold does not flap), and also — without waiting for the
//     watcher — while the bytes committed since the last measurement would
//     leave less than half the reserve.
//   - While low, Commit refuses with an error wrapping ErrNoSpace every
//     commit that contains growth (growth): a publish that stores a message,
//     a retained value or an inbound packet id; a subscription; a session
//     that did not exist. Nothing of a refused commit is applied and its
//     callback is never called. Every other commit is accepted.
//   - A will is not new work: its body is already in its session's record,
//     and firing it is how the session ends. Its EvPublished carries
//     MayUseReserve and is never refused.
//   - A file system that cannot report free space (the in-memory ones)
//     turns the guard off; so does a negative Options.MinFreeSpace.

// ErrNoSpace is wrapped by the error Commit returns when the store's volume
// has less free space than the reserve (Options.MinFreeSpace) and the commit
// would grow the store. Nothing was applied; the caller should refuse the
// work that needed the commit and may try again later: the store resumes by
// itself when space returns.
var ErrNoSpace = errors.New("store: free space below the reserve")

// DefaultMinFreeSpace is the smallest default reserve (see
// Options.MinFreeSpace).
const DefaultMinFreeSpace = 256 << 20

const (
	defaultSpaceCheck = time.Second
	defaultSpaceLog   = 30 * time.Second
	// minRemeasure spaces out the early measurements that commits request.
	minRemeasure = 10 * time.Millisecond
)

// SpaceStats describe the free-space guard (for metrics and logs).
type SpaceStats struct {
	// Guarded is false when the guard is off (negative MinFreeSpace, or a
	// file system that does not report free space).
	Guarded bool
	// Low is true while growth is refused.
	Low bool
	// Avail is the free space of the volume at the last measurement.
	Avail uint64
	// Reserve is the configured reserve.
	Reserve uint64
	// Refused counts the commits refused since Open.
	Refused uint64
	// Checks counts the measurements since Open.
	Checks uint64
}

type spaceGuard struct {
	s        *Store
	fs       vfs.FS
	reserve  uint64
	resume   uint64
	every    time.Duration
	logEvery time.Duration

	on      atomic.Bool
	low     atomic.Bool
	avail   atomic.Uint64
	written atomic.Int64 // batch bytes committed since the last measurement
	refused atomic.Uint64
	checks  atomic.Uint64

	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup

	// Owned by the watcher goroutine (and start, before it runs).
	lowSince     time.Time
	lastLog      time.Time
	refusedAtLog uint64
	lastMeasure  time.Time
	errLogged    time.Time
}

// start measures once (so that a store opened on a full volume is low from
// its first commit) and runs the watcher.
func (g *spaceGuard) start(s *Store) {
	o := s.opts
	g.s, g.fs = s, o.FS
	if o.MinFreeSpace < 0 {
		s.log.Info("free-space guard off (negative reserve)")
		return
	}
	g.reserve = uint64(o.MinFreeSpace)
	g.resume = g.reserve + g.reserve/16
	g.every, g.logEvery = o.SpaceCheckInterval, o.SpaceLogInterval
	if _, err := g.fs.GetDiskUsage(s.dir); errors.Is(err, vfs.ErrUnsupported) {
		s.log.Debug("free-space guard off: the file system does not report free space")
		return
	}
	g.on.Store(true)
	g.measure(time.Now())
	g.wake = make(chan struct{}, 1)
	g.stop = make(chan struct{})
	g.wg.Add(1)
	go g.loop()
}

// halt stops the watcher.
func (g *spaceGuard) halt() {
	if g.stop != nil {
		close(g.stop)
		g.wg.Wait()
		g.stop = nil
	}
}

func (g *spaceGuard) loop() {
	defer g.wg.Done()
	t := time.NewTicker(g.every)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		case <-g.wake:
			if d := minRemeasure - time.Since(g.lastMeasure); d > 0 {
				select {
				case <-g.stop:
					return
				case <-time.After(d):
				}
			}
		}
		g.measure(time.Now())
	}
}

// measure reads the free space and moves the low state (watcher only).
func (g *spaceGuard) measure(now time.Time) {
	g.lastMeasure = now
	du, err := g.fs.GetDiskUsage(g.s.dir)
	if err != nil {
		// Keep the last state: a transient statfs failure is no reason to
		// start or stop refusing.
		if now.Sub(g.errLogged) >= g.logEvery {
			g.errLogged = now
			g.s.log.Warn("free-space guard: cannot measure free space", "dir", g.s.dir, "err", err)
		}
		return
	}
	g.checks.Add(1)
	g.avail.Store(du.AvailBytes)
	g.written.Store(0)
	refused := g.refused.Load()
	switch wasLow := g.low.Load(); {
	case !wasLow && du.AvailBytes < g.reserve:
		g.low.Store(true)
		g.lowSince, g.lastLog, g.refusedAtLog = now, now, refused
		g.s.log.Error("free space below the reserve: refusing new durable work until space returns",
			"dir", g.s.dir, "avail", du.AvailBytes, "reserve", g.reserve, "total", du.TotalBytes)
	case wasLow && du.AvailBytes >= g.resume:
		g.low.Store(false)
		g.s.log.Warn("free space is back above the reserve: accepting new durable work again",
			"dir", g.s.dir, "avail", du.AvailBytes, "reserve", g.reserve,
			"low_for", now.Sub(g.lowSince).Round(time.Millisecond), "refused", refused-g.refusedAtLog)
	case wasLow && now.Sub(g.lastLog) >= g.logEvery:
		g.s.log.Error("free space still below the reserve: refusing new durable work",
			"dir", g.s.dir, "avail", du.AvailBytes, "reserve", g.reserve,
			"low_for", now.Sub(g.lowSince).Round(time.Second), "refused_since_last_log", refused-g.refusedAtLog)
		g.lastLog, g.refusedAtLog = now, refused
	}
}

// tight reports whether growth must be refused now. Commits call it on
// every commit, so it is a few atomic loads unless space is short.
func (g *spaceGuard) tight() bool {
	if !g.on.Load() {
		return false
	}
	if g.low.Load() {
		return true
	}
	avail, w := g.avail.Load(), uint64(max(g.written.Load(), 0))
	left := uint64(0)
	if avail > w {
		left = avail - w
	}
	if left >= g.reserve {
		return false
	}
	select { // ask the watcher to measure now
	case g.wake <- struct{}{}:
	default:
	}
	return left < g.reserve/2
}

// wrote counts a committed batch's bytes against the last measurement.
func (g *spaceGuard) wrote(n int) { g.written.Add(int64(n)) }

// refuse returns the ErrNoSpace error for a refused commit and counts it.
func (g *spaceGuard) refuse() error {
	g.refused.Add(1)
	return fmt.Errorf("%w: %d bytes free on the volume of %s, reserve %d", ErrNoSpace, g.avail.Load(), g.s.dir, g.reserve)
}

// growth reports whether evs would grow the store with new work (see the
// invariants). Called with s.mu held, so the session lookup sees every
// earlier commit.
func (s *Store) growth(evs []*Event) (bool, error) {
	for i, ev := range evs {
		switch ev.Kind {
		case EvPublished:
			if ev.MayUseReserve {
				continue
			}
			if len(ev.Targets) > 0 || ev.InboundPID != 0 || ev.Msg != nil && ev.Msg.Retain && len(ev.Msg.Payload) > 0 {
				return true, nil
			}
		case EvSubscribed:
			return true, nil
		case EvSessionOpened:
			if droppedIn(evs[:i], ev.Client) {
				continue // a clean start replaces a stored session: no growth
			}
			_, closer, err := s.db.Get(sessionKey(nil, ev.Client))
			if err == nil {
				closer.Close()
				continue // resumed
			}
			if !errors.Is(err, pebble.ErrNotFound) {
				return false, err
			}
			return true, nil
		}
	}
	return false, nil
}

func droppedIn(evs []*Event, client string) bool {
	for _, ev := range evs {
		if (ev.Kind == EvSessionDropped || ev.Kind == EvSessionExpired) && ev.Client == client {
			return true
		}
	}
	return false
}

// SpaceLow reports whether the store refuses growth right now (a caller may
// refuse work up front instead of undoing it after a refused Commit).
func (s *Store) SpaceLow() bool { return s.space.tight() }

// Space returns the state of the free-space guard.
func (s *Store) Space() SpaceStats {
	g := &s.space
	return SpaceStats{
		Guarded: g.on.Load(),
		Low:     g.low.Load(),
		Avail:   g.avail.Load(),
		Reserve: g.reserve,
		Refused: g.refused.Load(),
		Checks:  g.checks.Load(),
	}
}
