package main

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

const (
	deepPublishers = 4
	deepPerPub     = 25000 // 4 × 25,000 = 100,000 messages
	deepWindow     = 100   // publishes in flight per publisher
	deepPayload    = 64    // bytes per message
	deepSub        = "deep-sub"
)

// TestHundredThousandQueuedSurviveRestart queues 100,000 QoS 1 messages
// from four pipelining publishers for an offline persistent subscriber,
// stops the broker with SIGTERM (exit 0), restarts it and drains the
// session: every message arrives, in order per publisher, exactly once (no
// delivery was ever attempted, so there is nothing to redeliver).
func TestHundredThousandQueuedSurviveRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 messages through a restart: skipped with -short")
	}
	b := startBroker(t)
	subscribePersistent(t, b.addr, deepSub, wire.V311, wire.Subscription{Filter: "deep/#", QoS: 1})

	start := time.Now()
	errs := make([]error, deepPublishers)
	var wg sync.WaitGroup
	for g := range deepPublishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[g] = publishPipelined(t, b.addr, g)
		}()
	}
	waitGroupFor(t, &wg, 2*time.Minute, "the publishers")
	for g, err := range errs {
		if err != nil {
			t.Fatalf("publisher %d: %v", g, err)
		}
	}
	pubTook := time.Since(start)
	total := deepPublishers * deepPerPub
	t.Logf("published %d QoS 1 messages (%d publishers × %d in flight) in %v: %.0f msg/s acknowledged",
		total, deepPublishers, deepWindow, pubTook.Round(time.Millisecond), float64(total)/pubTook.Seconds())

	code, took := b.terminate()
	if code != 0 {
		t.Fatalf("SIGTERM: broker exited with code %d after %v, want 0", code, took)
	}
	t.Logf("SIGTERM → exit 0 in %v", took.Round(time.Millisecond))
	b.restart()
	recovered := "?"
	if rec := b.logs.lastJSON(b.starts, "store recovered"); rec != nil {
		if ns, ok := rec["took"].(float64); ok {
			recovered = time.Duration(ns).Round(time.Microsecond).String()
		}
		if q, ok := rec["queued"].(float64); ok && int(q) != total {
			t.Errorf("the restarted broker reports %v queued messages, want %d", q, total)
		}
	}
	t.Logf("restart with %d queued messages: process start → listening in %v (of which restoring the engine from the opened store: %s)",
		total, b.startup.Round(time.Millisecond), recovered)

	c, err := dialRaw(t, b.addr, wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	ack, err := c.connect(persistentConnect(deepSub, wire.V311))
	if err != nil {
		t.Fatalf("%s: %v", deepSub, err)
	}
	if !ack.SessionPresent {
		t.Fatalf("%s: CONNACK without session present after the restart", deepSub)
	}
	next := make([]uint32, deepPublishers)
	got := 0
	start = time.Now()
	deadline := start.Add(90 * time.Second)
	for got < total {
		if time.Now().After(deadline) {
			t.Fatalf("drained %d of %d messages in %v; next expected per publisher %v", got, total, time.Since(start), next)
		}
		p, err := c.recv(10 * time.Second)
		if err != nil {
			t.Fatalf("drain: after %d of %d messages: %v (next expected per publisher %v)", got, total, err, next)
		}
		pub, ok := p.(*wire.Publish)
		if !ok {
			t.Fatalf("drain: expected PUBLISH, got %s", p.Type())
		}
		if pub.QoS != 1 || len(pub.Payload) != deepPayload {
			t.Fatalf("drain: PUBLISH QoS %d with %d bytes on %q, want QoS 1 and %d bytes", pub.QoS, len(pub.Payload), pub.Topic, deepPayload)
		}
		g, n := int(pub.Payload[0]), binary.BigEndian.Uint32(pub.Payload[1:5])
		if g >= deepPublishers || pub.Topic != fmt.Sprintf("deep/%d", g) {
			t.Fatalf("drain: message %d of publisher %d on %q", n, g, pub.Topic)
		}
		if n != next[g] {
			t.Fatalf("drain: publisher %d: got message %d, want %d (dup %v) after %d messages", g, n, next[g], pub.Dup, got)
		}
		next[g]++
		got++
		if err := c.send(&wire.Ack{Kind: wire.PUBACK, PacketID: pub.PacketID}); err != nil {
			t.Fatalf("drain: PUBACK: %v", err)
		}
	}
	drainTook := time.Since(start)
	if p, err := c.recv(300 * time.Millisecond); err == nil {
		t.Errorf("after the drain: unexpected %s %+v", p.Type(), p)
	}
	t.Logf("drained %d messages in %v: %.0f msg/s", total, drainTook.Round(time.Millisecond), float64(total)/drainTook.Seconds())
	if err := c.send(&wire.Disconnect{}); err != nil {
		t.Fatal(err)
	}
}

// publishPipelined publishes deepPerPub QoS 1 messages to deep/<g> with up to
// deepWindow in flight and checks that the PUBACKs come back in order.
func publishPipelined(t testing.TB, addr string, g int) error {
	c, err := dialRaw(t, addr, wire.V311)
	if err != nil {
		return err
	}
	defer c.close()
	if _, err := c.connect(&wire.Connect{ClientID: fmt.Sprintf("deep-pub-%d", g), CleanStart: true}); err != nil {
		return err
	}
	free := make(chan uint16, deepWindow)
	for pid := uint16(1); pid <= deepWindow; pid++ {
		free <- pid
	}
	order := make(chan uint16, deepWindow) // pids in the order sent
	readErr := make(chan error, 1)
	go func() {
		for i := 0; i < deepPerPub; i++ {
			p, err := c.recv(30 * time.Second)
			if err != nil {
				readErr <- fmt.Errorf("after %d PUBACKs: %w", i, err)
				return
			}
			a, ok := p.(*wire.Ack)
			if !ok || a.Kind != wire.PUBACK {
				readErr <- fmt.Errorf("expected PUBACK, got %s", p.Type())
				return
			}
			if want := <-order; a.PacketID != want {
				readErr <- fmt.Errorf("PUBACK %d out of order: want %d (MQTT acknowledges in order)", a.PacketID, want)
				return
			}
			free <- a.PacketID
		}
		readErr <- nil
	}()
	topic := fmt.Sprintf("deep/%d", g)
	var batch []wire.Packet
	for n := 0; n < deepPerPub; {
		var pid uint16
		select {
		case pid = <-free:
		case err := <-readErr:
			if err == nil {
				err = fmt.Errorf("reader ended early")
			}
			return err
		}
		batch = batch[:0]
		for {
			payload := make([]byte, deepPayload)
			payload[0] = byte(g)
			binary.BigEndian.PutUint32(payload[1:5], uint32(n))
			for i := 5; i < deepPayload; i++ {
				payload[i] = 'a' + byte(i%26)
			}
			batch = append(batch, &wire.Publish{QoS: 1, Topic: topic, PacketID: pid, Payload: payload})
			order <- pid
			n++
			if n == deepPerPub {
				break
			}
			var more bool
			select {
			case pid = <-free:
				more = true
			default:
			}
			if !more {
				break
			}
		}
		if err := c.send(batch...); err != nil {
			return fmt.Errorf("after %d publishes: %w", n, err)
		}
	}
	if err := <-readErr; err != nil {
		return err
	}
	return c.send(&wire.Disconnect{})
}
