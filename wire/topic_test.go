package wire_test

import (
	"strings"
	"testing"

	"github.com/cairn-mqtt/cairn/wire"
)

func TestValidateTopicName(t *testing.T) {
	valid := []string{"a", "a/b", "/", "//", "/a", "a/", "$SYS/x", "日本/語", "a b", "$share/g/a",
		strings.Repeat("x", 65535)}
	invalid := []string{"", "+", "#", "a/+", "a/#", "a+", "a#b", "a\x00b", "\xff", "\xed\xa0\x80", "\xc0\x80",
		strings.Repeat("x", 65536)}
	for _, s := range valid {
		if err := wire.ValidateTopicName(s); err != nil {
			t.Errorf("ValidateTopicName(%.20q) = %v", s, err)
		}
	}
	for _, s := range invalid {
		err := wire.ValidateTopicName(s)
		if we := wire.AsError(err); we == nil || we.Code != wire.TopicNameInvalid {
			t.Errorf("ValidateTopicName(%.20q) = %v, want TopicNameInvalid", s, err)
		}
	}
}

func TestValidateTopicFilter(t *testing.T) {
	valid := []string{"a", "#", "+", "+/+", "a/+/b", "a/#", "/#", "+/#", "/", "$SYS/#", "a//b", "/+/",
		"$share/g/a", "$share/g/#", "$share/group-1/+/x", "$share/g//", "$share", "$shared/a", "share/g",
		"日本/+", strings.Repeat("y", 65535)}
	invalid := []string{"", "a/#/b", "a+", "+a", "a/b+", "a/+b/c", "#/a", "a#", "a/b#", "##", "++",
		"a\x00", "\xff/#", "$share/g", "$share//a", "$share/g/", "$share/g+/a", "$share/#/a", "$share/g/a#",
		"$share/", strings.Repeat("y", 65536)}
	for _, s := range valid {
		if err := wire.ValidateTopicFilter(s); err != nil {
			t.Errorf("ValidateTopicFilter(%.20q) = %v", s, err)
		}
	}
	for _, s := range invalid {
		err := wire.ValidateTopicFilter(s)
		if we := wire.AsError(err); we == nil || we.Code != wire.TopicFilterInvalid {
			t.Errorf("ValidateTopicFilter(%.20q) = %v, want TopicFilterInvalid", s, err)
		}
	}
}

func TestParseSharedFilter(t *testing.T) {
	tests := []struct {
		in            string
		group, filter string
		shared, err   bool
	}{
		{"$share/g/a/b", "g", "a/b", true, false},
		{"$share/consumers/#", "consumers", "#", true, false},
		{"$share/g//", "g", "/", true, false},
		{"a/b", "", "a/b", false, false},
		{"$share", "", "$share", false, false},
		{"$SHARE/g/a", "", "$SHARE/g/a", false, false},
		{"$share/g", "", "", true, true},
		{"$share//a", "", "", true, true},
		{"$share/g#/a", "", "", true, true},
		{"$share/g/a/#/b", "", "", true, true},
	}
	for _, tt := range tests {
		g, f, shared, err := wire.ParseSharedFilter(tt.in)
		if g != tt.group || f != tt.filter || shared != tt.shared || (err != nil) != tt.err {
			t.Errorf("ParseSharedFilter(%q) = %q, %q, %v, %v", tt.in, g, f, shared, err)
		}
		if err != nil && wire.AsError(err).Code != wire.TopicFilterInvalid {
			t.Errorf("ParseSharedFilter(%q): code %v", tt.in, err)
		}
	}
}

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+", "a", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"a/b/#", "a", false},
		{"sport/tennis/+/#", "sport/tennis/p1", true},
		{"sport/tennis/+/#", "sport/tennis/p1/ranking/x", true},
		{"sport/tennis/+/#", "sport/tennis", false},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"+", "$SYS", false},
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/+", "$SYS/x", true},
		{"a/+/#", "a/$x/y", true},
		{"//", "//", true},
		{"+/+/+", "//", true},
		{"日本/+", "日本/語", true},
	}
	for _, tt := range tests {
		if got := wire.MatchTopic(tt.filter, tt.topic); got != tt.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
		if got := refMatch(tt.filter, tt.topic); got != tt.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

// refMatch is a straightforward (allocating) reference matcher.
func refMatch(filter, topic string) bool {
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, l := range f {
		if l == "#" {
			return true
		}
		if i >= len(tp) || l != "+" && l != tp[i] {
			return false
		}
	}
	return len(f) == len(tp)
}

func TestMatchTopicAllocs(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		wire.MatchTopic("sport/tennis/+/#", "sport/tennis/p1/ranking")
		_ = wire.ValidateTopicFilter("sport/tennis/+/#")
		_ = wire.ValidateTopicName("sport/tennis/p1")
	})
	if n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func TestStrictClientID(t *testing.T) {
	for _, s := range []string{"a", "Client123", strings.Repeat("z", 23)} {
		if !wire.StrictClientID(s) {
			t.Errorf("StrictClientID(%q) = false", s)
		}
	}
	for _, s := range []string{"", "client-1", "日本", strings.Repeat("z", 24), "a b"} {
		if wire.StrictClientID(s) {
			t.Errorf("StrictClientID(%q) = true", s)
		}
	}
}

// FuzzTopic checks the validators and the matcher against each other and
// against refMatch.
func FuzzTopic(f *testing.F) {
	seeds := [][2]string{{"a/+", "a/b"}, {"#", "$SYS/x"}, {"a/#", "a"}, {"$share/g/a/#", "a/b"}, {"+/+", "/x"},
		{"a/#/b", "a/x/b"}, {"+", ""}, {"日本/#", "日本"}}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		ferr, terr := wire.ValidateTopicFilter(filter), wire.ValidateTopicName(topic)
		if ferr != nil && wire.AsError(ferr).Code != wire.TopicFilterInvalid {
			t.Fatalf("filter error %v", ferr)
		}
		if terr != nil && wire.AsError(terr).Code != wire.TopicNameInvalid {
			t.Fatalf("topic error %v", terr)
		}
		_, plain, shared, serr := wire.ParseSharedFilter(filter)
		if shared && (serr == nil) != (ferr == nil) {
			t.Fatalf("ParseSharedFilter(%q) = %v, ValidateTopicFilter = %v", filter, serr, ferr)
		}
		if terr == nil {
			if !strings.HasPrefix(topic, "$share/") && wire.ValidateTopicFilter(topic) != nil {
				t.Fatalf("valid topic name %q is not a valid filter", topic)
			}
			if !wire.MatchTopic(topic, topic) {
				t.Fatalf("%q does not match itself", topic)
			}
			if topic[0] != '$' && !wire.MatchTopic("#", topic) {
				t.Fatalf("# does not match %q", topic)
			}
		}
		if ferr == nil && terr == nil {
			if got, want := wire.MatchTopic(plain, topic), refMatch(plain, topic); got != want {
				t.Fatalf("MatchTopic(%q, %q) = %v, want %v", plain, topic, got, want)
			}
		}
	})
}

// TestSharedFilterIsVersionDependent: shared subscriptions exist only in
// 5.0. A 3.x SUBSCRIBE or UNSUBSCRIBE naming "$share//a" carries an ordinary
// well-formed filter and decodes (the broker decides what to answer), while
// in 5.0 the same packet is malformed with TopicFilterInvalid. Wildcard
// rules still hold after "$share/" in every version.
func TestSharedFilterIsVersionDependent(t *testing.T) {
	for _, f := range []string{"$share//a", "$share/g", "$share/g/", "$share/"} {
		for _, p := range []wire.Packet{
			&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: f, QoS: 1}}},
			&wire.Unsubscribe{PacketID: 1, Filters: []string{f}},
		} {
			for _, v := range []wire.Version{wire.V31, wire.V311} {
				b, err := wire.AppendPacket(nil, p, v)
				if err != nil {
					t.Fatalf("%s %s %q: encode: %v", v, p.Type(), f, err)
				}
				if _, _, err := wire.Decode(b, v); err != nil {
					t.Errorf("%s %s %q: decode: %v", v, p.Type(), f, err)
				}
			}
			_, err := wire.AppendPacket(nil, p, wire.V5)
			if we := wire.AsError(err); we == nil || we.Code != wire.TopicFilterInvalid {
				t.Errorf("5.0 %s %q: encode error %v, want TopicFilterInvalid", p.Type(), f, err)
			}
		}
	}
	for _, f := range []string{"$share/g/a/#/b", "$share/g+/a", "$share/#/a"} {
		p := &wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: f}}}
		for _, v := range []wire.Version{wire.V31, wire.V311, wire.V5} {
			if _, err := wire.AppendPacket(nil, p, v); err == nil {
				t.Errorf("%s SUBSCRIBE %q: encoded a filter that breaks the wildcard rules", v, f)
			}
		}
	}
}
