package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// Server-side retained TTL: how long the broker keeps a retained message,
// independently of the publisher's 5.0 message expiry.
//
// Invariants:
//   - The TTL is turned into an absolute deadline (Message.RetainUntil) when
//     the retained message is accepted, and stored with it: time the broker
//     is down counts, and changing the rules later does not re-date
//     messages already retained.
//   - The deadline concerns the retained copy only: copies queued for
//     subscribers keep their own 5.0 expiry, and a subscriber is never told
//     the server TTL as a message expiry interval.
//   - Rule choice is by specificity, not by order (YAML maps have none):
//     among the rules whose filter matches the topic, the most specific
//     wins — compared level by level from the left, at the first level where
//     two filters differ, a literal level beats '+', '+' beats the end of a
//     filter, and the end beats '#'. So for "sensors/a/temp", "sensors/+/temp"
//     beats "sensors/#", which beats "+/+/temp"; and "a/+" beats "a/+/#" for
//     "a/b". Two different filters that both match a topic always differ
//     somewhere, so the choice is unique. No matching rule: the default.

// TTLRule is one per-filter retained TTL. TTL 0 means never expire (an
// exemption from a default TTL).
type TTLRule struct {
	Filter string
	TTL    time.Duration
}

// ParseTTL parses a rule value: a Go duration ("90s", "1h30m") or "never"
// (also "0").
func ParseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "never" || s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("retained TTL %q: want a duration like 1h or \"never\"", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("retained TTL %q must be positive (or \"never\")", s)
	}
	return d, nil
}

// checkTTLRules validates the rules and returns them most specific first.
func checkTTLRules(rules []TTLRule) ([]TTLRule, error) {
	seen := make(map[string]bool, len(rules))
	for _, r := range rules {
		if err := wire.ValidateTopicFilter(r.Filter); err != nil {
			return nil, fmt.Errorf("retained TTL filter %q: %w", r.Filter, err)
		}
		if _, _, shared, _ := wire.ParseSharedFilter(r.Filter); shared {
			return nil, fmt.Errorf("retained TTL filter %q: a shared subscription filter names no topics", r.Filter)
		}
		if r.TTL < 0 {
			return nil, fmt.Errorf("retained TTL for %q is negative", r.Filter)
		}
		if seen[r.Filter] {
			return nil, fmt.Errorf("retained TTL filter %q given twice", r.Filter)
		}
		seen[r.Filter] = true
	}
	out := slices.Clone(rules)
	slices.SortStableFunc(out, func(a, b TTLRule) int { return -compareSpecificity(a.Filter, b.Filter) })
	return out, nil
}

// levelRank orders the level at index i of a filter's levels by
// specificity (see the header comment): past the last level is the end.
func levelRank(levels []string, i int) int {
	switch {
	case i >= len(levels):
		return 1
	case levels[i] == "#":
		return 0
	case levels[i] == "+":
		return 2
	}
	return 3
}

// compareSpecificity returns >0 if filter a is more specific than b, <0 if
// less, 0 if neither (see the header comment).
func compareSpecificity(a, b string) int {
	la, lb := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < max(len(la), len(lb)); i++ {
		if d := levelRank(la, i) - levelRank(lb, i); d != 0 {
			return d
		}
	}
	return 0
}

// retainedTTL returns the TTL that applies to topic (0: none).
func (b *Broker) retainedTTL(topic string) time.Duration {
	for _, r := range b.opts.Maint.RetainedTTLRules {
		if wire.MatchTopic(r.Filter, topic) {
			return r.TTL
		}
	}
	return b.opts.Maint.RetainedTTL
}

// stampRetained sets the retention deadline of a retained message that is
// about to be committed.
func (b *Broker) stampRetained(msg *store.Message, now int64) {
	if !msg.Retain || len(msg.Payload) == 0 {
		return
	}
	if ttl := b.retainedTTL(msg.Topic); ttl > 0 {
		msg.RetainUntil = now + int64(ttl)
	}
}

// ParseTTLRule parses "FILTER=DURATION" (the --retained-ttl-filter flag).
func ParseTTLRule(s string) (TTLRule, error) {
	i := strings.LastIndexByte(s, '=')
	if i <= 0 {
		return TTLRule{}, fmt.Errorf("retained TTL rule %q: want FILTER=DURATION", s)
	}
	d, err := ParseTTL(s[i+1:])
	if err != nil {
		return TTLRule{}, err
	}
	return TTLRule{Filter: s[:i], TTL: d}, nil
}
