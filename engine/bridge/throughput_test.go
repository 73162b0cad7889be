package bridge_test

import (
	"flag"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/bridge"
	"github.com/cairn-mqtt/cairn/wire"
)

var (
	backlog = flag.Int("bridge.backlog", 0, "TestBacklogDrain: messages queued during the outage (0: skip; the report uses 100000)")
	live    = flag.Int("bridge.live", 0, "TestLiveForwarding: messages forwarded while published (0: skip)")
	window  = flag.Int("bridge.window", 64, "in-flight window of the measured bridges (and the brokers' max-inflight / receive maximum)")
)

// sink counts the QoS 1 deliveries of a persistent session on the remote,
// acknowledging each, on its own goroutine (the test goroutine publishes).
type sink struct {
	got  atomic.Int64
	nc   net.Conn
	done chan struct{}
}

func startSink(t *testing.T, addr, id string) *sink {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{nc: nc, done: make(chan struct{})}
	// Its own reader from the first byte: deliveries may follow CONNACK
	// in the same read.
	r := wire.NewReader(nc, 0)
	buf, _ := wire.AppendPacket(nil, &wire.Connect{ClientID: id, KeepAlive: 60}, wire.V311)
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	if p, err := r.ReadPacket(wire.V311); err != nil {
		t.Fatal(err)
	} else if a, ok := p.(*wire.Connack); !ok || a.ReasonCode != 0 || !a.SessionPresent {
		t.Fatalf("sink CONNACK: %+v", p)
	}
	go func() {
		defer close(s.done)
		var out []byte
		for {
			p, err := r.ReadPacket(wire.V311)
			if err != nil {
				return
			}
			if pub, ok := p.(*wire.Publish); ok {
				s.got.Add(1)
				out, _ = wire.AppendPacket(out, &wire.Ack{Kind: wire.PUBACK, PacketID: pub.PacketID}, wire.V311)
			}
			if r.Buffered() == 0 && len(out) > 0 { // one write per read batch
				if _, err := nc.Write(out); err != nil {
					return
				}
				out = out[:0]
			}
		}
	}()
	t.Cleanup(func() { nc.Close(); <-s.done })
	return s
}

func measuredNode(t *testing.T, cfgs ...bridge.Config) *node {
	n := &node{t: t, dir: t.TempDir(), bridges: cfgs, opts: engine.Options{Logger: testLogger(), MaxInflight: *window,
		Features: engine.Features{ReceiveMaximum: uint16(*window)}}}
	n.start()
	t.Cleanup(n.stop)
	return n
}

// TestBacklogDrain measures how fast a bridge drains a backlog queued on
// disk during an outage (real disk on both brokers, QoS 1, the remote's
// subscriber persistent, so both sides fsync). Run with
// -bridge.backlog=100000.
func TestBacklogDrain(t *testing.T) {
	if *backlog == 0 {
		t.Skip("measurement: run with -bridge.backlog=N")
	}
	n := *backlog
	remote := measuredNode(t)
	c := dial(t, remote.addr, "sink", wire.V311, true)
	c.subscribe(wire.Subscription{Filter: "b/#", QoS: 1})
	c.close()
	remote.stop()
	cfg := fastRetry(bridge.Config{Name: "drain", Address: remote.addr, Window: *window, Rules: rules(t, `b/# out 1`)})
	local := measuredNode(t, cfg)
	pub := dial(t, local.addr, "pub", wire.V311, false)
	payload := make([]byte, 100)
	start := time.Now()
	pub.publish(n, 1, seqTopic("b/x"), func(int) []byte { return payload })
	t.Logf("queued %d messages of %d bytes in %v (%.0f msg/s local publish)", n, len(payload), time.Since(start).Round(time.Millisecond),
		float64(n)/time.Since(start).Seconds())
	if d := local.status("drain").QueueDepth; d != n {
		t.Fatalf("queue depth %d, want %d", d, n)
	}
	remote.start()
	s := startSink(t, remote.addr, "sink")
	start = time.Now()
	if !waitFor(10*time.Minute, func() bool { return s.got.Load() >= int64(n) }) {
		t.Fatalf("drained %d of %d", s.got.Load(), n)
	}
	took := time.Since(start)
	t.Logf("backlog of %d drained to the remote subscriber in %v: %.0f msg/s (window %d)", n, took.Round(time.Millisecond),
		float64(n)/took.Seconds(), *window)
	if !waitFor(10*time.Second, func() bool { return local.status("drain").QueueDepth == 0 }) {
		t.Fatalf("local queue still %d", local.status("drain").QueueDepth)
	}
}

// TestLiveForwarding measures forwarding while a local publisher publishes
// (QoS 1, disk stores, persistent remote subscriber). Run with
// -bridge.live=N.
func TestLiveForwarding(t *testing.T) {
	if *live == 0 {
		t.Skip("measurement: run with -bridge.live=N")
	}
	n := *live
	remote := measuredNode(t)
	c := dial(t, remote.addr, "sink", wire.V311, true)
	c.subscribe(wire.Subscription{Filter: "f/#", QoS: 1})
	c.close()
	s := startSink(t, remote.addr, "sink")
	cfg := fastRetry(bridge.Config{Name: "live", Address: remote.addr, Window: *window, Rules: rules(t, `f/# out 1`)})
	local := measuredNode(t, cfg)
	if !waitFor(5*time.Second, func() bool { return local.status("live").State == bridge.StateConnected }) {
		t.Fatal("not connected")
	}
	pub := dial(t, local.addr, "pub", wire.V311, false)
	payload := make([]byte, 100)
	start := time.Now()
	pub.publish(n, 1, seqTopic("f/x"), func(int) []byte { return payload })
	published := time.Since(start)
	if !waitFor(5*time.Minute, func() bool { return s.got.Load() >= int64(n) }) {
		t.Fatalf("forwarded %d of %d", s.got.Load(), n)
	}
	took := time.Since(start)
	t.Logf("%d messages: published locally in %v (%.0f msg/s), all at the remote subscriber after %v: %.0f msg/s end to end (window %d)",
		n, published.Round(time.Millisecond), float64(n)/published.Seconds(), took.Round(time.Millisecond), float64(n)/took.Seconds(), *window)
}

// TestBacklogDrainToMosquitto is TestBacklogDrain with Debian mosquitto
// as the remote (3.1.1 bridge level). Run with -bridge.backlog=N.
func TestBacklogDrainToMosquitto(t *testing.T) {
	if *backlog == 0 {
		t.Skip("measurement: run with -bridge.backlog=N")
	}
	n := *backlog
	mq := startMosquitto(t)
	c := dial(t, mq.addr, "sink", wire.V311, true)
	c.subscribe(wire.Subscription{Filter: "b/#", QoS: 1})
	c.close()
	mq.stop()
	cfg := fastRetry(bridge.Config{Name: "drain", Address: mq.addr, Window: *window, Rules: rules(t, `b/# out 1`)})
	local := measuredNode(t, cfg)
	pub := dial(t, local.addr, "pub", wire.V311, false)
	payload := make([]byte, 100)
	pub.publish(n, 1, seqTopic("b/x"), func(int) []byte { return payload })
	mq.start()
	s := startSink(t, mq.addr, "sink")
	start := time.Now()
	if !waitFor(10*time.Minute, func() bool { return s.got.Load() >= int64(n) }) {
		t.Fatalf("drained %d of %d", s.got.Load(), n)
	}
	took := time.Since(start)
	t.Logf("backlog of %d drained to mosquitto's subscriber in %v: %.0f msg/s (window %d)", n, took.Round(time.Millisecond),
		float64(n)/took.Seconds(), *window)
}
