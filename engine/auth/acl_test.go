package auth

import (
	"os"
	"strings"
	"sync"
	"testing"
)

const testACL = `# everyone
topic read public/#
pattern read devices/%u/#
pattern write devices/%u/state
pattern readwrite clients/%c/+

user alice
topic readwrite alice/#
topic write cmd/%c/#
topic read $SYS/broker/#
topic sensors/+/temp

user bob
topic read #
topic write +/bob

# a pattern inside a user block still applies to everyone
pattern read shared/%u/%c
`

func loadACL(t *testing.T, content string) *ACL {
	t.Helper()
	a, err := LoadACL(writeFile(t, "acl", content))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestACLPublishReceive(t *testing.T) {
	a := loadACL(t, testACL)
	if a.Rules() != 11 {
		t.Fatalf("Rules = %d, want 11", a.Rules())
	}
	type op int
	const (
		pub op = iota
		recv
	)
	for _, tc := range []struct {
		user, client string
		op           op
		topic        string
		want         bool
	}{
		// Rules for everyone, anonymous included.
		{"", "c1", recv, "public/x", true},
		{"", "c1", recv, "public", true}, // "a/#" matches "a"
		{"", "c1", pub, "public/x", false},
		{"carol", "c1", recv, "public/a/b", true},
		{"carol", "c1", recv, "publicity", false},
		// Patterns with %u and %c.
		{"carol", "c1", recv, "devices/carol/t", true},
		{"carol", "c1", pub, "devices/carol/state", true},
		{"carol", "c1", pub, "devices/carol/other", false},
		{"carol", "c1", recv, "devices/dave/t", false},
		{"", "c1", recv, "devices//t", false}, // anonymous: %u never matches
		{"carol", "c1", pub, "clients/c1/x", true},
		{"carol", "c1", recv, "clients/c1/x", true},
		{"carol", "c1", pub, "clients/c2/x", false},
		{"carol", "c1", pub, "clients/c1/x/y", false},
		{"carol", "c1", recv, "shared/carol/c1", true},
		{"carol", "c1", recv, "shared/c1/carol", false},
		// alice's own rules.
		{"alice", "a1", pub, "alice/x", true},
		{"alice", "a1", recv, "alice", true},
		{"alice", "a1", pub, "cmd/a1/reboot", true},
		{"alice", "a1", recv, "cmd/a1/reboot", false},
		{"alice", "a1", pub, "cmd/a2/reboot", false},
		{"alice", "a1", recv, "$SYS/broker/uptime", true},
		{"alice", "a1", recv, "$SYS/other", false},
		{"alice", "a1", pub, "sensors/k/temp", true}, // no access word: readwrite
		{"alice", "a1", recv, "sensors/k/temp", true},
		{"carol", "c1", pub, "alice/x", false},
		{"Alice", "a1", pub, "alice/x", false},
		// bob reads everything but '$' topics.
		{"bob", "b1", recv, "any/thing", true},
		{"bob", "b1", recv, "$SYS/broker/uptime", false},
		{"bob", "b1", pub, "x/bob", true},
		{"bob", "b1", pub, "x/y/bob", false},
		{"bob", "b1", pub, "$SYS/bob", false}, // '+' first level does not match '$'
	} {
		var got bool
		if tc.op == pub {
			got = a.CanPublish(tc.user, tc.client, tc.topic)
		} else {
			got = a.CanReceive(tc.user, tc.client, tc.topic)
		}
		if got != tc.want {
			t.Errorf("user %q client %q op %d topic %q: got %v, want %v", tc.user, tc.client, tc.op, tc.topic, got, tc.want)
		}
	}
}

func TestACLSubscribe(t *testing.T) {
	a := loadACL(t, testACL)
	for _, tc := range []struct {
		user, client, filter string
		want                 bool
	}{
		{"carol", "c1", "public/#", true},
		{"carol", "c1", "public/+/x", true},
		{"carol", "c1", "public", true},
		{"carol", "c1", "public/a/b/c", true},
		{"carol", "c1", "#", false},
		{"carol", "c1", "+/x", false},
		{"carol", "c1", "+", false},
		{"carol", "c1", "publi", false},
		{"carol", "c1", "devices/carol/#", true},
		{"carol", "c1", "devices/+/temp", false},
		{"carol", "c1", "devices/#", false},
		{"carol", "c1", "clients/c1/+", true},
		{"carol", "c1", "clients/c1/x", true},
		{"carol", "c1", "clients/c1/#", false}, // '#' also matches clients/c1 and deeper
		{"carol", "c1", "clients/c1", false},
		{"carol", "c1", "$share/g/public/#", true},
		{"carol", "c1", "$share/g/#", false},
		{"carol", "c1", "$share/public/x", false}, // shared filter "x"
		{"carol", "c1", "$share//public/x", false},
		{"carol", "c1", "public/a#", false}, // invalid filter
		{"carol", "c1", "", false},
		{"alice", "a1", "alice/#", true},
		{"alice", "a1", "cmd/a1/#", false}, // write only
		{"alice", "a1", "$SYS/broker/+", true},
		{"alice", "a1", "$SYS/#", false},
		{"alice", "a1", "sensors/+/temp", true},
		{"alice", "a1", "sensors/#", false},
		{"bob", "b1", "#", true},
		{"bob", "b1", "+/+/#", true},
		{"bob", "b1", "$SYS/#", false},
		{"bob", "b1", "$SYS/x", false},
		{"bob", "b1", "$share/g/#", true},
		{"", "x", "public/+", true},
	} {
		if got := a.CanSubscribe(tc.user, tc.client, tc.filter); got != tc.want {
			t.Errorf("CanSubscribe(%q, %q, %q) = %v, want %v", tc.user, tc.client, tc.filter, got, tc.want)
		}
	}
}

// TestCovers checks the subset relation directly against rules without
// substitutions.
func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		rule, filter string
		want         bool
	}{
		{"#", "#", true},
		{"#", "a", true},
		{"#", "+/#", true},
		{"#", "$SYS/a", false},
		{"+/#", "$x/#", false},
		{"+/#", "+/#", true},
		{"+/#", "#", false}, // conservative: equal in fact, but refused
		{"a/#", "a", true},
		{"a/#", "a/#", true},
		{"a/#", "a/+", true},
		{"a/#", "b/#", false},
		{"a/+", "a/+", true},
		{"a/+", "a/b", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/+", "a/#", false},
		{"a/+", "a/b/c", false},
		{"a/b", "a/+", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b/#", "a/b", true},
		{"a/b/#", "a/+/c", false},
		{"+", "+", true},
		{"+", "/", false},
		{"+/+", "/", true},
		{"+", "$x", false},
		{"$x/+", "$x/y", true},
		{"$x/#", "$x", true},
	} {
		x, err := parseRule("read " + tc.rule)
		if err != nil {
			t.Fatal(err)
		}
		if got := x.covers("", "", tc.filter); got != tc.want {
			t.Errorf("rule %q covers %q: got %v, want %v", tc.rule, tc.filter, got, tc.want)
		}
	}
}

// TestACLInjection: an identity that is not one plain level never matches a
// rule it would be substituted into, so it cannot widen the rule.
func TestACLInjection(t *testing.T) {
	a := loadACL(t, `pattern readwrite devices/%u/#
pattern readwrite clients/%c
pattern read %u/inbox
topic read owned/%u/%c
`)
	for _, tc := range []struct {
		name, user, client, topic, filter string
	}{
		{"user '#'", "#", "c", "devices/x/y", "devices/#"},
		{"user '+'", "+", "c", "devices/x/y", "devices/+/#"},
		{"user with '/'", "a/b", "c", "devices/a/b/c", "devices/a/b/#"},
		{"user with '/' and '#'", "x/#", "c", "devices/x/y", "devices/x/#"},
		{"client '#'", "u", "#", "clients/x", "clients/#"},
		{"client '+'", "u", "+", "clients/x", "clients/+"},
		{"client with '/'", "u", "x/y", "clients/x/y", "clients/x/y"},
		{"client with NUL", "u", "x\x00", "clients/x\x00", "clients/x\x00"},
		{"user '$SYS'", "$SYS", "c", "$SYS/inbox", "$SYS/inbox"},
		{"empty user", "", "c", "devices//x", "devices//#"},
		{"empty client", "u", "", "clients/", "clients/"},
		{"both, one bad", "u", "c/#", "owned/u/c/x", "owned/u/c/#"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a.CanPublish(tc.user, tc.client, tc.topic) || a.CanReceive(tc.user, tc.client, tc.topic) {
				t.Errorf("topic %q allowed", tc.topic)
			}
			if a.CanSubscribe(tc.user, tc.client, tc.filter) {
				t.Errorf("filter %q allowed", tc.filter)
			}
		})
	}
	// The same rules work for plain identities.
	if !a.CanPublish("u", "c", "devices/u/x") || !a.CanSubscribe("u", "c", "devices/u/#") ||
		!a.CanReceive("u", "c", "u/inbox") || !a.CanReceive("u", "c", "owned/u/c") || !a.CanPublish("u", "c", "clients/c") {
		t.Fatal("plain identities refused")
	}
	// A user named like the placeholder is just that name.
	if a.CanPublish("%u", "c", "devices/bob/x") || !a.CanPublish("%u", "c", "devices/%u/x") {
		t.Fatal(`user "%u" handled as a placeholder`)
	}
}

func TestACLDenyByDefault(t *testing.T) {
	a := loadACL(t, "# nothing granted\n")
	if a.CanPublish("u", "c", "a") || a.CanReceive("u", "c", "a") || a.CanSubscribe("u", "c", "a") {
		t.Fatal("an empty ACL allowed something")
	}
	a = loadACL(t, "user alice\ntopic readwrite #\n")
	if a.CanPublish("bob", "c", "a") || a.CanPublish("", "c", "a") {
		t.Fatal("alice's rules apply to others")
	}
}

func TestACLErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown directive", "# c\n\nallow read a\n", `:3: unknown directive "allow"`},
		{"user without name", "user\n", `:1: "user" needs a user name`},
		{"topic without filter", "topic\n", ":1: missing topic filter"},
		{"access without filter", "user a\ntopic read\n", `:2: "read" needs a topic filter`},
		{"deny", "topic deny a/b\n", `:1: "deny" rules are not supported`},
		{"bad hash", "topic read a/#/b\n", `:1: invalid topic filter "a/#/b"`},
		{"bad plus", "pattern write a+\n", `:1: invalid topic filter "a+"`},
		{"partial substitution", "topic read a/dev-%u/x\n", `:1: topic filter "a/dev-%u/x": %u and %c must fill a whole level`},
		{"partial client", "pattern read %c%u\n", "must fill a whole level"},
		{"shared", "topic read $share/g/a\n", `write the filter without "$share/group/"`},
		{"nul", "topic read a\x00b\n", "invalid topic filter"},
		{"long line", "topic read " + strings.Repeat("a", maxLine) + "\n", ":1: bufio.Scanner: token too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "acl", tc.file)
			_, err := LoadACL(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), path+":") {
				t.Fatalf("error %v, want %q prefixed with the path", err, tc.want)
			}
		})
	}
}

func TestACLParsing(t *testing.T) {
	// Tabs, CRLF, trailing spaces, user names with spaces, filters with spaces.
	a := loadACL(t, "user  two words \r\n\ttopic\tread\t a b/+ \r\n")
	if !a.CanReceive("two words", "c", "a b/x") || a.CanReceive("two", "c", "a b/x") {
		t.Fatal("white space handling")
	}
	// A level holding '%' without u or c is literal.
	a = loadACL(t, "topic read 100%/x\n")
	if !a.CanReceive("u", "c", "100%/x") {
		t.Fatal("literal '%' level")
	}
}

func TestACLReload(t *testing.T) {
	path := writeFile(t, "acl", "topic read a/#\n")
	a, err := LoadACL(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("topic read b/#\ntopic read b/#/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if !a.CanReceive("u", "c", "a/x") || a.CanReceive("u", "c", "b/x") {
		t.Fatal("a failed reload changed the rules")
	}
	if err := os.WriteFile(path, []byte("topic read b/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 100 {
			a.CanReceive("u", "c", "a/x")
		}
	}()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if a.CanReceive("u", "c", "a/x") || !a.CanReceive("u", "c", "b/x") {
		t.Fatal("reload did not take effect")
	}
}

func BenchmarkCanReceive(b *testing.B) {
	a, err := LoadACL(writeFileB(b, testACL))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if a.CanReceive("carol", "c1", "clients/c1/x") != true {
			b.Fatal("refused")
		}
	}
}

func writeFileB(b *testing.B, content string) string {
	path := b.TempDir() + "/acl"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// TestACLPerUser: only a rule under a user line or a %u pattern depends on
// the user name (the startup warning about anonymous clients rests on it).
func TestACLPerUser(t *testing.T) {
	for _, c := range []struct {
		acl  string
		want bool
	}{
		{testACL, true},
		{"topic readwrite a/#\npattern read clients/%c/#\n", false},
		{"pattern read devices/%u/#\n", true},
		{"user alice\ntopic read a\n", true},
		{"", false},
	} {
		if got := loadACL(t, c.acl).PerUser(); got != c.want {
			t.Errorf("PerUser() = %v for %q", got, c.acl)
		}
	}
}
