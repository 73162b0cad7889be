package engine_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// refused connects and checks the CONNACK code and that the server closes.
func refused(t *testing.T, addr string, v wire.Version, id, user, password string, want wire.ReasonCode) {
	t.Helper()
	r, ack := connectAs(t, addr, v, id, user, password)
	if ack.ReasonCode != want {
		t.Fatalf("%s user %q password %q: CONNACK 0x%02X, want 0x%02X", v, user, password, byte(ack.ReasonCode), byte(want))
	}
	r.expectClosed(t, 5*time.Second)
}

// TestPasswordAuth: the password file decides, with the spec's codes:
// 3.x 0x05, 5.0 0x86 for a wrong password or an unknown user and 0x87 for a
// client without credentials.
func TestPasswordAuth(t *testing.T) {
	p, _, _ := policy(t, passwordFile(t, "alice", "secret", "bob", "hunter2"), "", 0)
	tb := startBroker(t, engine.Options{Auth: p})
	addr := serveExtra(t, tb, engine.Listener{Name: "auth"}) // anonymous refused
	sec := &tb.b.Stats().Security
	for _, v := range []wire.Version{wire.V31, wire.V311, wire.V5} {
		bad, anon := wire.ConnRefusedNotAuthorized, wire.ConnRefusedNotAuthorized
		if v == wire.V5 {
			bad, anon = wire.BadUsernameOrPassword, wire.NotAuthorized
		}
		t.Run(v.String(), func(t *testing.T) {
			r := mustConnectAs(t, addr, v, "a-"+v.String(), "alice", "secret")
			r.ping(t)
			mustConnectAs(t, addr, v, "b-"+v.String(), "bob", "hunter2").ping(t)
			refused(t, addr, v, "x", "alice", "wrong", bad)
			refused(t, addr, v, "x", "alice", "", bad)
			refused(t, addr, v, "x", "mallory", "secret", bad)
			refused(t, addr, v, "x", "", "", anon)
			r.ping(t) // refusals touch nobody else
		})
	}
	if got := sec.AuthBadCredentials.Load(); got != 9 {
		t.Errorf("AuthBadCredentials = %d, want 9", got)
	}
	if got := sec.AuthNotAuthorized.Load(); got != 3 {
		t.Errorf("AuthNotAuthorized = %d, want 3", got)
	}
	// The same policy on a listener that admits anonymous clients.
	mustConnectAs(t, tb.addr, wire.V311, "anon", "", "").ping(t)
	refused(t, tb.addr, wire.V311, "x", "alice", "wrong", wire.ConnRefusedNotAuthorized)
}

// TestAnonymousListeners: without a password file a user name proves
// nothing: the client is anonymous, admitted only where the listener says.
func TestAnonymousListeners(t *testing.T) {
	p, _, _ := policy(t, "", "", 0)
	tb := startBroker(t, engine.Options{Auth: p})
	closed := serveExtra(t, tb, engine.Listener{Name: "public"})
	mustConnectAs(t, tb.addr, wire.V311, "a", "", "").ping(t)
	mustConnectAs(t, tb.addr, wire.V5, "b", "alice", "anything").ping(t)
	refused(t, closed, wire.V311, "c", "", "", wire.ConnRefusedNotAuthorized)
	refused(t, closed, wire.V5, "c", "alice", "anything", wire.NotAuthorized)
}

// TestFailedLoginLimit: once an address used up its failed logins it is
// refused without a password check, even with the right password (0x9F in
// 5.0, 0x05 in 3.1.1), and counted.
func TestFailedLoginLimit(t *testing.T) {
	p, _, _ := policy(t, passwordFile(t, "alice", "secret"), "", 3)
	tb := startBroker(t, engine.Options{Auth: p})
	for range 3 {
		refused(t, tb.addr, wire.V5, "x", "alice", "guess", wire.BadUsernameOrPassword)
	}
	refused(t, tb.addr, wire.V5, "x", "alice", "secret", wire.ConnectionRateExceeded)
	refused(t, tb.addr, wire.V311, "x", "alice", "secret", wire.ConnRefusedNotAuthorized)
	sec := &tb.b.Stats().Security
	if sec.AuthRateLimited.Load() != 2 || sec.AuthBadCredentials.Load() != 3 {
		t.Fatalf("rate limited %d, bad credentials %d", sec.AuthRateLimited.Load(), sec.AuthBadCredentials.Load())
	}
	// Anonymous clients were never counted against the address.
	mustConnectAs(t, tb.addr, wire.V311, "anon", "", "").ping(t)
}

const testACL = `
# everyone
topic read public/#
pattern readwrite clients/%c/#
pattern read users/%u/#
user alice
topic readwrite alice/#
user root
topic readwrite #
`

// TestACLSubscribe: denied filters get SUBACK 0x80 (3.1.1) / 0x87 (5.0);
// %u and %c are substituted; allowed ones are granted.
func TestACLSubscribe(t *testing.T) {
	p, _, _ := policy(t, passwordFile(t, "alice", "pw", "root", "pw"), testACL, 0)
	tb := startBroker(t, engine.Options{Auth: p})
	filters := []string{"alice/#", "bob/#", "clients/dev1/cmd", "clients/dev2/cmd", "users/alice/+", "users/bob/+", "public/news", "#", "$share/g/alice/x"}
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		deny := wire.SubackFailure3
		if v == wire.V5 {
			deny = wire.NotAuthorized
		}
		r := mustConnectAs(t, tb.addr, v, "dev1", "alice", "pw")
		got := r.subscribeCodes(t, 1, filters...)
		want := []wire.ReasonCode{1, deny, 1, deny, 1, deny, 1, deny, 1}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s %s: SUBACK 0x%02X, want 0x%02X", v, filters[i], byte(got[i]), byte(want[i]))
			}
		}
		r.Close()
	}
	// Anonymous: only the rules for everyone, and no %u.
	r := mustConnectAs(t, tb.addr, wire.V311, "anon1", "", "")
	got := r.subscribeCodes(t, 1, "public/#", "clients/anon1/x", "users//x", "alice/x")
	if got[0] != 1 || got[1] != 1 || got[2] != wire.SubackFailure3 || got[3] != wire.SubackFailure3 {
		t.Fatalf("anonymous SUBACK %v", got)
	}
	if n := tb.b.Stats().Security.SubscribeDenied.Load(); n != 4+4+2 {
		t.Fatalf("SubscribeDenied = %d", n)
	}
}

// TestACLPublish: a denied PUBLISH is dropped — not delivered, not retained
// — and acknowledged as the spec says: 3.1.1 a plain PUBACK / PUBREC (and
// PUBCOMP after PUBREL), 5.0 PUBACK / PUBREC 0x87; QoS 0 gets nothing.
func TestACLPublish(t *testing.T) {
	p, _, _ := policy(t, passwordFile(t, "alice", "pw", "root", "pw"), testACL, 0)
	tb := startBroker(t, engine.Options{Auth: p})
	watcher := mustConnectAs(t, tb.addr, wire.V311, "watch", "root", "pw")
	watcher.subscribe(t, 1, "#", 2)

	for _, v := range []wire.Version{wire.V311, wire.V5} {
		t.Run(v.String(), func(t *testing.T) {
			deny := wire.Success
			if v == wire.V5 {
				deny = wire.NotAuthorized
			}
			r := mustConnectAs(t, tb.addr, v, "pub-"+v.String(), "alice", "pw")
			r.Send(&wire.Publish{Topic: "bob/x", Payload: []byte("q0")})
			r.Send(&wire.Publish{Topic: "bob/x", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("q1")})
			if a := r.expectAck(t, wire.PUBACK, 1); a.ReasonCode != deny {
				t.Fatalf("PUBACK 0x%02X, want 0x%02X", byte(a.ReasonCode), byte(deny))
			}
			r.Send(&wire.Publish{Topic: "bob/x", QoS: 2, PacketID: 2, Payload: []byte("q2")})
			if a := r.expectAck(t, wire.PUBREC, 2); a.ReasonCode != deny {
				t.Fatalf("PUBREC 0x%02X, want 0x%02X", byte(a.ReasonCode), byte(deny))
			}
			if v != wire.V5 {
				r.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: 2})
				r.expectAck(t, wire.PUBCOMP, 2)
			}
			// An allowed one goes through, after the denied ones.
			r.Send(&wire.Publish{Topic: "alice/x", QoS: 1, PacketID: 3, Payload: []byte("ok")})
			if a := r.expectAck(t, wire.PUBACK, 3); a.ReasonCode.IsError() {
				t.Fatalf("allowed PUBACK 0x%02X", byte(a.ReasonCode))
			}
			pub := watcher.expectPublish(t, 5*time.Second)
			if pub.Topic != "alice/x" || string(pub.Payload) != "ok" {
				t.Fatalf("watcher got %s %q: a denied message went through", pub.Topic, pub.Payload)
			}
			if pub.QoS > 0 {
				watcher.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: pub.PacketID})
			}
		})
	}
	// Nothing was retained on bob/x.
	late := mustConnectAs(t, tb.addr, wire.V311, "late", "root", "pw")
	late.subscribe(t, 1, "bob/#", 1)
	late.expectNothing(t, 200*time.Millisecond)
	if n := tb.b.Stats().Security.PublishDenied.Load(); n != 6 {
		t.Fatalf("PublishDenied = %d, want 6", n)
	}
}

// TestDeliveryChecks: deliveries and retained messages are checked against
// the Authorizer for the receiving session, whatever its subscription.
func TestDeliveryChecks(t *testing.T) {
	fa := &fakeAuth{receive: func(_, client, topic string) bool { return !strings.HasPrefix(topic, "secret/") || client == "trusted" }}
	tb := startBroker(t, engine.Options{Auth: fa})
	sub := mustConnectAs(t, tb.addr, wire.V311, "plain", "", "")
	trusted := mustConnectAs(t, tb.addr, wire.V311, "trusted", "", "")
	pub := mustConnectAs(t, tb.addr, wire.V311, "pub", "", "")
	pub.Send(&wire.Publish{Topic: "secret/r", QoS: 1, PacketID: 9, Retain: true, Payload: []byte("retained")})
	pub.expectAck(t, wire.PUBACK, 9)
	sub.subscribe(t, 1, "#", 0)
	trusted.subscribe(t, 1, "#", 0)
	if p := trusted.expectPublish(t, 5*time.Second); p.Topic != "secret/r" || !p.Retain {
		t.Fatalf("trusted retained: %+v", p)
	}
	pub.Send(&wire.Publish{Topic: "secret/x", Payload: []byte("s")})
	pub.Send(&wire.Publish{Topic: "open/x", Payload: []byte("o")})
	if p := sub.expectPublish(t, 5*time.Second); p.Topic != "open/x" {
		t.Fatalf("plain got %s: withheld message delivered", p.Topic)
	}
	if p := trusted.expectPublish(t, 5*time.Second); p.Topic != "secret/x" {
		t.Fatalf("trusted got %s", p.Topic)
	}
	// One retained delivery and one live one were withheld from "plain".
	waitCounter(t, "ReceiveDenied", 2, tb.b.Stats().Security.ReceiveDenied.Load)
}

// TestWillACL: a will on a denied topic refuses the CONNECT (0x05 / 0x87);
// a will allowed at CONNECT but denied by the rules in force when it is due
// is not published.
func TestWillACL(t *testing.T) {
	p, _, aclPath := policy(t, passwordFile(t, "alice", "pw", "root", "pw"), testACL, 0)
	tb := startBroker(t, engine.Options{Auth: p})
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		want := wire.ConnRefusedNotAuthorized
		if v == wire.V5 {
			want = wire.NotAuthorized
		}
		r := dialRawV(t, tb.addr, v)
		ack := r.Connect(t, &wire.Connect{Version: v, CleanStart: true, ClientID: "w", UsernameFlag: true, Username: "alice",
			PasswordFlag: true, Password: []byte("pw"), Will: &wire.Will{Topic: "bob/will", Payload: []byte("x")}})
		if ack.ReasonCode != want {
			t.Fatalf("%s: CONNACK 0x%02X, want 0x%02X", v, byte(ack.ReasonCode), byte(want))
		}
		r.expectClosed(t, 5*time.Second)
	}
	watcher := mustConnectAs(t, tb.addr, wire.V311, "watch", "root", "pw")
	watcher.subscribe(t, 1, "#", 0)
	r := dialRawV(t, tb.addr, wire.V311)
	if ack := r.Connect(t, &wire.Connect{Version: wire.V311, CleanStart: true, ClientID: "w2", UsernameFlag: true, Username: "alice",
		PasswordFlag: true, Password: []byte("pw"), Will: &wire.Will{Topic: "alice/will", Payload: []byte("gone")}}); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	// alice loses her rights; then her connection drops.
	if err := os.WriteFile(aclPath, []byte("user root\ntopic readwrite #\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tb.b.Reload(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	waitCounter(t, "WillDenied", 3, tb.b.Stats().Security.WillDenied.Load)
	watcher.expectNothing(t, 100*time.Millisecond)
	if n := tb.b.Stats().WillsPublished.Load(); n != 0 {
		t.Fatalf("WillsPublished = %d", n)
	}
}

// TestSessionOwnership: a client id's session belongs to its user: another
// user can neither take over its connection nor resume it; an anonymous
// session is started afresh when a user takes its id.
func TestSessionOwnership(t *testing.T) {
	p, _, _ := policy(t, passwordFile(t, "alice", "pw", "bob", "pw"), "", 0)
	tb := startBroker(t, engine.Options{Auth: p})
	alice := dialRawV(t, tb.addr, wire.V311)
	if ack := alice.Connect(t, &wire.Connect{ClientID: "phone", KeepAlive: 30, UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("pw")}); ack.ReasonCode != 0 {
		t.Fatalf("alice: 0x%02X", byte(ack.ReasonCode))
	}
	alice.subscribe(t, 1, "inbox/#", 1)
	bob := dialRawV(t, tb.addr, wire.V5)
	if ack := bob.Connect(t, &wire.Connect{ClientID: "phone", UsernameFlag: true, Username: "bob", PasswordFlag: true, Password: []byte("pw")}); ack.ReasonCode != wire.NotAuthorized {
		t.Fatalf("bob taking alice's client id: CONNACK 0x%02X, want 0x87", byte(ack.ReasonCode))
	}
	alice.ping(t) // not taken over
	alice.Send(&wire.Disconnect{})
	alice.expectClosed(t, 5*time.Second)
	// Offline, the session is still alice's.
	refused(t, tb.addr, wire.V311, "phone", "bob", "pw", wire.ConnRefusedNotAuthorized)
	r := dialRawV(t, tb.addr, wire.V311)
	if ack := r.Connect(t, &wire.Connect{ClientID: "phone", UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("pw")}); ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("alice resuming: %+v", ack)
	}
	r.Close()

	// An anonymous session (on a listener that admits anonymous clients).
	anonAddr := serveExtra(t, tb, engine.Listener{Name: "anon", AllowAnonymous: true})
	a := dialRawV(t, anonAddr, wire.V311)
	a.connect(t, "shared-id", false, 30, nil)
	a.subscribe(t, 1, "x/#", 1)
	a.Close()
	b := dialRawV(t, anonAddr, wire.V311)
	if ack := b.Connect(t, &wire.Connect{ClientID: "shared-id", UsernameFlag: true, Username: "bob", PasswordFlag: true, Password: []byte("pw")}); ack.ReasonCode != 0 || ack.SessionPresent {
		t.Fatalf("bob taking an anonymous session: %+v (want accepted, fresh session)", ack)
	}
}

// TestAuthReload: Reload picks up changed files without touching
// connections; a broken file keeps the previous rules, and says why.
func TestAuthReload(t *testing.T) {
	p, pwPath, aclPath := policy(t, passwordFile(t, "alice", "pw"), "user alice\ntopic readwrite a/#\n", 0)
	tb := startBroker(t, engine.Options{Auth: p})
	hooked := 0
	tb.b.OnReload("test hook", func() error { hooked++; return nil })
	alice := mustConnectAs(t, tb.addr, wire.V5, "al", "alice", "pw")
	if c := alice.subscribeCodes(t, 1, "b/#"); c[0] != wire.NotAuthorized {
		t.Fatalf("before reload: 0x%02X", byte(c[0]))
	}
	refused(t, tb.addr, wire.V5, "x", "bob", "pw2", wire.BadUsernameOrPassword)

	if err := os.WriteFile(pwPath, []byte(passwordFile(t, "alice", "pw", "bob", "pw2")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aclPath, []byte("user alice\ntopic readwrite a/#\ntopic read b/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tb.b.Reload(); err != nil {
		t.Fatal(err)
	}
	if hooked != 1 {
		t.Fatalf("reload hook ran %d times", hooked)
	}
	if c := alice.subscribeCodes(t, 2, "b/#"); c[0] != 1 {
		t.Fatalf("after reload, same connection: 0x%02X", byte(c[0]))
	}
	mustConnectAs(t, tb.addr, wire.V5, "bb", "bob", "pw2").ping(t)

	// Broken files: both errors reported, old rules kept.
	if err := os.WriteFile(pwPath, []byte("garbage without a colon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aclPath, []byte("frobnicate x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := tb.b.Reload()
	if err == nil || !strings.Contains(err.Error(), pwPath) || !strings.Contains(err.Error(), aclPath) {
		t.Fatalf("reload of broken files: %v", err)
	}
	mustConnectAs(t, tb.addr, wire.V5, "bb2", "bob", "pw2").ping(t)
	if c := alice.subscribeCodes(t, 3, "b/#", "c/#"); c[0] != 1 || c[1] != wire.NotAuthorized {
		t.Fatalf("after a failed reload: %v", c)
	}
	alice.ping(t)
}

// TestEnhancedAuthWithPolicy: a client that completed MQTT 5.0 enhanced
// authentication is authenticated for the Policy too (no password needed
// where anonymous clients are refused), with its CONNECT user name as the
// user its ACL rules see; one that did not is refused as anonymous.
func TestEnhancedAuthWithPolicy(t *testing.T) {
	p, _, _ := policy(t, "", "pattern readwrite home/%u/#\n", 0)
	tb := startBroker(t, engine.Options{Auth: p, EnhancedAuth: map[string]engine.EnhancedAuth{"one": oneStepAuth{}}})
	addr := serveExtra(t, tb, engine.Listener{Name: "closed"})
	r := dialRawV(t, addr, wire.V5)
	ack := r.Connect(t, &wire.Connect{ClientID: "ea", CleanStart: true, UsernameFlag: true, Username: "carol",
		Props: &wire.Properties{AuthMethod: new("one"), AuthData: []byte("x")}})
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02X after enhanced authentication", byte(ack.ReasonCode))
	}
	if c := r.subscribeCodes(t, 1, "home/carol/#", "home/dave/#"); c[0] != 1 || c[1] != wire.NotAuthorized {
		t.Fatalf("SUBACK %v: the enhanced-auth user is not the ACL user", c)
	}
	refused(t, addr, wire.V5, "plain", "carol", "", wire.NotAuthorized)
}

// TestDelayedWillACL: a delayed will is checked against the rules in force
// when its delay ends.
func TestDelayedWillACL(t *testing.T) {
	clk := &testClock{}
	p, _, aclPath := policy(t, passwordFile(t, "alice", "pw", "root", "pw"), testACL, 0)
	tb := startBroker(t, engine.Options{Auth: p, Now: clk.now})
	watcher := mustConnectAs(t, tb.addr, wire.V311, "watch", "root", "pw")
	watcher.subscribe(t, 1, "#", 0)
	r := dialRawV(t, tb.addr, wire.V5)
	if ack := r.Connect(t, &wire.Connect{ClientID: "dw", UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("pw"),
		Props: &wire.Properties{SessionExpiry: ptrU32(3600)},
		Will:  &wire.Will{Topic: "alice/will", Payload: []byte("late"), Props: &wire.Properties{WillDelay: ptrU32(5)}}}); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	r.Close() // the will's delay starts
	if !waitUntil(5*time.Second, func() bool { rec := storedSession(t, tb, "dw"); return rec != nil && rec.WillAt != 0 }) {
		t.Fatal("will not pending")
	}
	if err := os.WriteFile(aclPath, []byte("user root\ntopic readwrite #\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tb.b.Reload(); err != nil {
		t.Fatal(err)
	}
	clk.advance(10 * time.Second)
	if _, err := tb.b.ExpireSessions(clk.now()); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, "WillDenied", 1, tb.b.Stats().Security.WillDenied.Load)
	watcher.expectNothing(t, 100*time.Millisecond)
}
