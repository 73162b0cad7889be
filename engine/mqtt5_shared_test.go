package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// drain reads deliveries for d, acknowledging QoS 1 ones, and returns their
// payloads.
func (r *rawConn) drain(t testing.TB, d time.Duration) []string {
	t.Helper()
	var got []string
	for {
		p, err := r.Recv(d)
		if err != nil {
			return got
		}
		pub, ok := p.(*wire.Publish)
		if !ok {
			t.Fatalf("got %s while draining deliveries", p.Type())
		}
		if pub.QoS == 1 {
			r.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: pub.PacketID})
		}
		got = append(got, string(pub.Payload))
	}
}

// A shared subscription delivers each message to one member, round robin
// among the online members; every group gets its own copy, and so do
// ordinary subscribers; retained messages are not sent when a member
// subscribes; an unsubscribed member gets nothing more.
func TestSharedSubscriptionRoundRobin(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	pub, _ := mustConnect5(t, tb.addr, session5("sh-pub", true, 0))
	pub.Send(&wire.Publish{QoS: 1, PacketID: 100, Retain: true, Topic: "sh/t", Payload: []byte("retained")})
	pub.expectAck(t, wire.PUBACK, 100)

	var members []*rawConn
	for i := range 2 {
		m, _ := mustConnect5(t, tb.addr, session5(fmt.Sprintf("sh-m%d", i), true, 0))
		m.subscribe5(t, 1, nil, sub5("$share/g/sh/t", 1))
		members = append(members, m)
	}
	m3 := dialRaw(t, tb.addr) // a 3.1.1 member of the same group
	m3.connect(t, "sh-m2", true, 60, nil)
	m3.subscribe(t, 1, "$share/g/sh/t", 1)
	members = append(members, m3)
	for _, m := range members {
		m.expectSilence(t, 100*time.Millisecond) // no retained message for a shared subscription
	}
	other, _ := mustConnect5(t, tb.addr, session5("sh-other", true, 0))
	other.subscribe5(t, 1, nil, sub5("$share/h/sh/t", 1))
	plain, _ := mustConnect5(t, tb.addr, session5("sh-plain", true, 0))
	plain.subscribe5(t, 1, nil, wire.Subscription{Filter: "sh/t", QoS: 1, RetainHandling: 2})

	for i := range 9 {
		pub.publishQoS1(t, uint16(i+1), "sh/t", fmt.Sprint(i), nil)
	}
	total := 0
	for i, m := range members {
		got := m.drain(t, 300*time.Millisecond)
		if len(got) != 3 {
			t.Errorf("member %d got %d messages (%v), want 3", i, len(got), got)
		}
		total += len(got)
	}
	if total != 9 {
		t.Fatalf("group g got %d messages, want each of the 9 once", total)
	}
	if n := len(other.drain(t, 100*time.Millisecond)); n != 9 {
		t.Fatalf("group h got %d, want 9", n)
	}
	if n := len(plain.drain(t, 100*time.Millisecond)); n != 9 {
		t.Fatalf("ordinary subscriber got %d, want 9", n)
	}

	members[2].Send(&wire.Unsubscribe{PacketID: 7, Filters: []string{"$share/g/sh/t"}})
	if ua, ok := members[2].Expect(t, 5*time.Second).(*wire.Unsuback); !ok || ua.PacketID != 7 {
		t.Fatalf("no UNSUBACK for the shared filter")
	}
	for i := range 4 {
		pub.publishQoS1(t, uint16(20+i), "sh/t", fmt.Sprint(20+i), nil)
	}
	a, b := members[0].drain(t, 300*time.Millisecond), members[1].drain(t, 100*time.Millisecond)
	if len(a) != 2 || len(b) != 2 || len(members[2].drain(t, 100*time.Millisecond)) != 0 {
		t.Fatalf("after unsubscribing the 3rd member: %v %v", a, b)
	}
	members[0].Send(&wire.Unsubscribe{PacketID: 8, Filters: []string{"$share/g/sh/t", "$share/g/sh/t"}})
	ua, ok := members[0].Expect(t, 5*time.Second).(*wire.Unsuback)
	if !ok || fmt.Sprint(ua.ReasonCodes) != fmt.Sprint([]wire.ReasonCode{wire.Success, wire.NoSubscriptionExisted}) {
		t.Fatalf("UNSUBACK %#v, want [0x00 0x11]", ua)
	}
}

// Offline persistent members: messages go to the online members while there
// are some; with every member offline they are queued durably for one of
// them, survive a crash, and are delivered when it returns — none lost.
func TestSharedSubscriptionOfflineMembers(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	conns := []*wire.Connect{session5("sho-a", false, 3600), session5("sho-b", false, 3600)}
	var m [2]*rawConn
	for i, c := range conns {
		m[i], _ = mustConnect5(t, tb.addr, c)
		m[i].subscribe5(t, 1, nil, sub5("$share/g/sho/t", 1))
	}
	pub, _ := mustConnect5(t, tb.addr, session5("sho-pub", true, 0))
	seq := 0
	publishN := func(n int) {
		for range n {
			seq++
			pub.publishQoS1(t, uint16(seq), "sho/t", fmt.Sprint(seq), nil)
		}
	}
	publishN(4)
	if a, b := m[0].drain(t, 300*time.Millisecond), m[1].drain(t, 100*time.Millisecond); len(a) != 2 || len(b) != 2 {
		t.Fatalf("both online: %v %v, want 2 each", a, b)
	}
	m[1].Send(&wire.Disconnect{})
	m[1].expectClosed(t, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	publishN(4)
	if a := m[0].drain(t, 300*time.Millisecond); len(a) != 4 {
		t.Fatalf("one online: it got %v, want all 4", a)
	}
	m[0].Send(&wire.Disconnect{})
	m[0].expectClosed(t, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	publishN(4) // acknowledged with nobody online: queued on disk
	pub.Close()
	tb.crash()
	queued := tb.st.QueueInfo("sho-a").Count + tb.st.QueueInfo("sho-b").Count
	if queued != 4 {
		t.Fatalf("%d messages queued for the offline members after the crash, want 4", queued)
	}
	var got []string
	for i, c := range conns {
		m[i], _ = mustConnect5(t, tb.addr, c)
		got = append(got, m[i].drain(t, 300*time.Millisecond)...)
	}
	if len(got) != 4 {
		t.Fatalf("after the crash the members got %v, want the 4 queued messages", got)
	}
}

// TestSharedFilter311: 3.1.1 clients get shared subscriptions too, but in
// 3.1.1 "$share//x" is a well-formed filter, so a malformed shared filter is
// refused with SUBACK 0x80 for that filter alone and the connection stays
// open; a valid one in the same SUBSCRIBE is granted and works.
func TestSharedFilter311(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	for _, v := range []wire.Version{wire.V31, wire.V311} {
		r := mustConnectAs(t, tb.addr, v, "share-"+v.String(), "", "")
		codes := r.subscribeCodes(t, 9, "$share//x", "$share/g", "$share/g/", "$share/g/ok")
		if fmt.Sprint(codes) != fmt.Sprint([]wire.ReasonCode{0x80, 0x80, 0x80, 1}) {
			t.Fatalf("%s: SUBACK %v, want [0x80 0x80 0x80 1]", v, codes)
		}
		r.Send(&wire.Unsubscribe{PacketID: 10, Filters: []string{"$share//x"}})
		if ua, ok := r.Expect(t, 5*time.Second).(*wire.Unsuback); !ok || ua.PacketID != 10 {
			t.Fatalf("%s: want UNSUBACK 10, got %+v", v, ua)
		}
		pub := mustConnectAs(t, tb.addr, v, "sharepub-"+v.String(), "", "")
		pub.Send(&wire.Publish{Topic: "ok", QoS: 1, PacketID: 1, Payload: []byte(v.String())})
		pub.expectAck(t, wire.PUBACK, 1)
		if p := r.expectPublish(t, 5*time.Second); p.Topic != "ok" || string(p.Payload) != v.String() {
			t.Fatalf("%s: shared member got %s %q", v, p.Topic, p.Payload)
		}
		r.ping(t)
	}
}
