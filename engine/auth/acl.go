package auth

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/cairn-mqtt/cairn/wire"
)

// access is what a rule grants.
type access uint8

const (
	accRead      access = 1 << iota // receive messages (and subscribe)
	accWrite                        // publish
	accReadWrite = accRead | accWrite
)

// ACL is a loaded ACL file (see the package documentation for the format).
// Everything it does not grant is denied. It is safe for concurrent use;
// Reload replaces its rules atomically.
type ACL struct {
	path  string
	rules atomic.Pointer[aclRules]
}

// aclRules is one immutable generation of an ACL file.
type aclRules struct {
	everyone []*rule
	users    map[string][]*rule
	count    int
}

// level kinds of a rule's filter.
const (
	lvLiteral = iota
	lvPlus
	lvHash
	lvUser   // %u
	lvClient // %c
)

type level struct {
	kind uint8
	text string // lvLiteral
}

// rule is one "topic" or "pattern" line.
type rule struct {
	access     access
	filter     string // as written
	levels     []level
	needUser   bool // has a %u level
	needClient bool // has a %c level
}

// LoadACL reads and checks the ACL file at path. Errors name the file and
// the line ("acl:7: ...").
func LoadACL(path string) (*ACL, error) {
	a := &ACL{path: path}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Path returns the file the ACL was loaded from.
func (a *ACL) Path() string { return a.path }

// Rules returns the number of rules.
func (a *ACL) Rules() int { return a.rules.Load().count }

// PerUser reports whether some rule depends on the user name: a rule
// under a "user" line, or a pattern with %u.
func (a *ACL) PerUser() bool {
	r := a.rules.Load()
	if len(r.users) > 0 {
		return true
	}
	for _, x := range r.everyone {
		if x.needUser {
			return true
		}
	}
	return false
}

// Reload reads the file again and, if it is valid, replaces the rules
// atomically; on error the previous rules stay in force.
func (a *ACL) Reload() error {
	data, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("ACL file: %w", err)
	}
	r, err := parseACL(a.path, data)
	if err != nil {
		return err
	}
	a.rules.Store(r)
	return nil
}

// CanPublish reports whether the client may publish to topic (a valid topic
// name; for a will, its topic): some rule for user or everyone grants Write
// on a filter matching topic.
func (a *ACL) CanPublish(user, clientID, topic string) bool {
	return a.rules.Load().match(accWrite, user, clientID, topic)
}

// CanReceive reports whether a message on topic may be delivered to the
// client: some rule grants Read on a filter matching topic. The engine calls
// it for every delivery (including retained messages and messages for
// subscriptions made before the rules last changed).
func (a *ACL) CanReceive(user, clientID, topic string) bool {
	return a.rules.Load().match(accRead, user, clientID, topic)
}

// CanSubscribe reports whether the client may subscribe to filter: some rule
// grants Read on a filter that matches every topic filter matches (read
// "a/#" allows "a/b/+" and "a", not "#" or "+/b"). A shared subscription
// "$share/group/f" is checked on f. An invalid filter is refused. The test is
// conservative: a filter covered only by the union of several rules, or
// equivalent to a rule written differently ("#" and "+/#"), is refused.
func (a *ACL) CanSubscribe(user, clientID, filter string) bool {
	_, f, _, err := wire.ParseSharedFilter(filter)
	if err != nil || wire.ValidateTopicFilter(f) != nil {
		return false
	}
	r := a.rules.Load()
	for _, x := range r.users[user] {
		if x.access&accRead != 0 && x.covers(user, clientID, f) {
			return true
		}
	}
	for _, x := range r.everyone {
		if x.access&accRead != 0 && x.covers(user, clientID, f) {
			return true
		}
	}
	return false
}

func (r *aclRules) match(acc access, user, clientID, topic string) bool {
	for _, x := range r.users[user] {
		if x.access&acc != 0 && x.matches(user, clientID, topic) {
			return true
		}
	}
	for _, x := range r.everyone {
		if x.access&acc != 0 && x.matches(user, clientID, topic) {
			return true
		}
	}
	return false
}

// safeIdentity reports whether id may be substituted for %u or %c: it must
// fill exactly one level of a plain topic, so it may not be empty, contain
// '+', '#', '/' or U+0000, or start with '$' (a server topic).
func safeIdentity(id string) bool {
	return id != "" && id[0] != '$' && !strings.ContainsAny(id, "+#/\x00")
}

// usable reports whether the identities the rule substitutes are safe.
func (x *rule) usable(user, clientID string) bool {
	return (!x.needUser || safeIdentity(user)) && (!x.needClient || safeIdentity(clientID))
}

// subst returns the text a literal or placeholder level stands for.
func (l *level) subst(user, clientID string) string {
	switch l.kind {
	case lvUser:
		return user
	case lvClient:
		return clientID
	}
	return l.text
}

// matches reports whether the rule's filter, with user and clientID
// substituted, matches topic (MQTT matching: '+' one level, '#' the rest
// including the parent, no wildcard first level for a '$' topic).
func (x *rule) matches(user, clientID, topic string) bool {
	if !x.usable(user, clientID) {
		return false
	}
	if topic != "" && topic[0] == '$' && (x.levels[0].kind == lvPlus || x.levels[0].kind == lvHash) {
		return false
	}
	rest, more := topic, true
	for i := range x.levels {
		l := &x.levels[i]
		if l.kind == lvHash {
			return true
		}
		if !more {
			return false
		}
		var tl string
		tl, rest, more = strings.Cut(rest, "/")
		if l.kind != lvPlus && tl != l.subst(user, clientID) {
			return false
		}
	}
	return !more
}

// covers reports whether every topic that filter (a valid non-shared topic
// filter) matches is matched by the rule's filter with user and clientID
// substituted.
func (x *rule) covers(user, clientID, filter string) bool {
	if !x.usable(user, clientID) {
		return false
	}
	rest, more := filter, true
	for i := range x.levels {
		l := &x.levels[i]
		if l.kind == lvHash {
			// "#" as the first level matches no '$' topic.
			return i > 0 || filter[0] != '$'
		}
		if !more {
			return false // filter ends where the rule wants another level
		}
		var fl string
		fl, rest, more = strings.Cut(rest, "/")
		switch {
		case fl == "#":
			return false // only '#' covers '#'
		case l.kind == lvPlus:
			if i == 0 && fl != "+" && fl != "" && fl[0] == '$' {
				return false // a first-level '+' does not match '$' topics
			}
		case fl == "+" || fl != l.subst(user, clientID):
			return false
		}
	}
	return !more
}

// parseACL parses an ACL file; name is used in errors.
func parseACL(name string, data []byte) (*aclRules, error) {
	r := &aclRules{users: make(map[string][]*rule)}
	user, inUser := "", false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxLine)
	n := 0
	for sc.Scan() {
		n++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		word, rest := cutWord(s)
		switch word {
		case "user":
			if rest == "" {
				return nil, fmt.Errorf("%s:%d: \"user\" needs a user name", name, n)
			}
			user, inUser = rest, true
		case "topic", "pattern":
			x, err := parseRule(rest)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %v", name, n, err)
			}
			if word == "topic" && inUser {
				r.users[user] = append(r.users[user], x)
			} else {
				r.everyone = append(r.everyone, x)
			}
			r.count++
		default:
			return nil, fmt.Errorf("%s:%d: unknown directive %q (want user, topic or pattern)", name, n, word)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %v", name, n+1, err)
	}
	return r, nil
}

// cutWord splits s at its first run of spaces or tabs.
func cutWord(s string) (word, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// parseRule parses "[read|write|readwrite] FILTER".
func parseRule(s string) (*rule, error) {
	x := &rule{access: accReadWrite}
	word, rest := cutWord(s)
	switch word {
	case "read", "write", "readwrite":
		if rest == "" {
			return nil, fmt.Errorf("%q needs a topic filter", word)
		}
		x.access = map[string]access{"read": accRead, "write": accWrite, "readwrite": accReadWrite}[word]
		s = rest
	case "deny":
		return nil, fmt.Errorf("\"deny\" rules are not supported: everything not granted is denied")
	case "":
		return nil, fmt.Errorf("missing topic filter")
	}
	if strings.HasPrefix(s, "$share/") {
		return nil, fmt.Errorf("topic filter %q: write the filter without \"$share/group/\" (shared subscriptions are checked on their filter)", s)
	}
	if err := wire.ValidateTopicFilter(s); err != nil {
		return nil, fmt.Errorf("invalid topic filter %q: %v", s, err)
	}
	x.filter = s
	for l := range strings.SplitSeq(s, "/") {
		switch {
		case l == "+":
			x.levels = append(x.levels, level{kind: lvPlus})
		case l == "#":
			x.levels = append(x.levels, level{kind: lvHash})
		case l == "%u":
			x.levels = append(x.levels, level{kind: lvUser})
			x.needUser = true
		case l == "%c":
			x.levels = append(x.levels, level{kind: lvClient})
			x.needClient = true
		case strings.Contains(l, "%u") || strings.Contains(l, "%c"):
			return nil, fmt.Errorf("topic filter %q: %%u and %%c must fill a whole level", s)
		default:
			x.levels = append(x.levels, level{kind: lvLiteral, text: l})
		}
	}
	return x, nil
}
