package wire

// Topic names, topic filters, shared-subscription filters and client
// identifiers (MQTT 5.0 section 4.7-4.8, 3.1.1 section 4.7).
//
// Invariants:
//   - A valid topic name is 1..65535 bytes of UTF-8 without U+0000, '+' or '#'.
//   - A valid topic filter is 1..65535 bytes of UTF-8 without U+0000, in which
//     '+' only ever fills a whole level and '#' only the whole last level.
//   - A filter starting with "$share/" is a shared filter
//     "$share/{group}/{filter}": the group is non-empty without '/', '+' or
//     '#', and filter is a valid non-empty topic filter. In packets that
//     rule is 5.0's (checkFilterFor): a 3.x SUBSCRIBE or UNSUBSCRIBE needs
//     only the plain wildcard rules, "$share//a" included.
//   - Validation and matching do not allocate unless they return an error.

import "strings"

const sharePrefix = "$share/"

func topicErr(t PacketType, format string, args ...any) error {
	e := malformed(t, format, args...)
	e.Code = TopicNameInvalid
	return e
}

func filterErr(t PacketType, format string, args ...any) error {
	e := malformed(t, format, args...)
	e.Code = TopicFilterInvalid
	return e
}

// ValidateTopicName returns nil if s may be used as the topic name of a
// PUBLISH (or a will), else an *Error with Code TopicNameInvalid: s is empty,
// longer than 65,535 bytes, not valid UTF-8, or contains U+0000, '+' or '#'.
func ValidateTopicName(s string) error { return checkTopicName(s, 0) }

func checkTopicName(s string, t PacketType) error {
	if s == "" {
		return topicErr(t, "empty topic name")
	}
	if len(s) > maxField {
		return topicErr(t, "topic name of %d bytes exceeds 65535", len(s))
	}
	if !validString(s) {
		return topicErr(t, "topic name %q is not valid UTF-8 or contains U+0000", s)
	}
	if strings.ContainsAny(s, "+#") {
		return topicErr(t, "wildcard in topic name %q", s)
	}
	return nil
}

// ValidateTopicFilter returns nil if s is a valid topic filter, else an
// *Error with Code TopicFilterInvalid: s is empty, longer than 65,535 bytes,
// not valid UTF-8 or contains U+0000; a '#' is not the whole last level; a
// '+' is not a whole level; or s starts with "$share/" and is not of the
// form "$share/{group}/{filter}" (see ParseSharedFilter).
func ValidateTopicFilter(s string) error { return checkTopicFilter(s, 0) }

func checkTopicFilter(s string, t PacketType) error { return checkFilter(s, t, true) }

// checkFilter checks s as a topic filter; with shared, a "$share/" prefix
// must introduce a well-formed shared filter.
func checkFilter(s string, t PacketType, shared bool) error {
	if len(s) > maxField {
		return filterErr(t, "topic filter of %d bytes exceeds 65535", len(s))
	}
	if !validString(s) {
		return filterErr(t, "topic filter %q is not valid UTF-8 or contains U+0000", s)
	}
	if shared && strings.HasPrefix(s, sharePrefix) {
		_, _, err := parseShared(s, t)
		return err
	}
	return checkPlainFilter(s, t)
}

// checkPlainFilter checks the wildcard rules of a non-shared filter.
func checkPlainFilter(s string, t PacketType) error {
	if s == "" {
		return filterErr(t, "empty topic filter")
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '#':
			if (i > 0 && s[i-1] != '/') || i != len(s)-1 {
				return filterErr(t, "'#' is not the whole last level of topic filter %q", s)
			}
		case '+':
			if (i > 0 && s[i-1] != '/') || (i < len(s)-1 && s[i+1] != '/') {
				return filterErr(t, "'+' is not a whole level of topic filter %q", s)
			}
		}
	}
	return nil
}

// ParseSharedFilter splits a shared-subscription filter:
// "$share/g/a/b" gives ("g", "a/b", true, nil). A filter not starting with
// "$share/" gives ("", filter, false, nil) and is not otherwise checked. A
// "$share/" filter whose group is empty or contains '+' or '#', or whose
// topic filter is missing or invalid (see ValidateTopicFilter), gives an
// *Error with Code TopicFilterInvalid.
func ParseSharedFilter(filter string) (group, topicFilter string, shared bool, err error) {
	if !strings.HasPrefix(filter, sharePrefix) {
		return "", filter, false, nil
	}
	if err := checkTopicFilter(filter, 0); err != nil {
		return "", "", true, err
	}
	group, topicFilter, _ = parseShared(filter, 0)
	return group, topicFilter, true, nil
}

func parseShared(s string, t PacketType) (group, filter string, err error) {
	group, filter, ok := strings.Cut(s[len(sharePrefix):], "/")
	switch {
	case !ok:
		return "", "", filterErr(t, "shared subscription %q has no topic filter", s)
	case group == "":
		return "", "", filterErr(t, "shared subscription %q has an empty share name", s)
	case strings.ContainsAny(group, "+#"):
		return "", "", filterErr(t, "shared subscription %q: wildcard in share name", s)
	}
	if err := checkPlainFilter(filter, t); err != nil {
		return "", "", err
	}
	return group, filter, nil
}

// MatchTopic reports whether the topic name topic matches the (non-shared)
// topic filter filter: '+' matches exactly one level (possibly empty), '#'
// matches any number of levels including the parent level ("a/#" matches
// "a"), and a topic starting with '$' is not matched by a filter starting
// with a wildcard. Both arguments are assumed valid; strip "$share/{group}/"
// with ParseSharedFilter first.
func MatchTopic(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			return frest == "#" // "a/#" matches "a"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}

// StrictClientID reports whether id is in the set of client identifiers
// every server must accept: 1 to 23 bytes of [0-9a-zA-Z]. A server may
// accept any UTF-8 string; wire enforces no client identifier policy, this is
// a convenience for an engine that wants the strict set (e.g. for 3.1).
func StrictClientID(id string) bool {
	if id == "" || len(id) > 23 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
