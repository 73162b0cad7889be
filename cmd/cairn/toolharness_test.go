package main

// In-process harness for the store tools' tests: a real broker (engine.New
// + recovery.Restore over a store in a real directory, real TCP listener,
// the admin endpoint exactly as `cairn serve` starts it), and the CLI run
// in-process with its output captured.

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

func quietLog() *slog.Logger {
	if os.Getenv("CAIRN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// liveBroker is a broker in this process over the store in dir.
type liveBroker struct {
	t     testing.TB
	dir   string
	st    *store.Store
	b     *engine.Broker
	adm   *adminEndpoint
	addr  string // MQTT
	admin string // admin endpoint
	done  chan error
}

// startLive starts a broker over dir whose clock is clock (nil: real time).
func startLive(t testing.TB, dir string, clock func() time.Time) *liveBroker {
	t.Helper()
	log := quietLog()
	st, err := store.Open(dir, store.Options{Logger: log})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	b := engine.New(st, engine.Options{Logger: log, Now: clock})
	adm, err := startAdmin("127.0.0.1:0", dir, st, b, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recovery.Restore(st, b); err != nil {
		t.Fatalf("restore: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adm.setReady()
	lb := &liveBroker{t: t, dir: dir, st: st, b: b, adm: adm, addr: l.Addr().String(), admin: adm.addr, done: make(chan error, 1)}
	go func() { lb.done <- b.Serve(l) }()
	t.Cleanup(lb.stop)
	return lb
}

// stop shuts the broker down as `cairn serve` does on SIGTERM.
func (lb *liveBroker) stop() {
	if lb.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := lb.b.Shutdown(ctx); err != nil {
		lb.t.Errorf("shutdown: %v", err)
	}
	<-lb.done
	lb.adm.stop()
	if err := lb.st.Close(); err != nil {
		lb.t.Errorf("close store: %v", err)
	}
	lb.b = nil
}

// runCLI runs `cairn ARGS` in this process and returns its standard output.
func runCLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(interspersed(append([]string{"cairn"}, args...)))
	return out.String(), err
}

// mustCLI runs `cairn ARGS` and fails the test on error.
func mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("cairn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// pinClock makes the renderers' clock return at.
func pinClock(t testing.TB, at time.Time) {
	old := now
	now = func() time.Time { return at }
	t.Cleanup(func() { now = old })
}

// mqtt is a raw test client.
type mqtt struct {
	t testing.TB
	c *wiretest.Conn
}

func dialMQTT(t testing.TB, addr string, p *wire.Connect) *mqtt {
	t.Helper()
	c := wiretest.Dial(t, addr, p.Version)
	if ack := c.Connect(t, p); ack.ReasonCode != 0 {
		t.Fatalf("%s: CONNACK 0x%02x", p.ClientID, byte(ack.ReasonCode))
	}
	return &mqtt{t: t, c: c}
}

func (m *mqtt) subscribe(subs ...wire.Subscription) {
	m.t.Helper()
	m.c.Send(&wire.Subscribe{PacketID: 1, Subscriptions: subs})
	if p := m.c.Expect(m.t, ioTimeout); p.Type() != wire.SUBACK {
		m.t.Fatalf("expected SUBACK, got %s", p.Type())
	}
}

// publish sends a PUBLISH and completes its QoS flow.
func (m *mqtt) publish(p *wire.Publish) {
	m.t.Helper()
	m.c.Send(p)
	switch p.QoS {
	case 1:
		m.expectAck(wire.PUBACK, p.PacketID)
	case 2:
		m.expectAck(wire.PUBREC, p.PacketID)
		m.c.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: p.PacketID})
		m.expectAck(wire.PUBCOMP, p.PacketID)
	}
}

func (m *mqtt) expectAck(kind wire.PacketType, pid uint16) {
	m.t.Helper()
	for {
		p := m.c.Expect(m.t, ioTimeout)
		if a, ok := p.(*wire.Ack); ok && a.Kind == kind && a.PacketID == pid {
			return
		}
		if p.Type() != wire.PUBLISH {
			m.t.Fatalf("expected %s %d, got %s", kind, pid, p.Type())
		}
	}
}

func (m *mqtt) disconnect() {
	m.t.Helper()
	m.c.Send(&wire.Disconnect{})
	m.c.ExpectClosed(m.t, ioTimeout)
}

func u32p(v uint32) *uint32 { return &v }
