package bridge_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/wire"
)

// TestReload: a reload leaves an unchanged bridge's link alone, restarts a
// changed one with its new rules, starts a new one and retires a removed
// one (its session stops queuing); an invalid list changes nothing.
func TestReload(t *testing.T) {
	remote := newNode(t, "")
	sink := dial(t, remote.addr, "sink", wire.V311, true)
	sink.subscribe(wire.Subscription{Filter: "#", QoS: 1})
	a := fastRetry(bridge.Config{Name: "a", Address: remote.addr, Rules: rules(t, `a/# out 1`)})
	keep := fastRetry(bridge.Config{Name: "keep", Address: remote.addr, Rules: rules(t, `k/# out 1`)})
	local := newNode(t, "", a, keep)
	connected := func(names ...string) bool {
		for _, n := range names {
			if local.status(n).State != bridge.StateConnected {
				return false
			}
		}
		return true
	}
	if !waitFor(10*time.Second, func() bool { return connected("a", "keep") }) {
		t.Fatalf("bridges not connected: %+v", local.mgr.Status())
	}
	pub := dial(t, local.addr, "pub", wire.V311, false)
	// forwarded publishes one message on each topic and returns the topics
	// that reached the remote.
	forwarded := func(topics ...string) []string {
		t.Helper()
		for _, tp := range topics {
			pub.publish(1, 1, seqTopic(tp), seqPayload)
		}
		var got []string
		for _, p := range sink.collect(len(topics), time.Second) {
			got = append(got, p.Topic)
		}
		slices.Sort(got)
		return got
	}
	if got := forwarded("a/1", "k/1", "b/1", "c/1"); !slices.Equal(got, []string{"a/1", "k/1"}) {
		t.Fatalf("before the reload the remote got %v", got)
	}
	keepConnects := local.status("keep").Connects

	a.Rules = rules(t, `b/# out 1`)
	c := fastRetry(bridge.Config{Name: "c", Address: remote.addr, Rules: rules(t, `c/# out 1`)})
	if err := local.mgr.Reload([]bridge.Config{c, keep, a}); err != nil {
		t.Fatalf("reload: %v", err)
	}
	var names []string
	for _, s := range local.mgr.Status() {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"c", "keep", "a"}) {
		t.Fatalf("bridges after the reload %v, want the new config's order", names)
	}
	if !waitFor(10*time.Second, func() bool { return connected("a", "c", "keep") }) {
		t.Fatalf("bridges not connected after the reload: %+v", local.mgr.Status())
	}
	if got := forwarded("a/2", "b/2", "c/2", "k/2"); !slices.Equal(got, []string{"b/2", "c/2", "k/2"}) {
		t.Fatalf("after the reload the remote got %v, want b/2 c/2 k/2", got)
	}
	if n := local.status("keep").Connects; n != keepConnects {
		t.Fatalf("the unchanged bridge reconnected: %d connects, had %d", n, keepConnects)
	}

	if err := local.mgr.Reload([]bridge.Config{keep, keep}); err == nil {
		t.Fatal("a list with a duplicate name was accepted")
	}
	if len(local.mgr.Status()) != 3 {
		t.Fatalf("an invalid reload changed the bridges: %+v", local.mgr.Status())
	}

	if err := local.mgr.Reload([]bridge.Config{keep}); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if f := local.b.SessionFilters(a.ClientIDLocal()); len(f) != 0 {
		t.Fatalf("a removed bridge's session still subscribes to %v", f)
	}
	if got := forwarded("b/3", "c/3", "k/3"); !slices.Equal(got, []string{"k/3"}) {
		t.Fatalf("after removing a and c the remote got %v, want k/3", got)
	}
	if d, _ := local.b.SessionQueue(c.ClientIDLocal()); d != 0 {
		t.Fatalf("a removed bridge's session queued %d messages", d)
	}

	// A new config the local broker refuses (a filter over its 128 levels)
	// leaves the bridge running with its previous one, and says so.
	tooDeep := keep
	tooDeep.Rules = rules(t, strings.Repeat("x/", 130)+"# out 1")
	err := local.mgr.Reload([]bridge.Config{tooDeep})
	if err == nil || !strings.Contains(err.Error(), "still runs with its previous config") {
		t.Fatalf("reload with a config that cannot start: %v", err)
	}
	if !waitFor(10*time.Second, func() bool { return connected("keep") }) {
		t.Fatalf("the bridge is not running its previous config: %+v", local.mgr.Status())
	}
	if got := forwarded("k/4"); !slices.Equal(got, []string{"k/4"}) {
		t.Fatalf("with its previous config the bridge forwarded %v, want k/4", got)
	}

	local.mgr.Stop()
	if err := local.mgr.Reload([]bridge.Config{keep}); err == nil {
		t.Fatal("a reload after Stop started bridges")
	}
}
