package engine_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// A clean session's teardown and a new CONNECT of its client id can unlink
// the old session at the same time. The new session's subscriptions — the
// trie keys them by client id, like the old one's — must not be removed by
// the old session's unlink still under way: here it is held half-way
// (subscriptions removed, session not yet) while the new connection
// subscribes, and the message published afterwards must arrive. (Before,
// the unlink dropped the session first and its subscriptions after; a new
// session subscribing in between lost its subscription in memory while the
// store kept it, and its messages were acknowledged to the publisher and
// routed to nobody.)
func TestNewSessionKeepsSubscriptionsDuringOldUnlink(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	paused, release := holdUnlink(t, "flip")

	old := dialRaw(t, tb.addr)
	old.connect(t, "flip", true, 30, nil)
	old.Close() // its teardown unlinks the clean session, and stops half-way
	select {
	case <-paused:
	case <-time.After(5 * time.Second):
		t.Fatal("the clean session's unlink did not run")
	}

	subscribed := make(chan *rawConn, 1)
	go func() {
		c := dialRaw(t, tb.addr)
		c.connect(t, "flip", false, 30, nil) // a persistent session for the same id
		c.subscribe(t, 1, "flip/t", 1)
		subscribed <- c
	}()
	time.Sleep(200 * time.Millisecond) // the new CONNECT (and SUBSCRIBE, if it is not held) happen now
	release()
	var sub *rawConn
	select {
	case sub = <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("the new connection never subscribed")
	}

	pub := dialRaw(t, tb.addr)
	pub.connect(t, "flip-pub", true, 30, nil)
	pub.publishQoS1(t, 1, "flip/t", "after", nil)
	if p := sub.expectPublish(t, 5*time.Second); string(p.Payload) != "after" {
		t.Fatalf("got %q", p.Payload)
	}
}

// A 5.0 client ends its session (Session Expiry 0 in DISCONNECT) and
// reconnects with Clean Start 0 while the old connection's teardown is still
// dropping the session: the new CONNECT waits for the teardown and starts a
// new session (session present 0), instead of resuming the one being
// dropped — whose session-dropped event would then be logged after the new
// connection's session-opened.
func TestReconnectWaitsForSessionEnd(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	paused, release := holdUnlink(t, "ender")

	old := dialV5(t, tb.addr, "ender", true, 3600)
	old.subscribe5(t, 1, nil, sub5("ender/t", 1))
	old.Send(&wire.Disconnect{Props: &wire.Properties{SessionExpiry: ptrU32(0)}})
	select {
	case <-paused:
	case <-time.After(5 * time.Second):
		t.Fatal("the session's end did not run")
	}
	acks := make(chan *wire.Connack, 1)
	go func() {
		_, ack := connect5(t, tb.addr, session5("ender", false, 3600))
		acks <- ack
	}()
	time.Sleep(200 * time.Millisecond)
	release()
	var ack *wire.Connack
	select {
	case ack = <-acks:
	case <-time.After(15 * time.Second):
		t.Fatal("no CONNACK")
	}
	if ack.ReasonCode != wire.Success || ack.SessionPresent {
		t.Fatalf("CONNACK 0x%02X present=%v; want a new session (the old one was ended by its DISCONNECT)", byte(ack.ReasonCode), ack.SessionPresent)
	}
	tb.restart()
	r, ack := connect5(t, tb.addr, session5("ender", false, 3600))
	defer r.Close()
	if !ack.SessionPresent {
		t.Fatal("the new session did not survive the restart (its session-opened was logged before the old session-dropped)")
	}
}

// holdUnlink stops the first unlink of client's session half-way (its
// subscriptions removed, the session not yet): paused is closed when it
// gets there, and it goes on at release() (also when the test ends, so a
// failed test does not leave the broker's shutdown waiting).
func holdUnlink(t *testing.T, client string) (paused chan struct{}, release func()) {
	paused, resume := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	engine.SetUnlinkPause(func(id string) {
		if id != client || !once.CompareAndSwap(false, true) {
			return
		}
		close(paused)
		<-resume
	})
	var released sync.Once
	release = func() { released.Do(func() { close(resume) }) }
	t.Cleanup(func() { engine.SetUnlinkPause(nil); release() })
	return paused, release
}
