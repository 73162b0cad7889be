package bridge

// Topic mapping: which rule a message falls under and what it is called on
// the other side.
//
// Invariants:
//   - The first rule (in config order) of the right direction whose filter
//     matches the topic decides; later rules never see the message
//     (mosquitto's order too), so overlapping rules forward a message once.
//   - A mapped topic is always a valid topic name; a message that cannot be
//     mapped (a "a/#" rule's parent level "a" with a remote prefix that does
//     not end in "/", say) is reported unmappable and dropped by the caller,
//     counted.

import (
	"strings"

	"github.com/cairn-mqtt/cairn/wire"
)

// topicMap renames topics one way.
type topicMap struct {
	rules []mapping
}

type mapping struct {
	filter   string // on the side messages come from
	from, to string // prefixes
	exact    bool   // empty pattern: from and to are whole topics
}

// outMap renames local topics to remote ones (rules with Out).
func outMap(rules []Rule) *topicMap {
	m := &topicMap{}
	for _, r := range rules {
		if r.Direction&Out != 0 {
			m.rules = append(m.rules, mapping{filter: r.LocalFilter(), from: r.LocalPrefix, to: r.RemotePrefix, exact: r.Pattern == ""})
		}
	}
	return m
}

// inMap renames remote topics to local ones (rules with In).
func inMap(rules []Rule) *topicMap {
	m := &topicMap{}
	for _, r := range rules {
		if r.Direction&In != 0 {
			m.rules = append(m.rules, mapping{filter: r.RemoteFilter(), from: r.RemotePrefix, to: r.LocalPrefix, exact: r.Pattern == ""})
		}
	}
	return m
}

// apply returns the other side's name of topic, and false when no rule
// matches it or its mapped name would not be a valid topic.
func (m *topicMap) apply(topic string) (string, bool) {
	for _, r := range m.rules {
		if r.exact {
			if topic == r.from {
				return r.to, true
			}
			continue
		}
		if !wire.MatchTopic(r.filter, topic) {
			continue
		}
		return r.rename(topic)
	}
	return "", false
}

func (r mapping) rename(topic string) (string, bool) {
	var out string
	if rest, ok := strings.CutPrefix(topic, r.from); ok {
		out = r.to + rest
	} else {
		// Only "prefix/#" matches a topic without its prefix: the parent
		// level, prefix minus its "/". It maps to the other prefix minus
		// its "/", if it has one.
		to, ok := strings.CutSuffix(r.to, "/")
		if !ok || topic+"/" != r.from {
			return "", false
		}
		out = to
	}
	if wire.ValidateTopicName(out) != nil {
		return "", false
	}
	return out, true
}

// filters are the subscriptions a side needs: each rule's filter on that
// side, once, at the highest QoS of the rules that share it.
func filters(rules []Rule, dir Direction) []wire.Subscription {
	var subs []wire.Subscription
	idx := map[string]int{}
	for _, r := range rules {
		if r.Direction&dir == 0 {
			continue
		}
		f := r.LocalFilter()
		if dir == In {
			f = r.RemoteFilter()
		}
		if i, ok := idx[f]; ok {
			subs[i].QoS = max(subs[i].QoS, r.QoS)
			continue
		}
		idx[f] = len(subs)
		// No Local: the bridge never receives back what it published on
		// that side (loop prevention). Retain As Published keeps the
		// publisher's RETAIN flag across the bridge. Retain Handling 1:
		// retained messages only for a new subscription, so that
		// resubscribing after a reconnect does not forward them again.
		subs = append(subs, wire.Subscription{Filter: f, QoS: r.QoS, NoLocal: true, RetainAsPublished: true, RetainHandling: 1})
	}
	return subs
}
