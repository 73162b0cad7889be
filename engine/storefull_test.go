package engine_test

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/store/storetest"
	"github.com/cairn-mqtt/cairn/wire"
)

const (
	fullReserve = 64 << 20
	fullPlenty  = 10 << 30
)

// fullBroker is a broker whose store's volume has as much free space as the
// test says.
type fullBroker struct {
	*faultBroker
	fs *storetest.SpaceFS
}

func startFullBroker(t *testing.T, opts engine.Options) *fullBroker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	fs := storetest.NewSpaceFS(vfs.NewMem(), fullPlenty, 2*fullPlenty)
	so := store.Options{FS: fs, MinFreeSpace: fullReserve, SpaceCheckInterval: time.Millisecond}
	return &fullBroker{faultBroker: startFaultBroker(t, opts, so), fs: fs}
}

// fill takes the free space below the reserve and waits until the store
// refuses growth; drain gives it back and waits until it accepts again.
func (fb *fullBroker) fill(t *testing.T) {
	t.Helper()
	fb.fs.SetAvail(fullReserve / 2)
	waitFor(t, 5*time.Second, "store low on space", func() bool { return fb.st.Space().Low })
}

func (fb *fullBroker) drain(t *testing.T) {
	t.Helper()
	fb.fs.SetAvail(fullPlenty)
	waitFor(t, 5*time.Second, "store accepting again", func() bool { return !fb.st.Space().Low })
}

func expectCode(t *testing.T, what string, got, want wire.ReasonCode) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: reason code 0x%02X, want 0x%02X", what, byte(got), byte(want))
	}
}

// expectMessages reads PUBLISHes (acknowledging QoS 1) until it has the
// payloads want, in order; each must arrive at qos.
func expectMessages(t *testing.T, r *rawConn, qos byte, want ...string) {
	t.Helper()
	for _, w := range want {
		p := r.expectPublish(t, 5*time.Second)
		if string(p.Payload) != w || p.QoS != qos {
			t.Fatalf("got %q at QoS %d, want %q at QoS %d", p.Payload, p.QoS, w, qos)
		}
		if p.QoS == 1 {
			r.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
		}
	}
}

// With the store below its free-space reserve, a 5.0 broker refuses new
// durable work with 0x97 — PUBACK, PUBREC, CONNACK of a new persistent
// session, SUBACK of a persistent session, DISCONNECT for a stored QoS 0 —
// giving the receive-maximum quota back; it keeps delivering what it
// stored, takes the acknowledgements (which free space), resumes stored
// sessions and serves what needs no storage; it stores nothing of what it
// refused, and accepts everything again once space returns.
func TestStoreFullV5(t *testing.T) {
	opts := engine.Options{}
	opts.Features.ReceiveMaximum = 2
	fb := startFullBroker(t, opts)

	sub, _ := mustConnect5(t, fb.addr, session5("sub", true, 3600))
	sub.subscribe5(t, 1, nil, sub5("t/#", 1))
	sub.Send(&wire.Disconnect{})
	sub.expectClosed(t, 5*time.Second)
	live, _ := mustConnect5(t, fb.addr, session5("live", true, 0))
	live.subscribe5(t, 1, nil, sub5("v/#", 1))
	pub, _ := mustConnect5(t, fb.addr, session5("pub", true, 0))
	expectCode(t, "m1 before the disk filled", pub.publishQoS1(t, 1, "t/1", "m1", nil).ReasonCode, wire.Success)
	expectCode(t, "m2 before the disk filled", pub.publishQoS1(t, 2, "t/2", "m2", nil).ReasonCode, wire.Success)

	fb.fill(t)
	expectCode(t, "PUBACK of a stored QoS 1", pub.publishQoS1(t, 3, "t/3", "m3", nil).ReasonCode, wire.QuotaExceeded)
	pub.Send(&wire.Publish{QoS: 2, PacketID: 4, Topic: "t/4", Payload: []byte("m4")})
	expectCode(t, "PUBREC of a stored QoS 2", pub.expectAck(t, wire.PUBREC, 4).ReasonCode, wire.QuotaExceeded)
	// Twice the receive maximum of refusals in one write: each gives its
	// quota back, so none is a receive-maximum violation.
	for pid := uint16(10); pid < 14; pid++ {
		pub.Send(&wire.Publish{QoS: 1, PacketID: pid, Topic: "t/q", Payload: []byte("q")})
	}
	for pid := uint16(10); pid < 14; pid++ {
		expectCode(t, "pipelined refusal", pub.expectAck(t, wire.PUBACK, pid).ReasonCode, wire.QuotaExceeded)
	}
	pub.Send(&wire.Pingreq{})
	if p := pub.Expect(t, 5*time.Second); p.Type() != wire.PINGRESP {
		t.Fatalf("PINGREQ on a full disk: got %s", p.Type())
	}
	// Only a clean session subscribes to v/#: nothing to store, served.
	expectCode(t, "a QoS 1 publish nobody persistent gets", pub.publishQoS1(t, 5, "v/1", "volatile", nil).ReasonCode, wire.Success)
	expectMessages(t, live, 1, "volatile")
	// A QoS 0 publish that would be stored (retained) ends the connection.
	pub.Send(&wire.Publish{Topic: "t/r", Retain: true, Payload: []byte("keep me")})
	pub.expectDisconnect(t, wire.QuotaExceeded)

	r, ack := connect5(t, fb.addr, session5("new5", true, 60))
	expectCode(t, "CONNACK of a new persistent 5.0 session", ack.ReasonCode, wire.QuotaExceeded)
	r.expectClosed(t, 5*time.Second)
	r3 := dialRaw(t, fb.addr)
	expectCode(t, "CONNACK of a new persistent 3.1.1 session", r3.Connect(t, &wire.Connect{ClientID: "new3", KeepAlive: 60}).ReasonCode, wire.ConnRefusedServerUnavailable)
	r3.expectClosed(t, 5*time.Second)
	cl, _ := mustConnect5(t, fb.addr, session5("clean5", true, 0)) // nothing to store: accepted
	cl.Close()

	// A stored session resumes and drains what it has; its
	// acknowledgements are committed; a SUBSCRIBE is refused whole and
	// changes nothing.
	sub, ack = mustConnect5(t, fb.addr, session5("sub", false, 3600))
	if !ack.SessionPresent {
		t.Fatal("the stored session was not resumed on a full disk")
	}
	expectMessages(t, sub, 1, "m1", "m2")
	waitFor(t, 5*time.Second, "acknowledgements committed", func() bool { return fb.st.QueueInfo("sub").Count == 0 })
	sa := sub.subscribe5(t, 2, nil, sub5("more/#", 1), sub5("t/#", 2))
	if len(sa.ReasonCodes) != 2 || sa.ReasonCodes[0] != wire.QuotaExceeded || sa.ReasonCodes[1] != wire.QuotaExceeded {
		t.Fatalf("SUBACK of a persistent session on a full disk: %v, want [0x97 0x97]", sa.ReasonCodes)
	}

	if n := fb.b.Stats().StoreFullRefusals.Load(); n != 10 {
		t.Errorf("StoreFullRefusals = %d, want 10 (7 publishes, 2 connects, 1 subscribe)", n)
	}
	if n := fb.b.Stats().CommitFailures.Load(); n != 0 {
		t.Errorf("CommitFailures = %d: refusals counted as failures", n)
	}
	sessions, err := fb.st.LoadSessions()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if id := s.Session.ClientID; id != "sub" {
			t.Errorf("refused session %q was stored", id)
		}
		if _, ok := s.Subs["more/#"]; ok || s.Subs["t/#"].QoS != 1 {
			t.Errorf("refused SUBSCRIBE changed the stored subscriptions: %+v", s.Subs)
		}
	}
	_ = fb.st.ForEachRetained(func(m *store.Message) error {
		t.Errorf("refused retained publish was stored: %s = %q", m.Topic, m.Payload)
		return nil
	})

	fb.drain(t)
	pub, _ = mustConnect5(t, fb.addr, session5("pub", true, 0))
	expectCode(t, "m5 after space returned", pub.publishQoS1(t, 1, "t/5", "m5", nil).ReasonCode, wire.Success)
	expectMessages(t, sub, 1, "m5")
	pub.publishQoS2(t, 2, "t/9", "m9", nil)
	expectMessages(t, sub, 1, "m9") // t/# still at QoS 1: the refused SUBSCRIBE did not upgrade it
	expectCode(t, "more/x", pub.publishQoS1(t, 3, "more/x", "nobody", nil).ReasonCode, wire.NoMatchingSubscribers)
	sub.expectSilence(t, 100*time.Millisecond)
	mustConnect5(t, fb.addr, session5("new5", true, 60))
}

// A 3.1.1 client has no refusal code: on a full disk its PUBLISH QoS 1/2
// gets no acknowledgement and its connection is closed, so it keeps the
// message and sends it again when it reconnects; the QoS 2 packet id is not
// kept, so the resend after space returns is stored and delivered, once.
// SUBSCRIBE of a persistent session gets 0x80.
func TestStoreFullV311(t *testing.T) {
	fb := startFullBroker(t, engine.Options{})
	sub := dialRaw(t, fb.addr)
	sub.connect(t, "sub3", false, 60, nil)
	sub.subscribe(t, 1, "t/#", 1)
	sub.Send(&wire.Disconnect{})
	sub.expectClosed(t, 5*time.Second)
	pub := dialRaw(t, fb.addr)
	pub.connect(t, "pub3", false, 60, nil)
	pub.Send(&wire.Publish{QoS: 1, PacketID: 1, Topic: "t/1", Payload: []byte("m1")})
	pub.expectAck(t, wire.PUBACK, 1)

	fb.fill(t)
	closedWithout := func(what string, r *rawConn) {
		t.Helper()
		for _, p := range r.ExpectClosed(t, 5*time.Second) {
			t.Fatalf("%s on a full disk: got %s %#v before the close, want nothing", what, p.Type(), p)
		}
	}
	pub.Send(&wire.Publish{QoS: 1, PacketID: 2, Topic: "t/2", Payload: []byte("m2")})
	closedWithout("PUBLISH QoS 1", pub)
	pub = dialRaw(t, fb.addr)
	if !pub.connect(t, "pub3", false, 60, nil) {
		t.Fatal("the publisher's stored session was not resumed on a full disk")
	}
	pub.Send(&wire.Publish{QoS: 2, PacketID: 3, Topic: "t/3", Payload: []byte("m3")})
	closedWithout("PUBLISH QoS 2", pub)
	pub = dialRaw(t, fb.addr)
	pub.connect(t, "pub3", false, 60, nil)
	if sa := pub.subscribe(t, 4, "x/#", 1); len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != wire.SubackFailure3 {
		t.Fatalf("SUBACK of a persistent 3.1.1 session on a full disk: %v, want [0x80]", sa.ReasonCodes)
	}
	pub.Send(&wire.Pingreq{})
	if p := pub.Expect(t, 5*time.Second); p.Type() != wire.PINGRESP {
		t.Fatalf("PINGREQ after a refused SUBSCRIBE: got %s", p.Type())
	}
	sub = dialRaw(t, fb.addr)
	sub.connect(t, "sub3", false, 60, nil)
	expectMessages(t, sub, 1, "m1") // acknowledged before the disk filled

	fb.drain(t)
	pub.Send(&wire.Publish{QoS: 1, PacketID: 2, Dup: true, Topic: "t/2", Payload: []byte("m2")})
	pub.expectAck(t, wire.PUBACK, 2)
	pub.Send(&wire.Publish{QoS: 2, PacketID: 3, Dup: true, Topic: "t/3", Payload: []byte("m3")})
	pub.expectAck(t, wire.PUBREC, 3)
	pub.Send(&wire.Ack{Kind: wire.PUBREL, PacketID: 3})
	pub.expectAck(t, wire.PUBCOMP, 3)
	expectMessages(t, sub, 1, "m2", "m3")
	sub.expectSilence(t, 100*time.Millisecond)
	if n := fb.b.Stats().StoreFullRefusals.Load(); n != 3 {
		t.Errorf("StoreFullRefusals = %d, want 3", n)
	}
}
