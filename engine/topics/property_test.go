package topics

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// naiveMatch is the reference matcher: the rules of MQTT §4.7 applied to
// split levels, written for obviousness rather than speed.
func naiveMatch(filter, topic string) bool {
	f := strings.Split(filter, "/")
	tp := strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, l := range f {
		if l == "#" {
			return true
		}
		if i >= len(tp) || (l != "+" && l != tp[i]) {
			return false
		}
	}
	return len(f) == len(tp)
}

// Small alphabets make collisions (overlaps, replacements, shared groups)
// frequent; "" and "$x" cover empty levels and the '$' rule.
var (
	propClients    = []string{"c0", "c1", "c2", "c3", "c4"}
	propTopicLevel = []string{"a", "b", "", "$x"}
	propFiltLevel  = []string{"a", "b", "", "$x", "+", "+"}
)

func genTopic() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		return strings.Join(rapid.SliceOfN(rapid.SampledFrom(propTopicLevel), 1, 4).Draw(t, "levels"), "/")
	})
}

func genFilter(sharedToo bool) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		levels := rapid.SliceOfN(rapid.SampledFrom(propFiltLevel), 0, 4).Draw(t, "levels")
		if len(levels) == 0 || rapid.IntRange(0, 3).Draw(t, "hash") == 0 {
			levels = append(levels, "#")
		}
		f := strings.Join(levels, "/")
		if sharedToo && rapid.IntRange(0, 2).Draw(t, "shared") == 0 {
			f = "$share/" + rapid.SampledFrom([]string{"g", "h"}).Draw(t, "group") + "/" + f
		}
		return f
	})
}

func genSub() *rapid.Generator[Sub] {
	return rapid.Custom(func(t *rapid.T) Sub {
		return Sub{
			QoS:               byte(rapid.IntRange(0, 2).Draw(t, "qos")),
			NoLocal:           rapid.IntRange(0, 3).Draw(t, "nolocal") == 0,
			RetainAsPublished: rapid.Bool().Draw(t, "rap"),
			RetainHandling:    byte(rapid.IntRange(0, 2).Draw(t, "rh")),
			SubID:             uint32(rapid.IntRange(0, 3).Draw(t, "subid")),
		}
	})
}

func TestMatchesAgreesWithReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f, topic := genFilter(true).Draw(t, "filter"), genTopic().Draw(t, "topic")
		_, plain, _ := SplitShared(f)
		if got, want := Matches(f, topic), naiveMatch(plain, topic); got != want {
			t.Fatalf("Matches(%q, %q) = %v, want %v", f, topic, got, want)
		}
	})
}

// TestTrieAgainstModel drives the trie with random operations and compares
// every Match with a brute-force evaluation of a plain map of subscriptions.
func TestTrieAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tr := New()
		model := map[string]map[string]Sub{} // client → filter → options
		count := func() int {
			n := 0
			for _, fs := range model {
				n += len(fs)
			}
			return n
		}
		t.Repeat(map[string]func(*rapid.T){
			"subscribe": func(t *rapid.T) {
				c := rapid.SampledFrom(propClients).Draw(t, "client")
				f := genFilter(true).Draw(t, "filter")
				sub := genSub().Draw(t, "sub")
				_, exists := model[c][f]
				if got := tr.Subscribe(c, f, sub); got != !exists {
					t.Fatalf("Subscribe(%q, %q) = %v, want %v", c, f, got, !exists)
				}
				if model[c] == nil {
					model[c] = map[string]Sub{}
				}
				model[c][f] = sub
			},
			"unsubscribe": func(t *rapid.T) {
				c := rapid.SampledFrom(propClients).Draw(t, "client")
				var f string
				if fs := slices.Sorted(maps.Keys(model[c])); len(fs) > 0 && rapid.IntRange(0, 3).Draw(t, "known") > 0 {
					f = rapid.SampledFrom(fs).Draw(t, "filter")
				} else {
					f = genFilter(true).Draw(t, "filter")
				}
				_, exists := model[c][f]
				if got := tr.Unsubscribe(c, f); got != exists {
					t.Fatalf("Unsubscribe(%q, %q) = %v, want %v", c, f, got, exists)
				}
				delete(model[c], f)
				if len(model[c]) == 0 {
					delete(model, c)
				}
			},
			"unsubscribeAll": func(t *rapid.T) {
				c := rapid.SampledFrom(propClients).Draw(t, "client")
				if got, want := tr.UnsubscribeAll(c), len(model[c]); got != want {
					t.Fatalf("UnsubscribeAll(%q) = %d, want %d", c, got, want)
				}
				delete(model, c)
			},
			"match": func(t *rapid.T) {
				topic := genTopic().Draw(t, "topic")
				publisher := rapid.SampledFrom(append([]string{""}, propClients...)).Draw(t, "publisher")
				var online func(string) bool
				if rapid.Bool().Draw(t, "useOnline") {
					up := map[string]bool{}
					for _, c := range propClients {
						up[c] = rapid.Bool().Draw(t, "online "+c)
					}
					online = func(c string) bool { return up[c] }
				}
				got := tr.Match(topic, publisher, online, nil)
				checkMatch(t, model, topic, publisher, online, got)
			},
			"": func(t *rapid.T) {
				if got, want := tr.Count(), count(); got != want {
					t.Fatalf("Count = %d, want %d", got, want)
				}
				for _, c := range propClients {
					got := tr.Subscriptions(c)
					if !maps.Equal(got, model[c]) {
						t.Fatalf("Subscriptions(%q) = %v, want %v", c, got, model[c])
					}
				}
			},
		})
		for _, c := range propClients {
			tr.UnsubscribeAll(c)
		}
		if !tr.isEmpty() || tr.nodes() != 0 {
			t.Fatalf("trie not empty after removing everything: %d nodes", tr.nodes())
		}
	})
}

type groupKey struct{ name, filter string }

// checkMatch verifies a Match result against the model. Ordinary entries
// must equal the brute-force aggregation exactly. Shared entries are checked
// as an assignment problem: there must be exactly one per matching group that
// has an eligible member, and some one-to-one assignment of entries to groups
// must exist in which each entry is an eligible member of its group (online if
// the group has an online eligible member) carrying that member's options.
func checkMatch(t *rapid.T, model map[string]map[string]Sub, topic, publisher string, online func(string) bool, got []Match) {
	want := map[string]*Match{}
	groups := map[groupKey][]subscriber{}
	for c, fs := range model {
		for f, sub := range fs {
			name, plain, shared := SplitShared(f)
			if !naiveMatch(plain, topic) {
				continue
			}
			if sub.NoLocal && c == publisher {
				continue
			}
			if shared {
				k := groupKey{name, plain}
				groups[k] = append(groups[k], subscriber{c, sub})
				continue
			}
			// Aggregated independently of merge, so a bug there shows.
			e := want[c]
			if e == nil {
				e = &Match{Client: c}
				want[c] = e
			}
			e.QoS = max(e.QoS, sub.QoS)
			e.RetainAsPublished = e.RetainAsPublished || sub.RetainAsPublished
			if sub.SubID != 0 {
				e.SubIDs = append(e.SubIDs, sub.SubID)
			}
		}
	}
	var wantPlain, gotPlain, gotShared []Match
	for _, e := range want {
		wantPlain = append(wantPlain, *e)
	}
	for _, e := range got {
		if e.Shared {
			gotShared = append(gotShared, e)
		} else {
			gotPlain = append(gotPlain, e)
		}
	}
	if a, b := normalize(gotPlain), normalize(wantPlain); !reflect.DeepEqual(a, b) {
		t.Fatalf("Match(%q, %q) ordinary entries\n got %+v\nwant %+v", topic, publisher, a, b)
	}

	keys := slices.Collect(maps.Keys(groups))
	if len(gotShared) != len(keys) {
		t.Fatalf("Match(%q) gave %d shared entries for %d matching groups %v: %+v", topic, len(gotShared), len(keys), groups, gotShared)
	}
	fits := func(e Match, k groupKey) bool {
		members := groups[k]
		anyOnline := online == nil || slices.ContainsFunc(members, func(s subscriber) bool { return online(s.client) })
		for _, s := range members {
			if s.client != e.Client || (anyOnline && online != nil && !online(s.client)) {
				continue
			}
			var ids []uint32
			if s.sub.SubID != 0 {
				ids = []uint32{s.sub.SubID}
			}
			if e.QoS == s.sub.QoS && e.RetainAsPublished == s.sub.RetainAsPublished && slices.Equal(e.SubIDs, ids) {
				return true
			}
		}
		return false
	}
	used := make([]bool, len(keys))
	var assign func(i int) bool
	assign = func(i int) bool {
		if i == len(gotShared) {
			return true
		}
		for j, k := range keys {
			if !used[j] && fits(gotShared[i], k) {
				used[j] = true
				if assign(i + 1) {
					return true
				}
				used[j] = false
			}
		}
		return false
	}
	if !assign(0) {
		t.Fatalf("Match(%q): shared entries %+v cannot be assigned to groups %v", topic, gotShared, groups)
	}
}
