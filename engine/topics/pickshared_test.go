package topics

import "testing"

// A shared match names its group as subscribed, and PickShared chooses the
// next member of exactly that group (the same name under another filter is
// another group), skipping offline members while one is online; nothing for
// a group without members.
func TestPickShared(t *testing.T) {
	tr := New()
	tr.Subscribe("a", "$share/g/job/+", Sub{QoS: 1, SubID: 7})
	tr.Subscribe("b", "$share/g/job/+", Sub{QoS: 2})
	tr.Subscribe("c", "$share/g/job/#", Sub{QoS: 1})

	ms := tr.Match("job/1", "", nil, nil)
	groups := map[string]int{}
	for _, m := range ms {
		if !m.Shared {
			t.Fatalf("unexpected ordinary match %+v", m)
		}
		groups[m.Group]++
	}
	if len(ms) != 2 || groups["$share/g/job/+"] != 1 || groups["$share/g/job/#"] != 1 {
		t.Fatalf("Match = %+v, want one member of each group, named", ms)
	}

	online := map[string]bool{"a": false, "b": true}
	for range 3 {
		m, ok := tr.PickShared("$share/g/job/+", func(c string) bool { return online[c] })
		if !ok || m.Client != "b" || m.QoS != 2 || m.Group != "$share/g/job/+" || !m.Shared {
			t.Fatalf("PickShared with only b online = %+v, %v; want b at QoS 2", m, ok)
		}
	}
	online["a"] = true
	seen := map[string]bool{}
	for range 4 {
		m, ok := tr.PickShared("$share/g/job/+", func(c string) bool { return online[c] })
		if !ok {
			t.Fatal("PickShared found no member")
		}
		seen[m.Client] = true
		if m.Client == "a" && (len(m.SubIDs) != 1 || m.SubIDs[0] != 7) {
			t.Fatalf("member a's subscription id: %+v", m)
		}
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("PickShared did not rotate among online members: %v", seen)
	}

	if m, ok := tr.PickShared("$share/g/job/#", nil); !ok || m.Client != "c" {
		t.Fatalf("other filter, same name: %+v, %v; want c", m, ok)
	}
	for _, f := range []string{"$share/h/job/+", "$share/g/other", "job/+", "$share/g/job/x"} {
		if m, ok := tr.PickShared(f, nil); ok {
			t.Errorf("PickShared(%q) = %+v, want none", f, m)
		}
	}
	tr.Unsubscribe("c", "$share/g/job/#")
	if m, ok := tr.PickShared("$share/g/job/#", nil); ok {
		t.Errorf("PickShared of an emptied group = %+v, want none", m)
	}
}
