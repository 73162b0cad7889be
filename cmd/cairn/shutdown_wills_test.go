package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// dialWS connects a raw MQTT client over the broker's ws listener.
func dialWS(t *testing.T, addr string, v wire.Version) *wiretest.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatalf("websocket dial %s: %v", addr, err)
	}
	return wiretest.NewConn(t, websocket.NetConn(context.Background(), c, websocket.MessageBinary), v)
}

// TestGracefulShutdownPublishesNoWills: SIGTERM with clients connected
// that have wills — clean and persistent 3.1.1 sessions, 5.0 sessions with
// and without a will delay, one over WebSocket — publishes none of them,
// neither at shutdown nor after the restart (the 5.0 clients are told
// DISCONNECT 0x8B). A subscriber that was connected through it, resumed,
// and a new one find no will, live or retained. The control: a client of
// the restarted broker that drops its connection does get its will
// published, to the same subscriber.
func TestGracefulShutdownPublishesNoWills(t *testing.T) {
	b := startBroker(t)
	got := &pahoInbox{seen: map[string]int{}}
	watch, _ := pahoConnect(t, b.addr, "will-watch", false, got.add)
	if tok := watch.Subscribe("will/#", 1, nil); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	will := func(topic string) *wire.Will {
		return &wire.Will{Topic: topic, Payload: []byte("died: " + topic), QoS: 1, Retain: true}
	}
	expiry := uint32(3600)
	delay := uint32(2)
	type client struct {
		c  *wiretest.Conn
		v5 bool
	}
	var clients []client
	add := func(c *wiretest.Conn, p *wire.Connect) {
		if ack := c.Connect(t, p); ack.ReasonCode != 0 {
			t.Fatalf("%s: CONNACK %v", p.ClientID, ack.ReasonCode)
		}
		clients = append(clients, client{c, p.Version == wire.V5})
	}
	add(wiretest.Dial(t, b.addr, wire.V311), &wire.Connect{ClientID: "w-clean", CleanStart: true, KeepAlive: 60, Will: will("will/clean")})
	add(wiretest.Dial(t, b.addr, wire.V311), &wire.Connect{ClientID: "w-persist", CleanStart: false, KeepAlive: 60, Will: will("will/persist")})
	add(wiretest.Dial(t, b.addr, wire.V5), &wire.Connect{Version: wire.V5, ClientID: "w-v5", CleanStart: true, KeepAlive: 60,
		Props: &wire.Properties{SessionExpiry: &expiry}, Will: will("will/v5")})
	w5d := will("will/v5-delay")
	w5d.Props = &wire.Properties{WillDelay: &delay}
	add(wiretest.Dial(t, b.addr, wire.V5), &wire.Connect{Version: wire.V5, ClientID: "w-v5-delay", CleanStart: true, KeepAlive: 60,
		Props: &wire.Properties{SessionExpiry: &expiry}, Will: w5d})
	add(dialWS(t, b.wsAddr(t), wire.V311), &wire.Connect{ClientID: "w-ws", CleanStart: false, KeepAlive: 60, Will: will("will/ws")})

	if code, _ := b.terminate(); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	for i, cl := range clients {
		closing := cl.c.ExpectClosed(t, ioTimeout)
		if cl.v5 && !slices.ContainsFunc(closing, func(p wire.Packet) bool {
			d, ok := p.(*wire.Disconnect)
			return ok && d.ReasonCode == wire.ServerShuttingDown
		}) {
			t.Errorf("5.0 client %d: got %v at shutdown, want DISCONNECT 0x8B", i, packetTypes(closing))
		}
	}
	if n := b.logs.lastJSON(1, "will published"); n != nil {
		t.Fatalf("a will was published at shutdown: %v", n)
	}

	b.restart()
	time.Sleep(time.Duration(delay)*time.Second + 500*time.Millisecond) // a will delay, had it been started, passes
	_, present := pahoConnect(t, b.addr, "will-watch", false, got.add)
	if !present {
		t.Fatal("the watcher's session is not present after the restart")
	}
	fresh := &pahoInbox{seen: map[string]int{}}
	f, _ := pahoConnect(t, b.addr, "will-fresh", true, fresh.add)
	if tok := f.Subscribe("will/#", 1, nil); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	time.Sleep(time.Second)
	got.mu.Lock()
	early := slices.Clone(got.order)
	got.mu.Unlock()
	fresh.mu.Lock()
	retained := slices.Clone(fresh.order)
	fresh.mu.Unlock()
	if len(early) > 0 || len(retained) > 0 {
		t.Fatalf("wills after a graceful shutdown: to the resumed subscriber %v, retained %v", early, retained)
	}
	if n := b.logs.lastJSON(b.starts, "will published"); n != nil {
		t.Fatalf("a will was published after the restart: %v", n)
	}

	// Control: an abrupt disconnect on the restarted broker does publish.
	c := wiretest.Dial(t, b.addr, wire.V311)
	c.Connect(t, &wire.Connect{ClientID: "w-persist", CleanStart: false, KeepAlive: 60, Will: will("will/persist")})
	wake := got.notify()
	c.Close()
	select {
	case <-wake:
	case <-time.After(ioTimeout):
		t.Fatal("control: the will of a dropped connection was not delivered")
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.order) != 1 || got.order[0].topic != "will/persist" {
		t.Fatalf("control: got %v", got.order)
	}
}
