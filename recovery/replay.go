package recovery

// `cairn replay`: re-derive projections from the event log.
//
// Apply is a function of the logged events alone (store/apply.go), so
// replaying a store's log into an empty store rebuilds its projections key
// for key. Replay writes the result into a fresh store (to look at the state
// as of a seq, or to rebuild a store whose projections are suspect);
// VerifyReplay rebuilds in memory and compares with the live projections,
// which proves that the materialized state and the history agree.
//
// A log whose beginning was truncated (compaction) cannot rebuild the
// projections: VerifyReplay refuses it rather than report the missing
// history as differences, and Replay says how much was missing.

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-mqtt/cairn/store"
)

// ReplayOptions select what Replay replays.
type ReplayOptions struct {
	From, To uint64 // seq range, inclusive; 0: from the start / to the end
	// Progress, if set, is called now and then with the events replayed so
	// far and the number expected.
	Progress func(done, total uint64)
}

// ReplayResult says what was replayed.
type ReplayResult struct {
	Events    int           `json:"events"`
	FirstSeq  uint64        `json:"first_seq"`
	LastSeq   uint64        `json:"last_seq"`
	Truncated bool          `json:"truncated"` // the source log does not start at seq 1
	Took      time.Duration `json:"took_ns"`
}

// ErrTruncatedLog is returned by VerifyReplay for a log that no longer
// holds the whole history.
var ErrTruncatedLog = errors.New("recovery: the event log is truncated")

const progressEvery = 4096

// Replay replays src's logged events with seq in [From, To] into dst, a
// fresh store (LastSeq 0), and syncs dst.
func Replay(src, dst *store.Store, opts ReplayOptions) (ReplayResult, error) {
	start := time.Now()
	var res ReplayResult
	if dst.LastSeq() != 0 {
		return res, fmt.Errorf("recovery: replay target %s is not empty (last seq %d)", dst.Dir(), dst.LastSeq())
	}
	first, truncated, err := src.LogStart()
	if err != nil {
		return res, err
	}
	res.Truncated = truncated
	to := src.LastSeq()
	if opts.To > 0 {
		to = min(to, opts.To)
	}
	from := max(opts.From, first)
	var total uint64
	if to >= from {
		total = to - from + 1
	}
	errDone := errors.New("done")
	err = src.Events(from, func(ev *store.Event) error {
		if ev.Seq > to {
			return errDone
		}
		if err := dst.ReplayEvent(ev); err != nil {
			return fmt.Errorf("recovery: replaying event %d: %w", ev.Seq, err)
		}
		if res.Events == 0 {
			res.FirstSeq = ev.Seq
		}
		res.Events++
		res.LastSeq = ev.Seq
		if opts.Progress != nil && res.Events%progressEvery == 0 {
			opts.Progress(ev.Seq-from+1, total)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		return res, err
	}
	if err := dst.Sync(); err != nil {
		return res, fmt.Errorf("recovery: sync replayed store: %w", err)
	}
	if opts.Progress != nil {
		opts.Progress(total, total)
	}
	res.Took = time.Since(start)
	return res, nil
}

// VerifyResult is the outcome of VerifyReplay.
type VerifyResult struct {
	Replay      ReplayResult       `json:"replay"`
	Differences []store.Difference `json:"differences"`
	// Omitted counts differences beyond the listed ones.
	Omitted int `json:"omitted,omitempty"`
}

const maxDifferences = 10000

// VerifyReplay rebuilds src's projections from its whole log in memory and
// compares them with src's own, listing every difference ("extra": only in
// src, "missing": only in the rebuild, "differs").
func VerifyReplay(src *store.Store, progress func(done, total uint64)) (*VerifyResult, error) {
	first, truncated, err := src.LogStart()
	if err != nil {
		return nil, err
	}
	if truncated {
		return nil, fmt.Errorf("%w: it starts at seq %d, so the history before it is gone and the projections cannot be rebuilt from it", ErrTruncatedLog, first)
	}
	mem, err := store.Open("replay", store.Options{FS: vfs.NewMem(), Logger: quiet(), MemTableSize: 16 << 20})
	if err != nil {
		return nil, fmt.Errorf("recovery: in-memory store: %w", err)
	}
	defer mem.Close()
	res := &VerifyResult{Differences: []store.Difference{}}
	if res.Replay, err = Replay(src, mem, ReplayOptions{Progress: progress}); err != nil {
		return nil, err
	}
	err = store.CompareProjections(src, mem, func(d store.Difference) error {
		if len(res.Differences) < maxDifferences {
			res.Differences = append(res.Differences, d)
		} else {
			res.Omitted++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recovery: comparing projections: %w", err)
	}
	return res, nil
}

// quiet is the logger of the scratch stores recovery opens itself.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
