package bridge_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("CAIRN_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// node is a broker on a loopback port over a store, restartable on the
// same port (so that a bridge pointing at it finds it again), with
// bridges of its own.
type node struct {
	t       testing.TB
	fs      vfs.FS
	dir     string
	opts    engine.Options
	bridges []bridge.Config

	st   *store.Store
	b    *engine.Broker
	l    net.Listener
	addr string
	done chan struct{}
	mgr  *bridge.Manager
}

// newNode starts a broker over an in-memory store (dir "" ) or a store in
// dir on disk.
func newNode(t testing.TB, dir string, bridges ...bridge.Config) *node {
	t.Helper()
	n := &node{t: t, dir: dir, bridges: bridges, opts: engine.Options{Logger: testLogger()}}
	if dir == "" {
		n.fs, n.dir = vfs.NewMem(), "/cairn"
	}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	n.t.Helper()
	st, err := store.Open(n.dir, store.Options{Logger: n.opts.Logger, FS: n.fs, MemTableSize: 64 << 20})
	if err != nil {
		n.t.Fatalf("open store: %v", err)
	}
	b := engine.New(st, n.opts)
	if _, err := recovery.Restore(st, b); err != nil {
		n.t.Fatalf("restore: %v", err)
	}
	var l net.Listener
	if n.addr == "" {
		l, err = wiretest.ListenLowPort() // restarts keep the port: one not ephemeral
	} else {
		for i := 0; ; i++ {
			l, err = net.Listen("tcp", n.addr)
			if err == nil || i == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond) // the old listener's port, being released
		}
	}
	if err != nil {
		n.t.Fatalf("listen %s: %v", n.addr, err)
	}
	n.st, n.b, n.l, n.addr = st, b, l, l.Addr().String()
	if n.mgr, err = bridge.Start(b, n.bridges, n.opts.Logger); err != nil {
		n.t.Fatalf("bridges: %v", err)
	}
	n.done = make(chan struct{})
	go func() { defer close(n.done); _ = b.Serve(l) }()
}

func (n *node) stop() {
	if n.b == nil {
		return
	}
	n.mgr.Stop()
	n.mgr = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.b.Shutdown(ctx); err != nil {
		n.t.Errorf("shutdown: %v", err)
	}
	<-n.done
	if err := n.st.Close(); err != nil {
		n.t.Errorf("close store: %v", err)
	}
	n.b = nil
}

func (n *node) restart() {
	n.t.Helper()
	n.stop()
	n.start()
}

// status returns the status of the node's bridge name.
func (n *node) status(name string) bridge.Status {
	for _, s := range n.mgr.Status() {
		if s.Name == name {
			return s
		}
	}
	n.t.Fatalf("no bridge %q", name)
	return bridge.Status{}
}

// fastRetry makes a config reconnect quickly (tests).
func fastRetry(c bridge.Config) bridge.Config {
	c.ReconnectMin, c.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	if c.ClientID == "" {
		c.ClientID = "edge-" + c.Name
	}
	return c
}

func rules(t testing.TB, lines ...string) []bridge.Rule {
	t.Helper()
	var out []bridge.Rule
	for _, l := range lines {
		r, err := bridge.ParseRule(l)
		if err != nil {
			t.Fatalf("rule %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// client is a raw MQTT client for tests (test goroutine only).
type client struct {
	t   testing.TB
	c   *wiretest.Conn
	v   wire.Version
	pid uint16
}

// dial connects id; persistent sessions have clean session 0 (5.0: expiry
// "never").
func dial(t testing.TB, addr, id string, v wire.Version, persistent bool) *client {
	t.Helper()
	c := &client{t: t, c: wiretest.Dial(t, addr, v), v: v}
	p := &wire.Connect{ClientID: id, CleanStart: !persistent, KeepAlive: 60}
	if v == wire.V5 && persistent {
		e := uint32(0xFFFFFFFF)
		p.Props = &wire.Properties{SessionExpiry: &e}
	}
	if ack := c.c.Connect(t, p); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02X for %s", byte(ack.ReasonCode), id)
	}
	return c
}

func wiretestDial(t testing.TB, addr string) *wiretest.Conn { return wiretest.Dial(t, addr, wire.V5) }

func (c *client) nextPID() uint16 {
	c.pid++
	if c.pid == 0 {
		c.pid = 1
	}
	return c.pid
}

func (c *client) subscribe(subs ...wire.Subscription) {
	c.t.Helper()
	pid := c.nextPID()
	c.c.Send(&wire.Subscribe{PacketID: pid, Subscriptions: subs})
	for {
		p := c.c.Expect(c.t, 5*time.Second)
		if a, ok := p.(*wire.Suback); ok {
			for _, rc := range a.ReasonCodes {
				if rc.IsError() {
					c.t.Fatalf("SUBACK 0x%02X", byte(rc))
				}
			}
			return
		}
	}
}

// publish sends n messages topic(i)/payload(i) at qos, at most window in
// flight, and waits for every acknowledgement (QoS 2: PUBCOMP).
func (c *client) publish(n int, qos byte, topic func(int) string, payload func(int) []byte) {
	c.t.Helper()
	const window = 32
	inflight := 0
	sent := 0
	for sent < n || inflight > 0 {
		for sent < n && (qos == 0 || inflight < window) {
			p := &wire.Publish{QoS: qos, Topic: topic(sent), Payload: payload(sent)}
			if qos > 0 {
				p.PacketID = c.nextPID()
				inflight++
			}
			c.c.Send(p)
			sent++
		}
		if inflight == 0 {
			break
		}
		p := c.c.Expect(c.t, 10*time.Second)
		a, ok := p.(*wire.Ack)
		if !ok {
			continue
		}
		if a.ReasonCode.IsError() {
			c.t.Fatalf("%v 0x%02X", a.Kind, byte(a.ReasonCode))
		}
		switch a.Kind {
		case wire.PUBACK, wire.PUBCOMP:
			inflight--
		case wire.PUBREC:
			c.c.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: a.PacketID})
		}
	}
}

// collect reads deliveries, acknowledging them, until n have arrived or
// quiet passes without one; it returns them in arrival order.
func (c *client) collect(n int, quiet time.Duration) []*wire.Publish {
	c.t.Helper()
	var got []*wire.Publish
	for len(got) < n {
		p, err := c.c.Recv(quiet)
		if err != nil {
			return got
		}
		switch p := p.(type) {
		case *wire.Publish:
			got = append(got, p)
			switch p.QoS {
			case 1:
				c.c.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
			case 2:
				c.c.Send(&wire.Ack{Kind: wire.PUBREC, PacketID: p.PacketID})
			}
		case *wire.Ack:
			if p.Kind == wire.PUBREL {
				c.c.Send(&wire.Ack{Kind: wire.PUBCOMP, PacketID: p.PacketID})
			}
		}
	}
	return got
}

func (c *client) close() {
	c.c.Send(&wire.Disconnect{})
	c.c.Close()
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func seqTopic(prefix string) func(int) string {
	return func(int) string { return prefix }
}

func seqPayload(i int) []byte { return []byte(fmt.Sprintf("m%07d", i)) }
