// Package topics routes PUBLISH topic names to subscriptions and indexes
// retained messages, following the topic rules of MQTT 3.1.1 §4.7 and
// MQTT 5.0 §4.7 and §4.8.2.
//
// Two structures live here:
//
//   - [Trie] holds every client's subscriptions (including shared
//     subscriptions "$share/<group>/<filter>") in a tree keyed by filter level,
//     so routing a topic name walks only the branches that can match it
//     instead of testing every filter.
//   - [Retained] holds retained messages in a tree keyed by topic level, so a
//     new subscription finds the retained messages its filter matches without
//     scanning them all.
//
// Topic rules implemented by both (they are the same rules seen from the two
// sides):
//
//   - levels are separated by '/', and empty levels are real levels ("a//b"
//     has three levels, "/a" has two, the first one empty);
//   - '+' matches exactly one level, including an empty one;
//   - '#' matches its parent level and any number of child levels ("a/#"
//     matches "a", "a/b" and "a/b/c");
//   - a filter whose first level is a wildcard ('+' or '#') does not match a
//     topic name starting with '$' ("$SYS/x" is matched by "$SYS/#" but not by
//     "#" or "+/x").
//
// Filters and topic names are assumed to have been validated by the caller
// (wildcards only as whole levels, '#' only last, no wildcards in topic
// names); this package does not re-validate them on the routing hot path, and
// an invalid filter simply matches what its levels literally say.
//
// The package deliberately does not depend on the wire codec: the only parsing
// it needs is splitting on '/', which it does by index without allocating.
package topics
