package engine_test

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// sysClock is a settable clock for the load averages.
type sysClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sysClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *sysClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sysValues subscribes to filter and collects the retained messages it is
// sent at once, by topic.
func sysValues(t *testing.T, addr, id, filter string) map[string]*wire.Publish {
	t.Helper()
	c := wiretest.Dial(t, addr, wire.V311)
	c.Connect(t, &wire.Connect{ClientID: id, CleanStart: true})
	c.Send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: filter, QoS: 1}}})
	got := map[string]*wire.Publish{}
	for {
		p, err := c.Recv(300 * time.Millisecond)
		if err != nil {
			break
		}
		if pub, ok := p.(*wire.Publish); ok {
			got[pub.Topic] = pub
		}
	}
	c.Close()
	return got
}

func sysNumber(t *testing.T, vals map[string]*wire.Publish, topic string) float64 {
	t.Helper()
	p := vals[topic]
	if p == nil {
		t.Fatalf("%s: not received (got %d topics)", topic, len(vals))
	}
	v, err := strconv.ParseFloat(string(p.Payload), 64)
	if err != nil {
		t.Fatalf("%s = %q: not a number", topic, p.Payload)
	}
	return v
}

// TestSysTopics: every $SYS topic is retained in memory (a new subscriber
// to $SYS/# gets them all at once, flagged retained) with values that
// follow the traffic; "#" and "+/broker/#" match none of them; nothing of
// $SYS reaches the store; a restarted broker has none until it publishes
// them again.
func TestSysTopics(t *testing.T) {
	clock := &sysClock{t: time.Now()}
	tb := startBroker(t, engine.Options{Now: clock.now})
	stop := tb.b.StartSys(time.Hour, "v-test")
	defer func() { stop() }()

	vals := sysValues(t, tb.addr, "sys-1", "$SYS/#")
	for _, topic := range engine.SysTopics {
		p := vals[topic]
		if p == nil {
			t.Errorf("%s: not sent to a new $SYS/# subscriber", topic)
			continue
		}
		if !p.Retain || p.QoS != 0 {
			t.Errorf("%s: retain %v qos %d, want a retained QoS 0 message", topic, p.Retain, p.QoS)
		}
	}
	if len(vals) != len(engine.SysTopics) {
		t.Errorf("got %d $SYS topics, want %d", len(vals), len(engine.SysTopics))
	}
	if v := string(vals["$SYS/broker/version"].Payload); v != "cairn v-test" {
		t.Errorf("version %q", v)
	}

	// Wildcards at the first level see no $SYS topic, but do see others.
	wild := wiretest.Dial(t, tb.addr, wire.V311)
	wild.Connect(t, &wire.Connect{ClientID: "wild", CleanStart: true})
	wild.Send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "#", QoS: 0}, {Filter: "+/broker/#", QoS: 0}, {Filter: "+/broker/uptime", QoS: 0}}})
	if _, ok := wild.Expect(t, wiretest.Timeout).(*wire.Suback); !ok {
		t.Fatal("no SUBACK")
	}

	// Traffic: a persistent subscriber that goes away, a publisher of
	// QoS 1 messages (two retained) that it misses, a connected client.
	sub := wiretest.Dial(t, tb.addr, wire.V311)
	sub.Connect(t, &wire.Connect{ClientID: "away", CleanStart: false})
	sub.Send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "data/#", QoS: 1}}})
	sub.Expect(t, wiretest.Timeout)
	sub.Send(&wire.Disconnect{})
	sub.ExpectClosed(t, wiretest.Timeout)

	pub := wiretest.Dial(t, tb.addr, wire.V311)
	pub.Connect(t, &wire.Connect{ClientID: "pub", CleanStart: true})
	const n = 20
	payload := strings.Repeat("x", 100)
	for i := range n {
		pub.Send(&wire.Publish{Topic: "data/" + strconv.Itoa(i%4), QoS: 1, PacketID: uint16(i + 1), Payload: []byte(payload), Retain: i < 2})
	}
	for range n {
		if a, ok := pub.Expect(t, wiretest.Timeout).(*wire.Ack); !ok || a.Kind != wire.PUBACK {
			t.Fatalf("want PUBACK, got %v", a)
		}
	}
	// The wildcard subscriber got the data but nothing of $SYS.
	for range n {
		p := wild.Expect(t, wiretest.Timeout).(*wire.Publish)
		if strings.HasPrefix(p.Topic, "$") {
			t.Fatalf("a first-level wildcard matched %s", p.Topic)
		}
	}

	// The counters are folded in after each system call: wait for the
	// writes the clients have seen to be counted.
	if !pollUntil(5*time.Second, func() bool { return tb.b.Stats().Traffic.BytesSent.Load() >= n*100 }) {
		t.Fatalf("bytes sent %d", tb.b.Stats().Traffic.BytesSent.Load())
	}
	// Session teardown is asynchronous to the socket closing: wait for
	// "away" and "sys-1" to have left (wild and pub connected; away's
	// persistent session kept).
	if !pollUntil(5*time.Second, func() bool { g := tb.b.Gauges(); return g.Connected == 2 && g.Sessions == 3 }) {
		t.Fatalf("gauges %+v, want 2 connected of 3 sessions", tb.b.Gauges())
	}
	clock.add(30 * time.Second)
	tb.b.PublishSys()
	if p, err := wild.Recv(300 * time.Millisecond); err == nil {
		t.Fatalf("a first-level wildcard got %v after PublishSys", p)
	}
	vals = sysValues(t, tb.addr, "sys-2", "$SYS/#")
	check := func(topic string, ok func(float64) bool, want string) {
		t.Helper()
		if v := sysNumber(t, vals, topic); !ok(v) {
			t.Errorf("%s = %v, want %s", topic, v, want)
		}
	}
	atLeast := func(m float64) func(float64) bool { return func(v float64) bool { return v >= m } }
	equal := func(m float64) func(float64) bool { return func(v float64) bool { return v == m } }
	check("$SYS/broker/uptime", atLeast(30), ">= 30 (the clock moved 30s)")
	check("$SYS/broker/clients/connected", equal(2), "2 (wild, pub)")
	check("$SYS/broker/clients/disconnected", equal(1), "1 (away)")
	check("$SYS/broker/clients/maximum", atLeast(2), ">= 2 (wild and away, then wild and pub; sys-1 may not have left yet)")
	check("$SYS/broker/clients/total", equal(3), "3")
	check("$SYS/broker/subscriptions/count", equal(4), "4 (3 of wild, 1 of away)")
	check("$SYS/broker/retained messages/count", equal(2), "2 (data/0 and data/1; $SYS not counted)")
	check("$SYS/broker/messages/received", equal(n), "the publishes")
	check("$SYS/broker/messages/sent", atLeast(n), ">= the deliveries to wild")
	check("$SYS/broker/bytes/received", atLeast(n*100), ">= the payloads")
	check("$SYS/broker/bytes/sent", atLeast(n*100), ">= the payloads delivered")
	check("$SYS/broker/load/messages/received/1min", func(v float64) bool { return v > 0 && v <= n }, "> 0 (20 messages over 30s)")
	check("$SYS/broker/load/messages/sent/1min", func(v float64) bool { return v > 0 }, "> 0")
	check("$SYS/broker/load/bytes/received/1min", func(v float64) bool { return v > 0 }, "> 0")
	check("$SYS/broker/load/bytes/sent/1min", func(v float64) bool { return v > 0 }, "> 0")
	check("$SYS/broker/messages/queued", equal(n), "20 (queued for away)")
	check("$SYS/broker/messages/queued/bytes", equal(n*100), "their payload bytes")
	check("$SYS/broker/messages/dropped", equal(0), "0")
	check("$SYS/broker/store/size", atLeast(1), "> 0")
	check("$SYS/broker/store/fsync/latency", func(v float64) bool { return v > 0 }, "> 0 ms (persistent QoS 1 was fsynced)")
	check("$SYS/broker/store/fsync/count", atLeast(1), ">= 1")

	// A minute later with no traffic the rates fall to zero.
	clock.add(61 * time.Second)
	tb.b.PublishSys()
	clock.add(10 * time.Second)
	tb.b.PublishSys()
	vals = sysValues(t, tb.addr, "sys-3", "$SYS/broker/load/#")
	if len(vals) != 4 {
		t.Fatalf("$SYS/broker/load/# matched %d topics", len(vals))
	}
	check("$SYS/broker/load/messages/received/1min", equal(0), "0 after an idle minute")

	// Nothing of $SYS was stored: no event was logged by publishing it,
	// and the store's retained messages are the client's two.
	before := tb.st.LastSeq()
	tb.b.PublishSys()
	tb.b.PublishSys()
	if tb.st.LastSeq() != before {
		t.Fatalf("PublishSys logged events: seq %d → %d", before, tb.st.LastSeq())
	}
	rows, err := tb.st.RetainedRows(func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("store holds %d retained messages, want the 2 published (no $SYS): %+v", len(rows), rows)
	}

	wild.Close()
	pub.Close()
	stop()
	stop = func() {}
	tb.restart()
	if vals := sysValues(t, tb.addr, "sys-4", "$SYS/#"); len(vals) != 0 {
		t.Fatalf("after a restart, before StartSys, %d $SYS topics exist (they must not be stored)", len(vals))
	}
}

// TestSysPublishRefused: clients cannot publish under $SYS/ (5.0: 0x87;
// 3.1.1: acknowledged and dropped) nor leave a will there; the broker's
// values stay.
func TestSysPublishRefused(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	stop := tb.b.StartSys(time.Hour, "v-test")
	defer stop()
	watch := wiretest.Dial(t, tb.addr, wire.V311)
	watch.Connect(t, &wire.Connect{ClientID: "watch", CleanStart: true})
	watch.Send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "$SYS/broker/version", QoS: 1}}})
	for {
		p := watch.Expect(t, wiretest.Timeout)
		if _, ok := p.(*wire.Publish); ok {
			break
		}
	}
	seq := tb.st.LastSeq()

	c5 := wiretest.Dial(t, tb.addr, wire.V5)
	c5.Connect(t, &wire.Connect{ClientID: "p5", CleanStart: true})
	c5.Send(&wire.Publish{Topic: "$SYS/broker/version", QoS: 1, PacketID: 7, Retain: true, Payload: []byte("evil")})
	if a := c5.Expect(t, wiretest.Timeout).(*wire.Ack); a.Kind != wire.PUBACK || a.PacketID != 7 || a.ReasonCode != wire.NotAuthorized {
		t.Fatalf("5.0 publish to $SYS: %+v, want PUBACK 0x87", a)
	}
	c5.Send(&wire.Publish{Topic: "$SYS/x", QoS: 2, PacketID: 8, Payload: []byte("evil")})
	if a := c5.Expect(t, wiretest.Timeout).(*wire.Ack); a.Kind != wire.PUBREC || a.ReasonCode != wire.NotAuthorized {
		t.Fatalf("5.0 QoS 2 publish to $SYS: %+v, want PUBREC 0x87", a)
	}
	c3 := wiretest.Dial(t, tb.addr, wire.V311)
	c3.Connect(t, &wire.Connect{ClientID: "p3", CleanStart: true})
	c3.Send(&wire.Publish{Topic: "$SYS/broker/version", QoS: 1, PacketID: 9, Retain: true, Payload: []byte("evil")})
	if a := c3.Expect(t, wiretest.Timeout).(*wire.Ack); a.Kind != wire.PUBACK || a.PacketID != 9 {
		t.Fatalf("3.1.1 publish to $SYS: %+v, want PUBACK", a)
	}
	if p, err := watch.Recv(300 * time.Millisecond); err == nil {
		t.Fatalf("a refused $SYS publish was delivered: %v", p)
	}
	if tb.st.LastSeq() != seq {
		t.Fatalf("a refused $SYS publish was stored (seq %d → %d)", seq, tb.st.LastSeq())
	}
	if got := tb.b.Stats().Traffic.SysPublishRefused.Load(); got != 3 {
		t.Fatalf("SysPublishRefused = %d, want 3", got)
	}

	for _, v := range []wire.Version{wire.V311, wire.V5} {
		w := wiretest.Dial(t, tb.addr, v)
		ack := w.Connect(t, &wire.Connect{ClientID: "w", CleanStart: true, Will: &wire.Will{Topic: "$SYS/broker/uptime", Payload: []byte("0")}})
		want := wire.ConnRefusedNotAuthorized
		if v == wire.V5 {
			want = wire.NotAuthorized
		}
		if ack.ReasonCode != want {
			t.Fatalf("%v: CONNECT with a will on $SYS: CONNACK %v, want %v", v, ack.ReasonCode, want)
		}
	}
}

// ackObserver counts ack latency observations.
type ackObserver struct{ n, total atomic.Int64 }

func (o *ackObserver) ObserveAckLatency(d time.Duration) {
	o.n.Add(1)
	o.total.Add(int64(d))
}

// TestTrafficCounters: packets by type and bytes in both directions are
// counted exactly; the ack latency is observed once per QoS 1/2 PUBLISH;
// drops are counted by reason.
func TestTrafficCounters(t *testing.T) {
	obs := &ackObserver{}
	tb := startBroker(t, engine.Options{Observer: obs})
	st := tb.b.Stats()
	c := wiretest.Dial(t, tb.addr, wire.V5)
	var sent int64
	send := func(p wire.Packet) {
		b, err := wire.AppendPacket(nil, p, wire.V5)
		if err != nil {
			t.Fatal(err)
		}
		sent += int64(len(b))
		c.SendRaw(b)
	}
	var recvd int64
	expect := func() wire.Packet {
		p := c.Expect(t, wiretest.Timeout)
		b, _ := wire.AppendPacket(nil, p, wire.V5)
		recvd += int64(len(b))
		return p
	}
	send(&wire.Connect{Version: wire.V5, ClientID: "counted", CleanStart: true, Props: &wire.Properties{MaximumPacketSize: ptrU32(200)}})
	expect()
	send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "c/#", QoS: 2}}})
	expect()
	for i := range 3 {
		send(&wire.Publish{Topic: "c/1", QoS: 1, PacketID: uint16(10 + i), Payload: []byte("hello")})
	}
	send(&wire.Publish{Topic: "c/0", QoS: 0, Payload: []byte("zero")})
	send(&wire.Publish{Topic: "c/big", QoS: 0, Payload: []byte(strings.Repeat("b", 300))}) // too large for the client
	// 3 PUBACK + 3 PUBLISH (QoS 1 deliveries) + 1 QoS 0 delivery.
	var pubs []*wire.Publish
	for range 7 {
		switch p := expect().(type) {
		case *wire.Publish:
			pubs = append(pubs, p)
		}
	}
	if len(pubs) != 4 {
		t.Fatalf("got %d deliveries, want 4", len(pubs))
	}
	for _, p := range pubs {
		if p.QoS == 1 {
			send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
		}
	}
	send(&wire.Pingreq{})
	expect()

	want := map[wire.PacketType][2]int64{ // received, sent
		wire.CONNECT:   {1, 0},
		wire.CONNACK:   {0, 1},
		wire.SUBSCRIBE: {1, 0},
		wire.SUBACK:    {0, 1},
		wire.PUBLISH:   {5, 4},
		wire.PUBACK:    {3, 3},
		wire.PINGREQ:   {1, 0},
		wire.PINGRESP:  {0, 1},
	}
	ok := pollUntil(5*time.Second, func() bool {
		for pt, w := range want {
			if st.Traffic.PacketsReceived[pt].Load() != w[0] || st.Traffic.PacketsSent[pt].Load() != w[1] {
				return false
			}
		}
		return st.Traffic.BytesReceived.Load() == sent && st.Traffic.BytesSent.Load() == recvd
	})
	if !ok {
		for pt, w := range want {
			t.Logf("%v: received %d (want %d), sent %d (want %d)", pt, st.Traffic.PacketsReceived[pt].Load(), w[0], st.Traffic.PacketsSent[pt].Load(), w[1])
		}
		t.Fatalf("bytes received %d (want %d), sent %d (want %d)", st.Traffic.BytesReceived.Load(), sent, st.Traffic.BytesSent.Load(), recvd)
	}
	if obs.n.Load() != 3 || obs.total.Load() <= 0 {
		t.Fatalf("ack latency observed %d times (total %v), want 3", obs.n.Load(), time.Duration(obs.total.Load()))
	}
	if d := st.Traffic.Drops[engine.DropTooLarge].Load(); d != 1 || st.MessagesDropped.Load() != 1 {
		t.Fatalf("drops: too_large %d, total %d, want 1 and 1", d, st.MessagesDropped.Load())
	}
	if st.Traffic.ConnectedMax.Load() != 1 {
		t.Fatalf("ConnectedMax %d", st.Traffic.ConnectedMax.Load())
	}
}

// pollUntil polls cond until it holds (true) or d passes (false).
func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
