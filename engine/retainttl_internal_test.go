package engine

import (
	"testing"
	"time"
)

// The most specific matching rule picks the TTL, whatever the rules' order.
func TestRetainedTTLRuleChoice(t *testing.T) {
	rules := []TTLRule{
		{"#", 7 * time.Hour},
		{"sensors/#", time.Hour},
		{"sensors/+/temp", 2 * time.Hour},
		{"+/+/temp", 3 * time.Hour},
		{"sensors/critical/#", 0},
		{"a/+", 4 * time.Hour},
		{"a/+/#", 5 * time.Hour},
		{"a/b", 6 * time.Hour},
	}
	cases := map[string]time.Duration{
		"sensors/x/temp":        2 * time.Hour, // '+' beats '#' at level 2
		"sensors/x/hum":         time.Hour,
		"sensors":               time.Hour, // '#' matches the parent level
		"other/x/temp":          3 * time.Hour,
		"sensors/critical/temp": 0, // a literal beats '+' at level 2: never
		"sensors/critical":      0,
		"a/c":                   4 * time.Hour, // the end beats '#'
		"a/c/d":                 5 * time.Hour,
		"a/b":                   6 * time.Hour,
		"x":                     7 * time.Hour,
		"$SYS/x":                30 * time.Minute, // wildcards do not match '$' topics: the default
	}
	for _, order := range [][]TTLRule{rules, reversed(rules)} {
		b := New(nil, Options{Maint: MaintOptions{RetainedTTL: 30 * time.Minute, RetainedTTLRules: order}})
		for topic, want := range cases {
			if got := b.retainedTTL(topic); got != want {
				t.Errorf("TTL of %q = %v, want %v", topic, got, want)
			}
		}
	}
}

func reversed(r []TTLRule) []TTLRule {
	out := make([]TTLRule, len(r))
	for i, x := range r {
		out[len(r)-1-i] = x
	}
	return out
}

func TestTTLRuleParsing(t *testing.T) {
	for in, want := range map[string]TTLRule{
		"sensors/#=1h":  {"sensors/#", time.Hour},
		"a=b/c=never":   {"a=b/c", 0},
		"x/+=90s":       {"x/+", 90 * time.Second},
		"dev/+/state=0": {"dev/+/state", 0},
	} {
		got, err := ParseTTLRule(in)
		if err != nil || got != want {
			t.Errorf("ParseTTLRule(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"nofilter", "=1h", "a/#=-1h", "a/#=soon"} {
		if _, err := ParseTTLRule(bad); err == nil {
			t.Errorf("ParseTTLRule(%q) accepted", bad)
		}
	}
	for _, bad := range [][]TTLRule{{{"a/#/b", time.Hour}}, {{"$share/g/a", time.Hour}}, {{"a", time.Hour}, {"a", time.Minute}}} {
		if err := (MaintOptions{RetainedTTLRules: bad}).Check(); err == nil {
			t.Errorf("rules %+v accepted", bad)
		}
	}
}
