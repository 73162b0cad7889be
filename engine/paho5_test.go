package engine_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/extensions/rpc"
	"github.com/eclipse/paho.golang/paho/extensions/topicaliases"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// Integration tests with the Eclipse Paho MQTT 5.0 client
// (github.com/eclipse/paho.golang): the broker as a real 5.0 client library
// sees it.

// inbox collects the PUBLISHes a paho.golang client receives.
type inbox struct {
	mu   sync.Mutex
	msgs []*paho.Publish
	ch   chan struct{}
}

func newInbox() *inbox { return &inbox{ch: make(chan struct{}, 1)} }

func (in *inbox) handler(pr paho.PublishReceived) (bool, error) {
	in.mu.Lock()
	in.msgs = append(in.msgs, pr.Packet)
	in.mu.Unlock()
	select {
	case in.ch <- struct{}{}:
	default:
	}
	return true, nil
}

func (in *inbox) waitN(t testing.TB, n int, d time.Duration) []*paho.Publish {
	t.Helper()
	deadline := time.After(d)
	for {
		in.mu.Lock()
		if len(in.msgs) >= n {
			out := slices.Clone(in.msgs)
			in.mu.Unlock()
			return out
		}
		got := len(in.msgs)
		in.mu.Unlock()
		select {
		case <-in.ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %d messages, got %d", n, got)
		}
	}
}

func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

// paho5 connects a paho.golang client; it is disconnected (and its
// goroutines gone) when the test ends.
func paho5(t testing.TB, addr string, cp *paho.Connect, cfg paho.ClientConfig) (*paho.Client, *paho.Connack) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	cfg.Conn = nc
	cfg.ClientID = cp.ClientID
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		code := -1
		if ack != nil {
			code = int(ack.ReasonCode)
		}
		t.Fatalf("paho.golang connect %s: %v (reason 0x%02X)", cp.ClientID, err, code)
	}
	t.Cleanup(func() { closePaho(t, c) })
	return c, ack
}

func closePaho(t testing.TB, c *paho.Client) {
	_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Errorf("paho.golang client %s did not stop", c.ClientID())
	}
}

func ctx10() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func mustSubscribe5(t testing.TB, c *paho.Client, s *paho.Subscribe) *paho.Suback {
	t.Helper()
	ctx, cancel := ctx10()
	defer cancel()
	sa, err := c.Subscribe(ctx, s)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return sa
}

func mustPublish5(t testing.TB, c *paho.Client, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := ctx10()
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		t.Fatalf("publish %s: %v", p.Topic, err)
	}
	return r
}

// CONNACK as paho.golang reads it, and a publish with every property
// reaching a subscriber with its subscription identifier, user properties in
// order, and the remaining expiry.
func TestPaho5Properties(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	got := newInbox()
	sub, ack := paho5(t, tb.addr, &paho.Connect{ClientID: "p5-sub", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: ptrU32(600)}},
		paho.ClientConfig{OnPublishReceived: []func(paho.PublishReceived) (bool, error){got.handler}})
	cp := ack.Properties
	if cp == nil || deref(cp.ReceiveMaximum) != uint16(64) || deref(cp.TopicAliasMaximum) != uint16(64) ||
		!cp.RetainAvailable || !cp.WildcardSubAvailable || !cp.SubIDAvailable || !cp.SharedSubAvailable || cp.MaximumQoS != nil {
		t.Fatalf("CONNACK properties %+v", cp)
	}
	id := 42
	sa := mustSubscribe5(t, sub, &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: &id},
		Subscriptions: []paho.SubscribeOptions{{Topic: "p5/#", QoS: 2}}})
	if fmt.Sprint(sa.Reasons) != "[2]" {
		t.Fatalf("SUBACK %v", sa.Reasons)
	}
	pub, _ := paho5(t, tb.addr, &paho.Connect{ClientID: "p5-pub", CleanStart: true, KeepAlive: 30}, paho.ClientConfig{})
	props := &paho.PublishProperties{
		PayloadFormat: ptrByte(1), ContentType: "text/plain", ResponseTopic: "p5/reply", CorrelationData: []byte("c-1"),
		MessageExpiry: ptrU32(120),
		User:          paho.UserProperties{{Key: "x", Value: "1"}, {Key: "y", Value: "2"}, {Key: "x", Value: "3"}},
	}
	if r := mustPublish5(t, pub, &paho.Publish{Topic: "p5/a", QoS: 2, Payload: []byte("hello"), Properties: props}); r.ReasonCode != 0 {
		t.Fatalf("PUBREC reason 0x%02X", r.ReasonCode)
	}
	m := got.waitN(t, 1, 5*time.Second)[0]
	p := m.Properties
	if m.Topic != "p5/a" || m.QoS != 2 || string(m.Payload) != "hello" || p == nil ||
		deref(p.SubscriptionIdentifier) != 42 || deref(p.PayloadFormat) != byte(1) || p.ContentType != "text/plain" ||
		p.ResponseTopic != "p5/reply" || string(p.CorrelationData) != "c-1" || fmt.Sprint(p.User) != fmt.Sprint(props.User) {
		t.Fatalf("delivery %s %q props %+v", m.Topic, m.Payload, p)
	}
	if e := deref(p.MessageExpiry); e != uint32(120) && e != uint32(119) {
		t.Fatalf("Message Expiry Interval %v", e)
	}
	if r := mustPublish5(t, pub, &paho.Publish{Topic: "nobody", QoS: 1, Payload: []byte("x")}); r.ReasonCode != byte(wire.NoMatchingSubscribers) {
		t.Fatalf("PUBACK 0x%02X, want 0x10", r.ReasonCode)
	}
}

// Request/response with paho.golang's rpc extension (Response Topic and
// Correlation Data end to end).
func TestPaho5RequestResponse(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	var responder *paho.Client
	respond := func(pr paho.PublishReceived) (bool, error) {
		req := pr.Packet
		if req.Properties == nil || req.Properties.ResponseTopic == "" {
			return false, nil
		}
		go func() {
			ctx, cancel := ctx10()
			defer cancel()
			_, _ = responder.Publish(ctx, &paho.Publish{Topic: req.Properties.ResponseTopic, QoS: 1,
				Payload:    append([]byte("re: "), req.Payload...),
				Properties: &paho.PublishProperties{CorrelationData: req.Properties.CorrelationData}})
		}()
		return true, nil
	}
	responder, _ = paho5(t, tb.addr, &paho.Connect{ClientID: "p5-responder", CleanStart: true, KeepAlive: 30},
		paho.ClientConfig{OnPublishReceived: []func(paho.PublishReceived) (bool, error){respond}})
	mustSubscribe5(t, responder, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "svc/echo", QoS: 1}}})
	requester, _ := paho5(t, tb.addr, &paho.Connect{ClientID: "p5-requester", CleanStart: true, KeepAlive: 30}, paho.ClientConfig{})
	ctx, cancel := ctx10()
	defer cancel()
	h, err := rpc.NewHandler(ctx, requester)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		resp, err := h.Request(ctx, &paho.Publish{Topic: "svc/echo", QoS: 1, Payload: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(resp.Payload) != fmt.Sprintf("re: %d", i) {
			t.Fatalf("response %q", resp.Payload)
		}
	}
}

// Client-side topic aliases (paho.golang's topicaliases extension) are
// resolved by the broker: subscribers get the full topics.
func TestPaho5TopicAliases(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	got := newInbox()
	sub, _ := paho5(t, tb.addr, &paho.Connect{ClientID: "p5-ta-sub", CleanStart: true, KeepAlive: 30},
		paho.ClientConfig{OnPublishReceived: []func(paho.PublishReceived) (bool, error){got.handler}})
	mustSubscribe5(t, sub, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ta/#", QoS: 1}}})
	ta := topicaliases.NewTAHandler(64) // the broker's announced maximum
	pub, _ := paho5(t, tb.addr, &paho.Connect{ClientID: "p5-ta-pub", CleanStart: true, KeepAlive: 30},
		paho.ClientConfig{PublishHook: ta.PublishHook})
	topics := []string{"ta/one", "ta/two", "ta/one", "ta/one", "ta/two"}
	for i, tp := range topics {
		mustPublish5(t, pub, &paho.Publish{Topic: tp, QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	if ta.GetAlias("ta/one") == 0 {
		t.Fatal("paho.golang did not use a topic alias")
	}
	msgs := got.waitN(t, len(topics), 5*time.Second)
	for i, m := range msgs {
		if m.Topic != topics[i] || string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: %s %q, want %s", i, m.Topic, m.Payload, topics[i])
		}
	}
}

// Shared subscriptions between paho.golang clients: each message once,
// round robin.
func TestPaho5SharedSubscription(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	var boxes []*inbox
	for i := range 2 {
		in := newInbox()
		c, _ := paho5(t, tb.addr, &paho.Connect{ClientID: fmt.Sprintf("p5-sh-%d", i), CleanStart: true, KeepAlive: 30},
			paho.ClientConfig{OnPublishReceived: []func(paho.PublishReceived) (bool, error){in.handler}})
		mustSubscribe5(t, c, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/workers/jobs", QoS: 1}}})
		boxes = append(boxes, in)
	}
	pub, _ := paho5(t, tb.addr, &paho.Connect{ClientID: "p5-sh-pub", CleanStart: true, KeepAlive: 30}, paho.ClientConfig{})
	for i := range 10 {
		mustPublish5(t, pub, &paho.Publish{Topic: "jobs", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	a := boxes[0].waitN(t, 5, 5*time.Second)
	b := boxes[1].waitN(t, 5, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	if boxes[0].count() != 5 || boxes[1].count() != 5 {
		t.Fatalf("shared deliveries %d + %d, want 5 + 5", boxes[0].count(), boxes[1].count())
	}
	seen := map[string]bool{}
	for _, m := range append(a, b...) {
		seen[string(m.Payload)] = true
	}
	if len(seen) != 10 {
		t.Fatalf("%d distinct messages delivered, want 10", len(seen))
	}
}

// pahoChallenge answers challengeAuth's challenge.
type pahoChallenge struct {
	secret        string
	authenticated chan struct{}
}

func (a *pahoChallenge) Authenticate(in *paho.Auth) *paho.Auth {
	return &paho.Auth{ReasonCode: 0x18, Properties: &paho.AuthProperties{
		AuthMethod: "CHALLENGE", AuthData: []byte(string(in.Properties.AuthData) + ":" + a.secret)}}
}

func (a *pahoChallenge) Authenticated() {
	select {
	case a.authenticated <- struct{}{}:
	default:
	}
}

// Enhanced authentication with paho.golang's Auther: at CONNECT and for a
// client-initiated re-authentication.
func TestPaho5EnhancedAuth(t *testing.T) {
	t.Parallel()
	ch := &challengeAuth{secret: "pw"}
	tb := startBroker(t, engine.Options{EnhancedAuth: map[string]engine.EnhancedAuth{"CHALLENGE": ch}})
	auther := &pahoChallenge{secret: "pw", authenticated: make(chan struct{}, 2)}
	c, ack := paho5(t, tb.addr, &paho.Connect{ClientID: "p5-auth", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{AuthMethod: "CHALLENGE", AuthData: []byte("hello")}},
		paho.ClientConfig{AuthHandler: auther})
	if ack.Properties.AuthMethod != "CHALLENGE" || string(ack.Properties.AuthData) != "welcome" {
		t.Fatalf("CONNACK auth %q %q", ack.Properties.AuthMethod, ack.Properties.AuthData)
	}
	ctx, cancel := ctx10()
	defer cancel()
	resp, err := c.Authenticate(ctx, &paho.Auth{ReasonCode: 0x19,
		Properties: &paho.AuthProperties{AuthMethod: "CHALLENGE", AuthData: []byte("hello")}})
	if err != nil || !resp.Success || resp.ReasonCode != 0 {
		t.Fatalf("re-authentication: %+v, %v", resp, err)
	}
	if ch.reauth.Load() != 1 {
		t.Fatalf("re-authentications %d", ch.reauth.Load())
	}
	// A wrong secret is refused.
	nc, err := net.DialTimeout("tcp", tb.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bad := paho.NewClient(paho.ClientConfig{Conn: nc, AuthHandler: &pahoChallenge{secret: "nope", authenticated: make(chan struct{}, 1)}})
	badAck, err := bad.Connect(ctx, &paho.Connect{ClientID: "p5-auth-bad", CleanStart: true,
		Properties: &paho.ConnectProperties{AuthMethod: "CHALLENGE", AuthData: []byte("hello")}})
	if err == nil || badAck == nil || badAck.ReasonCode != byte(wire.BadUsernameOrPassword) {
		t.Fatalf("wrong secret: %+v, %v, want CONNACK 0x86", badAck, err)
	}
}

// Session expiry and a delayed will, driven by paho.golang clients.
func TestPaho5SessionExpiryAndWillDelay(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	wills := newInbox()
	w, _ := paho5(t, tb.addr, &paho.Connect{ClientID: "p5-will-watch", CleanStart: true, KeepAlive: 30},
		paho.ClientConfig{OnPublishReceived: []func(paho.PublishReceived) (bool, error){wills.handler}})
	mustSubscribe5(t, w, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "p5/status/#", QoS: 1}}})

	nc, err := net.DialTimeout("tcp", tb.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dying := paho.NewClient(paho.ClientConfig{Conn: nc})
	ctx, cancel := ctx10()
	defer cancel()
	_, err = dying.Connect(ctx, &paho.Connect{ClientID: "p5-dying", KeepAlive: 30,
		Properties:     &paho.ConnectProperties{SessionExpiryInterval: ptrU32(1)},
		WillMessage:    &paho.WillMessage{Topic: "p5/status/dying", QoS: 1, Payload: []byte("offline")},
		WillProperties: &paho.WillProperties{WillDelayInterval: ptrU32(30)}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	nc.Close() // the connection drops without DISCONNECT
	<-dying.Done()
	m := wills.waitN(t, 1, 5*time.Second)[0]
	if el := time.Since(start); m.Topic != "p5/status/dying" || string(m.Payload) != "offline" || el < 800*time.Millisecond || el > 4*time.Second {
		t.Fatalf("will %s %q after %v, want it at the 1 s session expiry (before the 30 s delay)", m.Topic, m.Payload, el)
	}
	if !waitUntil(2*time.Second, func() bool { return storedSession(t, tb, "p5-dying") == nil }) {
		t.Fatal("session not expired")
	}
	again, ack := paho5(t, tb.addr, &paho.Connect{ClientID: "p5-dying", KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: ptrU32(60)}}, paho.ClientConfig{})
	if ack.SessionPresent {
		t.Fatal("session present after expiry")
	}
	closePaho(t, again)
}

// 3.1.1 and 5.0 clients on one broker: Eclipse Paho 3.1.1 and paho.golang
// exchange messages both ways; the 3.1.1 side gets no properties.
func TestPaho5MixedWith311(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	old := newReceived()
	c3 := connect(t, tb.addr, "mix-311", withHandler(old))
	defer c3.Disconnect(100)
	subscribe(t, c3, "mix/to311", 1, nil)
	in := newInbox()
	c5, _ := paho5(t, tb.addr, &paho.Connect{ClientID: "mix-5", CleanStart: true, KeepAlive: 30},
		paho.ClientConfig{OnPublishReceived: []func(paho.PublishReceived) (bool, error){in.handler}})
	mustSubscribe5(t, c5, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "mix/to5", QoS: 1}}})

	mustPublish5(t, c5, &paho.Publish{Topic: "mix/to311", QoS: 1, Payload: []byte("from five"),
		Properties: &paho.PublishProperties{ContentType: "text/plain", User: paho.UserProperties{{Key: "k", Value: "v"}}}})
	if m := old.waitN(t, 1, 5*time.Second)[0]; m.Topic() != "mix/to311" || string(m.Payload()) != "from five" {
		t.Fatalf("3.1.1 client got %s %q", m.Topic(), m.Payload())
	}
	publish(t, c3, "mix/to5", 1, false, "from three")
	m := in.waitN(t, 1, 5*time.Second)[0]
	if m.Topic != "mix/to5" || string(m.Payload) != "from three" || (m.Properties != nil && (len(m.Properties.User) > 0 || m.Properties.ContentType != "")) {
		t.Fatalf("5.0 client got %s %q %+v", m.Topic, m.Payload, m.Properties)
	}
}
