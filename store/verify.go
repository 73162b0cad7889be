package store

import (
	"fmt"
	"maps"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// VerifyError lists the invariant violations Verify found.
type VerifyError struct {
	Problems []string // at most maxProblems, then a count of the rest
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("store: %d consistency problem(s):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

const maxProblems = 100

// Verify checks the store's internal invariants against one consistent
// snapshot (Check; check.go lists them) and returns a *VerifyError listing
// the violations, or nil. Warnings (a gap in the event log, unknown keys)
// are not violations, and neither is ProblemNoSession: that every queue
// belongs to a stored session is the engine's rule, not the store's (the
// store's own tests queue for clients that never opened a session);
// `cairn recover` checks it. It reads the whole store: it is for `recover`, tests
// and offline checks, not the hot path.
func (s *Store) Verify() error {
	rep, err := s.Check()
	if err != nil {
		return err
	}
	var out []string
	extra := rep.Omitted
	for _, p := range rep.Problems {
		if p.Warning || p.Kind == ProblemNoSession {
			continue
		}
		if len(out) >= maxProblems {
			extra++
			continue
		}
		if p.Key != "" {
			out = append(out, p.Key+": "+p.Detail)
		} else {
			out = append(out, p.Detail)
		}
	}
	if len(out) == 0 {
		return nil
	}
	if extra > 0 {
		out = append(out, fmt.Sprintf("... and %d more", extra))
	}
	return &VerifyError{Problems: out}
}

func (s *Store) copyQueues() map[string]QueueInfo {
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	return maps.Clone(s.queues)
}

// verifier iterates families of one reader, keeping the first error
// (compact.go's orphan collection uses it).
type verifier struct {
	r   pebble.Reader
	err error
}

// each iterates one family; decode or iteration errors stop the walk.
func (v *verifier) each(fam byte, fn func(key, val []byte) error) {
	if v.err != nil {
		return
	}
	v.err = iterFamily(v.r, fam, fn)
}
