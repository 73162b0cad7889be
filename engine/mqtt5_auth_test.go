package engine_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// challengeAuth is a two-step challenge/response method for tests: the
// client says "hello", the broker answers "nonce", the client must answer
// "nonce:<secret>".
type challengeAuth struct {
	secret string
	starts atomic.Int32
	reauth atomic.Int32
}

func (a *challengeAuth) Start(c engine.AuthClient) engine.AuthExchange {
	a.starts.Add(1)
	if c.Reauth {
		a.reauth.Add(1)
	}
	return &challengeExchange{a: a}
}

type challengeExchange struct {
	a     *challengeAuth
	round int
}

func (x *challengeExchange) Step(data []byte) ([]byte, bool, error) {
	x.round++
	switch x.round {
	case 1:
		if string(data) != "hello" {
			return nil, false, errors.New("bad greeting") // 0x87 by default
		}
		return []byte("nonce"), false, nil
	case 2:
		if string(data) != "nonce:"+x.a.secret {
			return nil, false, &engine.AuthError{Code: wire.BadUsernameOrPassword, Reason: "wrong answer"}
		}
		return []byte("welcome"), true, nil
	}
	return nil, false, errors.New("too many steps")
}

// oneStepAuth accepts at once.
type oneStepAuth struct{}

func (oneStepAuth) Start(engine.AuthClient) engine.AuthExchange { return oneStep{} }

type oneStep struct{}

func (oneStep) Step(data []byte) ([]byte, bool, error) {
	return append([]byte("ok:"), data...), true, nil
}

func authConnect(id, method, data string) *wire.Connect {
	return &wire.Connect{ClientID: id, CleanStart: true, KeepAlive: 60,
		Props: &wire.Properties{AuthMethod: new(method), AuthData: []byte(data)}}
}

func authPacket(code wire.ReasonCode, method, data string) *wire.Auth {
	return &wire.Auth{ReasonCode: code, Props: &wire.Properties{AuthMethod: new(method), AuthData: []byte(data)}}
}

// expectAuth reads an AUTH and checks its reason code, method and data.
func (r *rawConn) expectAuth(t testing.TB, code wire.ReasonCode, method, data string) {
	t.Helper()
	p := r.Expect(t, 5*time.Second)
	a, ok := p.(*wire.Auth)
	if !ok || a.ReasonCode != code || a.Props == nil || deref(a.Props.AuthMethod) != method || string(a.Props.AuthData) != data {
		t.Fatalf("got %#v, want AUTH 0x%02X %s %q", p, byte(code), method, data)
	}
}

// Enhanced authentication: the AUTH exchange at CONNECT and for
// re-authentication, behind the Options.EnhancedAuth hook.
func TestEnhancedAuth(t *testing.T) {
	t.Parallel()
	ch := &challengeAuth{secret: "s3cret"}
	tb := startBroker(t, engine.Options{EnhancedAuth: map[string]engine.EnhancedAuth{"CHALLENGE": ch, "ONE": oneStepAuth{}}})

	t.Run("unsupported method", func(t *testing.T) {
		r, ack := connect5(t, tb.addr, authConnect("ea-bad", "KERBEROS", ""))
		if ack.ReasonCode != wire.BadAuthenticationMethod {
			t.Fatalf("CONNACK 0x%02X, want 0x8C", byte(ack.ReasonCode))
		}
		r.expectClosed(t, 5*time.Second)
	})
	t.Run("empty method", func(t *testing.T) {
		// Present though empty: a method the broker does not support, not
		// an absent one (which would skip enhanced authentication).
		r, ack := connect5(t, tb.addr, &wire.Connect{Version: wire.V5, CleanStart: true, ClientID: "ea-empty", Props: &wire.Properties{AuthMethod: new("")}})
		if ack.ReasonCode != wire.BadAuthenticationMethod {
			t.Fatalf("CONNACK 0x%02X, want 0x8C", byte(ack.ReasonCode))
		}
		r.expectClosed(t, 5*time.Second)
	})
	t.Run("one step", func(t *testing.T) {
		_, ack := mustConnect5(t, tb.addr, authConnect("ea-one", "ONE", "x"))
		if deref(ack.Props.AuthMethod) != "ONE" || string(ack.Props.AuthData) != "ok:x" {
			t.Fatalf("CONNACK auth %v %q", deref(ack.Props.AuthMethod), ack.Props.AuthData)
		}
	})
	t.Run("challenge and re-authentication", func(t *testing.T) {
		r := dialRawV(t, tb.addr, wire.V5)
		r.Send(authConnect("ea-ok", "CHALLENGE", "hello"))
		r.expectAuth(t, wire.ContinueAuthentication, "CHALLENGE", "nonce")
		r.Send(authPacket(wire.ContinueAuthentication, "CHALLENGE", "nonce:s3cret"))
		ack, ok := r.Expect(t, 5*time.Second).(*wire.Connack)
		if !ok || ack.ReasonCode != wire.Success || deref(ack.Props.AuthMethod) != "CHALLENGE" || string(ack.Props.AuthData) != "welcome" {
			t.Fatalf("CONNACK %#v", ack)
		}
		// Re-authentication on the open connection.
		r.Send(authPacket(wire.ReAuthenticate, "CHALLENGE", "hello"))
		r.expectAuth(t, wire.ContinueAuthentication, "CHALLENGE", "nonce")
		r.Send(authPacket(wire.ContinueAuthentication, "CHALLENGE", "nonce:s3cret"))
		r.expectAuth(t, wire.Success, "CHALLENGE", "welcome")
		if ch.reauth.Load() != 1 {
			t.Fatalf("%d re-authentications started, want 1", ch.reauth.Load())
		}
		r.Send(&wire.Pingreq{})
		if _, ok := r.Expect(t, 5*time.Second).(*wire.Pingresp); !ok {
			t.Fatal("connection not usable after re-authentication")
		}
		// A failed re-authentication ends the connection: DISCONNECT 0x87
		// (the handler's 0x86 is not a DISCONNECT code).
		r.Send(authPacket(wire.ReAuthenticate, "CHALLENGE", "hello"))
		r.expectAuth(t, wire.ContinueAuthentication, "CHALLENGE", "nonce")
		r.Send(authPacket(wire.ContinueAuthentication, "CHALLENGE", "nonce:wrong"))
		if d := r.expectDisconnect(t, wire.NotAuthorized); reasonOf(d.Props) != "wrong answer" {
			t.Fatalf("reason string %q", reasonOf(d.Props))
		}
	})
	refusals := []struct {
		name  string
		first string
		then  wire.Packet
		want  wire.ReasonCode
	}{
		{"wrong answer", "hello", authPacket(wire.ContinueAuthentication, "CHALLENGE", "nonce:guess"), wire.BadUsernameOrPassword},
		{"handler error", "bye", nil, wire.NotAuthorized},
		{"other packet before CONNACK", "hello", &wire.Pingreq{}, wire.ProtocolError},
		{"other method during the exchange", "hello", authPacket(wire.ContinueAuthentication, "ONE", "x"), wire.ProtocolError},
		{"re-authenticate before CONNACK", "hello", authPacket(wire.ReAuthenticate, "CHALLENGE", "x"), wire.ProtocolError},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRawV(t, tb.addr, wire.V5)
			r.Send(authConnect("ea-no", "CHALLENGE", tc.first))
			if tc.then != nil {
				r.expectAuth(t, wire.ContinueAuthentication, "CHALLENGE", "nonce")
				r.Send(tc.then)
			}
			ack, ok := r.Expect(t, 5*time.Second).(*wire.Connack)
			if !ok || ack.ReasonCode != tc.want || reasonOf(ack.Props) == "" {
				t.Fatalf("got %#v, want CONNACK 0x%02X with a reason string", ack, byte(tc.want))
			}
			r.expectClosed(t, 5*time.Second)
		})
	}
	t.Run("AUTH without enhanced authentication", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("ea-plain", true, 0))
		r.Send(authPacket(wire.ReAuthenticate, "CHALLENGE", "hello"))
		r.expectDisconnect(t, wire.ProtocolError)
	})
	t.Run("re-authentication with another method", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, authConnect("ea-other", "ONE", "x"))
		r.Send(authPacket(wire.ReAuthenticate, "CHALLENGE", "hello"))
		r.expectDisconnect(t, wire.ProtocolError)
	})
	t.Run("continue without an exchange", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, authConnect("ea-cont", "ONE", "x"))
		r.Send(authPacket(wire.ContinueAuthentication, "ONE", "x"))
		r.expectDisconnect(t, wire.ProtocolError)
	})
}
