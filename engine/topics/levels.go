package topics

import "strings"

// sharePrefix introduces a shared subscription filter (MQTT 5.0 §4.8.2).
const sharePrefix = "$share/"

// nextLevel returns the level of s that starts at byte offset i, and the
// offset at which the following level starts. When the returned level is the
// last one, next is len(s)+1: that sentinel (rather than len(s)) keeps a
// trailing empty level distinct from "no more levels" ("a/" has the two levels
// "a" and "", so after "a" the next offset is 2 == len(s) and one more, empty,
// level remains). Callers iterate with i <= len(s); no []string is built, which
// keeps routing allocation-free.
func nextLevel(s string, i int) (level string, next int) {
	j := strings.IndexByte(s[i:], '/')
	if j < 0 {
		return s[i:], len(s) + 1
	}
	return s[i : i+j], i + j + 1
}

// SplitShared splits a shared subscription filter "$share/<group>/<filter>"
// into its group name and the filter that is matched against topic names. ok is
// false when filter is not a well-formed shared filter (no "$share/" prefix,
// an empty group name or an empty filter); such a filter is treated everywhere
// in this package as an ordinary filter, matched literally.
func SplitShared(filter string) (group, topicFilter string, ok bool) {
	if !strings.HasPrefix(filter, sharePrefix) {
		return "", filter, false
	}
	rest := filter[len(sharePrefix):]
	j := strings.IndexByte(rest, '/')
	if j <= 0 || j == len(rest)-1 {
		return "", filter, false
	}
	return rest[:j], rest[j+1:], true
}

// Matches reports whether filter matches the topic name topic, using the same
// rules as [Trie.Match] and [Retained.Match]. A shared filter is matched by its
// filter part. It does not allocate; it is meant for one-off checks (for
// example authorization rules), not for routing to many subscriptions.
func Matches(filter, topic string) bool {
	if _, f, ok := SplitShared(filter); ok {
		filter = f
	}
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	fi, ti := 0, 0
	for {
		fl, fnext := nextLevel(filter, fi)
		if fl == "#" {
			// '#' also matches the parent level, so it matches even when the
			// topic has no levels left.
			return true
		}
		if ti > len(topic) {
			return false // the filter wants more levels than the topic has
		}
		tl, tnext := nextLevel(topic, ti)
		if fl != "+" && fl != tl {
			return false
		}
		fi, ti = fnext, tnext
		if fi > len(filter) {
			return ti > len(topic)
		}
	}
}
