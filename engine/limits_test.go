package engine_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store/storetest"
	"github.com/cairn-mqtt/cairn/wire"
)

// dialFrom opens a TCP connection to addr from the local IP from; it
// returns nil if the server reset it at once.
func dialFrom(t *testing.T, addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// mqttFrom connects an MQTT client from the local IP from; ok is false if
// the connection was reset or closed before CONNACK.
func mqttFrom(t *testing.T, addr, from, id string) (*rawConn, bool) {
	t.Helper()
	nc := dialFrom(t, addr, from)
	if nc == nil {
		return nil, false
	}
	r := newRawOver(t, nc, wire.V311)
	b, _ := wire.AppendPacket(nil, &wire.Connect{Version: wire.V311, ClientID: id, CleanStart: true, KeepAlive: 30}, wire.V311)
	if _, err := nc.Write(b); err != nil {
		return nil, false
	}
	p, err := r.Recv(5 * time.Second)
	if err != nil {
		return nil, false
	}
	if ack, ok := p.(*wire.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK: %+v", p)
	}
	return r, true
}

// TestConnectionLimits: at most MaxConnectionsPerIP from one address and
// MaxConnections in all; over either the connection is reset at accept and
// counted, and a freed slot is used again.
func TestConnectionLimits(t *testing.T) {
	var logs storetest.LogBuffer
	tb := startBroker(t, engine.Options{Limits: engine.Limits{MaxConnections: 5, MaxConnectionsPerIP: 3},
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	var kept []*rawConn
	for i := range 3 {
		r, ok := mqttFrom(t, tb.addr, "127.0.0.1", "a"+string(rune('0'+i)))
		if !ok {
			t.Fatalf("connection %d from 127.0.0.1 refused", i)
		}
		kept = append(kept, r)
	}
	if _, ok := mqttFrom(t, tb.addr, "127.0.0.1", "a3"); ok {
		t.Fatal("a 4th connection from one address was served")
	}
	for i := range 2 {
		if _, ok := mqttFrom(t, tb.addr, "127.0.0.2", "b"+string(rune('0'+i))); !ok {
			t.Fatalf("connection %d from 127.0.0.2 refused", i)
		}
	}
	if _, ok := mqttFrom(t, tb.addr, "127.0.0.3", "c0"); ok {
		t.Fatal("a 6th connection was served")
	}
	st := tb.b.ConnLimits()
	if st.RejectedPerIP != 1 || st.RejectedTotal != 1 || st.Active != 5 {
		t.Fatalf("limiter stats %+v", st)
	}
	// The first refusal is logged at once; the second, within the gate's
	// interval, only counted (a flood gets one line per interval).
	if n := logs.Count("connections refused: too many from one address"); n != 1 {
		t.Fatalf("%d log lines for the per-address refusal, want 1:\n%s", n, logs.String())
	}
	kept[0].ping(t) // the others are served as ever
	kept[0].Close()
	for deadline := time.Now().Add(5 * time.Second); tb.b.ConnLimits().Active != 4; {
		if time.Now().After(deadline) {
			t.Fatalf("slot not released: %+v", tb.b.ConnLimits())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := mqttFrom(t, tb.addr, "127.0.0.3", "c1"); !ok {
		t.Fatal("a freed slot was not reused")
	}
	found := false
	for _, c := range tb.b.SecurityCounters() {
		if c.Name == "connections_rejected_ip_limit" && c.Value == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("counter missing: %+v", tb.b.SecurityCounters())
	}
}

// TestConnectDeadline: a connection that sends nothing, or sends its
// CONNECT one byte at a time (slowloris), is closed at the CONNECT deadline
// after accept, however busy the trickle.
func TestConnectDeadline(t *testing.T) {
	const deadline = 300 * time.Millisecond
	tb := startBroker(t, engine.Options{ConnectTimeout: deadline})
	// The broker's deadline starts at accept, which may come before the
	// dial returns: the clock starts before the dial, so that an on-time
	// close is never measured as early.
	start := time.Now()
	silent := dialRaw(t, tb.addr)
	slow := dialRaw(t, tb.addr)
	connect, _ := wire.AppendPacket(nil, &wire.Connect{Version: wire.V311, ClientID: "slowloris", CleanStart: true}, wire.V311)
	stop := make(chan struct{})
	trickled := make(chan int, 1)
	go func() {
		n := 0
		defer func() { trickled <- n }()
		for _, c := range connect {
			select {
			case <-stop:
				return
			case <-time.After(deadline / 6):
			}
			if _, err := slow.NetConn().Write([]byte{c}); err != nil {
				return
			}
			n++
		}
	}()
	silent.expectClosed(t, 5*time.Second)
	slow.expectClosed(t, 5*time.Second)
	close(stop)
	n := <-trickled
	if took := time.Since(start); took < deadline {
		t.Fatalf("closed after %v, before the deadline", took)
	}
	if n >= len(connect) {
		t.Fatalf("the whole CONNECT trickled in (%d bytes) before the close", n)
	}
	waitCounter(t, "ConnectTimeouts", 2, tb.b.Stats().Security.ConnectTimeouts.Load)
}

// TestPacketSizeLimit: a packet over MaxPacketSize ends the connection:
// 5.0 DISCONNECT 0x95 first, 3.x just closed; the body is never read.
func TestPacketSizeLimit(t *testing.T) {
	tb := startBroker(t, engine.Options{MaxPacketSize: 1024})
	big := make([]byte, 2000)
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		r := dialRawV(t, tb.addr, v)
		r.connect(t, "big-"+v.String(), true, 30, nil)
		r.Send(&wire.Publish{Topic: "t", Payload: big})
		got := r.ExpectClosed(t, 5*time.Second)
		if v == wire.V5 {
			if len(got) != 1 || got[0].(*wire.Disconnect).ReasonCode != wire.PacketTooLarge {
				t.Fatalf("5.0: %+v, want DISCONNECT 0x95", got)
			}
		} else if len(got) != 0 {
			t.Fatalf("3.1.1: %+v", got)
		}
	}
	// A CONNECT announcing a huge remaining length: closed, nothing read.
	r := dialRaw(t, tb.addr)
	r.SendRaw([]byte{0x10, 0xff, 0xff, 0xff, 0x7f})
	r.expectClosed(t, 5*time.Second)
	// A CONNECT over the limit (a big will): a 5.0 client is told CONNACK
	// 0x95 (its protocol level arrived with the header), a 3.1.1 one is
	// closed without an answer.
	for _, v := range []wire.Version{wire.V5, wire.V311} {
		r := dialRawV(t, tb.addr, v)
		r.Send(&wire.Connect{Version: v, ClientID: "big-will", CleanStart: true, Will: &wire.Will{Topic: "w", Payload: big}})
		got := r.ExpectClosed(t, 5*time.Second)
		if v == wire.V5 {
			if ack, ok := firstConnack(got); !ok || len(got) != 1 || ack.ReasonCode != wire.PacketTooLarge {
				t.Fatalf("5.0 CONNECT of 2 KB: %+v, want CONNACK 0x95", got)
			}
		} else if len(got) != 0 {
			t.Fatalf("3.1.1 CONNECT of 2 KB: %+v, want a close without an answer", got)
		}
	}
	waitCounter(t, "PacketTooLarge", 5, tb.b.Stats().Security.PacketTooLarge.Load)
}

func firstConnack(got []wire.Packet) (*wire.Connack, bool) {
	if len(got) == 0 {
		return nil, false
	}
	ack, ok := got[0].(*wire.Connack)
	return ack, ok
}

// TestClientIDLimit: a client id over MaxClientIDLen is refused (0x02 /
// 0x85) and counted.
func TestClientIDLimit(t *testing.T) {
	tb := startBroker(t, engine.Options{MaxClientIDLen: 16})
	long := strings.Repeat("x", 17)
	refused(t, tb.addr, wire.V311, long, "", "", wire.ConnRefusedIdentifier)
	refused(t, tb.addr, wire.V5, long, "", "", wire.ClientIDNotValid)
	mustConnectAs(t, tb.addr, wire.V311, long[:16], "", "").ping(t)
	if n := tb.b.Stats().Security.ClientIDRejected.Load(); n != 2 {
		t.Fatalf("ClientIDRejected = %d", n)
	}
}

// TestClientIDLimit31: MQTT 3.1 allows at most 23 characters in a client
// identifier and answers a longer one with CONNACK 2 (identifier rejected);
// 3.1.1 took that bound away, so the same id is fine there.
func TestClientIDLimit31(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	id := strings.Repeat("c", 24)
	refused(t, tb.addr, wire.V31, id, "", "", wire.ConnRefusedIdentifier)
	mustConnectAs(t, tb.addr, wire.V31, id[:23], "", "").ping(t)
	mustConnectAs(t, tb.addr, wire.V311, id, "", "").ping(t)
	if n := tb.b.Stats().Security.ClientIDRejected.Load(); n != 1 {
		t.Fatalf("ClientIDRejected = %d, want 1", n)
	}
}

// TestTopicLimits: topics and filters over MaxTopicLength or MaxTopicLevels
// are refused before they have any effect.
func TestTopicLimits(t *testing.T) {
	tb := startBroker(t, engine.Options{Limits: engine.Limits{MaxTopicLength: 32, MaxTopicLevels: 4}})
	deep := "a/b/c/d/e"
	long := strings.Repeat("x", 33)
	watch := mustConnectAs(t, tb.addr, wire.V311, "watch", "", "")
	watch.subscribe(t, 1, "#", 0)

	// SUBSCRIBE: 0x8F (5.0), 0x80 (3.1.1).
	r5 := mustConnectAs(t, tb.addr, wire.V5, "five", "", "")
	if c := r5.subscribeCodes(t, 1, deep, long, "a/b/c/d", "$share/g/a/b/c/+"); c[0] != wire.TopicFilterInvalid || c[1] != wire.TopicFilterInvalid || c[2] != 1 || c[3] != 1 {
		t.Fatalf("5.0 SUBACK %v", c)
	}
	r3 := mustConnectAs(t, tb.addr, wire.V311, "three", "", "")
	if c := r3.subscribeCodes(t, 1, deep, "a/#"); c[0] != wire.SubackFailure3 || c[1] != 1 {
		t.Fatalf("3.1.1 SUBACK %v", c)
	}

	// PUBLISH, 5.0: PUBACK 0x90; QoS 0 dropped; the connection stays.
	r5.Send(&wire.Publish{Topic: deep, QoS: 1, PacketID: 7, Payload: []byte("x")})
	if a := r5.expectAck(t, wire.PUBACK, 7); a.ReasonCode != wire.TopicNameInvalid {
		t.Fatalf("PUBACK 0x%02X", byte(a.ReasonCode))
	}
	r5.Send(&wire.Publish{Topic: long, Payload: []byte("x")})
	r5.Send(&wire.Publish{Topic: "ok/topic", Payload: []byte("fine")})
	if p := watch.expectPublish(t, 5*time.Second); p.Topic != "ok/topic" {
		t.Fatalf("watcher got %s: a refused topic went through", p.Topic)
	}
	r5.ping(t)
	// 3.1.1 has no failure acknowledgement: the connection is closed.
	r3.Send(&wire.Publish{Topic: deep, QoS: 1, PacketID: 8, Payload: []byte("x")})
	r3.expectClosed(t, 5*time.Second)
	// A will over the limits refuses the CONNECT.
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		want := wire.ConnRefusedServerUnavailable
		if v == wire.V5 {
			want = wire.TopicNameInvalid
		}
		r := dialRawV(t, tb.addr, v)
		if ack := r.Connect(t, &wire.Connect{ClientID: "w", CleanStart: true, Will: &wire.Will{Topic: deep}}); ack.ReasonCode != want {
			t.Fatalf("%s will: 0x%02X", v, byte(ack.ReasonCode))
		}
	}
	if n := tb.b.Stats().Security.TopicRejected.Load(); n != 2+1+2+1+2 {
		t.Fatalf("TopicRejected = %d", n)
	}
}

// TestSubscriptionLimit: filters beyond MaxSubscriptions get 0x97 (5.0) /
// 0x80 (3.1.1); replacing an existing subscription is no new one.
func TestSubscriptionLimit(t *testing.T) {
	tb := startBroker(t, engine.Options{Limits: engine.Limits{MaxSubscriptions: 3}})
	r := mustConnectAs(t, tb.addr, wire.V5, "s5", "", "")
	c := r.subscribeCodes(t, 1, "a", "b", "c", "d", "a")
	want := []wire.ReasonCode{1, 1, 1, wire.QuotaExceeded, 1}
	for i := range want {
		if c[i] != want[i] {
			t.Fatalf("SUBACK %v, want %v", c, want)
		}
	}
	r.Send(&wire.Unsubscribe{PacketID: 2, Filters: []string{"b"}})
	if _, ok := r.Expect(t, 5*time.Second).(*wire.Unsuback); !ok {
		t.Fatal("no UNSUBACK")
	}
	if c := r.subscribeCodes(t, 3, "d", "e"); c[0] != 1 || c[1] != wire.QuotaExceeded {
		t.Fatalf("after unsubscribe: %v", c)
	}
	r3 := mustConnectAs(t, tb.addr, wire.V311, "s3", "", "")
	if c := r3.subscribeCodes(t, 1, "a", "b", "c", "d"); c[3] != wire.SubackFailure3 {
		t.Fatalf("3.1.1: %v", c)
	}
	if n := tb.b.Stats().Security.SubscriptionsExceeded.Load(); n != 3 {
		t.Fatalf("SubscriptionsExceeded = %d", n)
	}
}

// TestReceiveMaximum: a 5.0 client with more QoS 2 messages awaiting
// PUBREL than the Receive Maximum in CONNACK is disconnected with 0x93; a
// retransmission is no new message; 3.1.1 has no such limit.
func TestReceiveMaximum(t *testing.T) {
	tb := startBroker(t, engine.Options{Features: engine.Features{ReceiveMaximum: 4}})
	r := dialRawV(t, tb.addr, wire.V5)
	ack := r.Connect(t, &wire.Connect{ClientID: "rm", CleanStart: true})
	if ack.Props == nil || ack.Props.ReceiveMaximum == nil || *ack.Props.ReceiveMaximum != 4 {
		t.Fatalf("CONNACK Receive Maximum %+v", ack.Props)
	}
	for pid := uint16(1); pid <= 4; pid++ {
		r.Send(&wire.Publish{Topic: "t", QoS: 2, PacketID: pid, Payload: []byte("x")})
		r.expectAck(t, wire.PUBREC, pid)
	}
	r.Send(&wire.Publish{Topic: "t", QoS: 2, PacketID: 4, Dup: true, Payload: []byte("x")})
	r.expectAck(t, wire.PUBREC, 4)
	r.Send(&wire.Publish{Topic: "t", QoS: 2, PacketID: 5, Payload: []byte("x")})
	got := r.ExpectClosed(t, 5*time.Second)
	if len(got) != 1 || got[0].(*wire.Disconnect).ReasonCode != wire.ReceiveMaximumExceeded {
		t.Fatalf("got %+v, want DISCONNECT 0x93", got)
	}
	r3 := mustConnectAs(t, tb.addr, wire.V311, "rm3", "", "")
	for pid := uint16(1); pid <= 8; pid++ {
		r3.Send(&wire.Publish{Topic: "t", QoS: 2, PacketID: pid, Payload: []byte("x")})
		r3.expectAck(t, wire.PUBREC, pid)
	}
	if n := tb.b.Stats().Security.ReceiveMaximumExceeded.Load(); n != 1 {
		t.Fatalf("ReceiveMaximumExceeded = %d", n)
	}
}

// TestPublishRate: a client publishing faster than PublishRate is slowed
// down (its packets wait; none is lost) while others are served.
func TestPublishRate(t *testing.T) {
	const rate, burst, n = 100, 5, 35
	tb := startBroker(t, engine.Options{Limits: engine.Limits{PublishRate: rate, PublishBurst: burst}})
	sub := mustConnectAs(t, tb.addr, wire.V311, "sub", "", "")
	sub.subscribe(t, 1, "flood", 0)
	pub := mustConnectAs(t, tb.addr, wire.V311, "pub", "", "")
	other := mustConnectAs(t, tb.addr, wire.V311, "other", "", "")
	var batch []byte
	for i := range n {
		batch, _ = wire.AppendPacket(batch, &wire.Publish{Topic: "flood", Payload: []byte{byte(i)}}, wire.V311)
	}
	start := time.Now()
	pub.SendRaw(batch)
	other.ping(t)
	for i := range n {
		p := sub.expectPublish(t, 5*time.Second)
		if p.Payload[0] != byte(i) {
			t.Fatalf("message %d out of order: %d", i, p.Payload[0])
		}
	}
	// n messages with a burst of 5 at 100/s take at least (n-burst)/rate.
	if took, min := time.Since(start), time.Duration(n-burst)*time.Second/rate; took < min*9/10 {
		t.Fatalf("%d messages in %v: the rate limit did not hold (at least %v)", n, took, min)
	}
	// How many waited depends on how fast the broker read them (a slow
	// reader lets the bucket refill); some did.
	if got := tb.b.Stats().Security.PublishThrottled.Load(); got < 1 {
		t.Fatalf("PublishThrottled = %d", got)
	}
}

// TestAcceptErrorsRetried: running out of file descriptors (EMFILE) makes
// the listener pause and retry, not stop.
func TestAcceptErrorsRetried(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: l, fails: 3}
	done := make(chan error, 1)
	go func() { done <- tb.b.ServeListener(fl, engine.Listener{Name: "flaky", AllowAnonymous: true}) }()
	t.Cleanup(func() { l.Close(); <-done })
	mustConnectAs(t, l.Addr().String(), wire.V311, "x", "", "").ping(t)
	if n := tb.b.Stats().Security.AcceptErrors.Load(); n != 3 {
		t.Fatalf("AcceptErrors = %d", n)
	}
}

type failingListener struct {
	net.Listener
	fails int
}

func (f *failingListener) Accept() (net.Conn, error) {
	if f.fails > 0 {
		f.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return f.Listener.Accept()
}

// TestSlowConsumerBounded: a subscriber that stops reading costs bounded
// memory: a clean session's overflow is dropped and counted, a persistent
// session's stays on disk and is delivered, in order, once it reads again.
func TestSlowConsumerBounded(t *testing.T) {
	const n, size = 300, 4 << 10
	var logs storetest.LogBuffer
	tb := startBroker(t, engine.Options{MaxInflight: 4, Limits: engine.Limits{MaxQueuedBytes: 64 << 10},
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	cleanSub := dialRaw(t, tb.addr)
	cleanSub.connect(t, "clean", true, 0, nil)
	cleanSub.subscribe(t, 1, "slow/#", 1)
	durable := dialRaw(t, tb.addr)
	durable.connect(t, "durable", false, 0, nil)
	durable.subscribe(t, 1, "slow/#", 1)

	pub := mustConnectAs(t, tb.addr, wire.V311, "pub", "", "")
	payload := bytes.Repeat([]byte("p"), size)
	for i := range n {
		payload[0] = byte(i)
		pub.Send(&wire.Publish{Topic: "slow/x", QoS: 1, PacketID: uint16(i + 1), Payload: payload})
		pub.expectAck(t, wire.PUBACK, uint16(i+1))
	}
	// The clean subscriber holds 4 in flight and 64 KiB (16 messages) in
	// memory: the rest was dropped and counted. The PUBACK is queued just
	// before the deliveries (publish.go), so the count may still be one
	// behind the last PUBACK: wait for it to settle.
	dropped := tb.b.Stats().Security.QueueFull.Load()
	for settle := time.Now().Add(5 * time.Second); time.Now().Before(settle); {
		time.Sleep(50 * time.Millisecond)
		now := tb.b.Stats().Security.QueueFull.Load()
		if now == dropped {
			break
		}
		dropped = now
	}
	if dropped < n-4-17 || dropped > n-4-15 {
		t.Fatalf("QueueFull = %d, want about %d", dropped, n-4-16)
	}
	// Acknowledged QoS 1 messages a client loses are not lost silently:
	// a warning names the client (once per interval for a flood).
	if n := logs.Count(`"msg":"deliveries dropped: the client does not keep up and its queue in memory is full","client":"clean"`); n != 1 {
		t.Fatalf("%d drop warnings for the clean subscriber, want 1:\n%s", n, logs.String())
	}
	// The durable subscriber lost nothing: everything comes, in order.
	for i := range n {
		p := durable.expectPublish(t, 5*time.Second)
		if p.Payload[0] != byte(i) || len(p.Payload) != size {
			t.Fatalf("durable message %d: got %d", i, p.Payload[0])
		}
		durable.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
	}
	if got := tb.b.Stats().Security.QueueFull.Load(); got != dropped {
		t.Fatalf("a persistent session's messages were dropped: %d", got-dropped)
	}
}

// TestUnreadAcksBounded: a client that publishes QoS 1 without ever
// reading its PUBACKs is held back (its reader pauses once the writer has
// maxQueuedControl packets waiting) instead of the acknowledgements piling
// up in memory; other clients are served meanwhile.
func TestUnreadAcksBounded(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	nc := dialFrom(t, tb.addr, "127.0.0.1")
	b, _ := wire.AppendPacket(nil, &wire.Connect{Version: wire.V311, ClientID: "deaf", CleanStart: true}, wire.V311)
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	var batch []byte
	for i := range 4096 {
		batch, _ = wire.AppendPacket(batch, &wire.Publish{Topic: "t", QoS: 1, PacketID: uint16(i%65535 + 1)}, wire.V311)
	}
	paused := tb.b.Stats().Security.ReaderPaused.Load
	// A write that times out may have sent part of the batch: the rest goes
	// first next time, or the stream would carry half a packet.
	rest := batch
	for end := time.Now().Add(20 * time.Second); paused() == 0; {
		if time.Now().After(end) {
			t.Fatal("the broker kept reading from a client that reads nothing")
		}
		_ = nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := nc.Write(rest)
		if rest = rest[n:]; len(rest) == 0 {
			rest = batch
		}
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatal(err)
			}
		}
	}
	// Paused, the reader takes nothing more: the client's writes block.
	time.Sleep(50 * time.Millisecond)
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	for {
		n, err := nc.Write(rest)
		if rest = rest[n:]; len(rest) == 0 {
			rest = batch
		}
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatal(err)
			}
			break
		}
	}
	mustConnectAs(t, tb.addr, wire.V311, "other", "", "").ping(t)
}

// TestConnLogNamesClientOnce: a connection's log lines name the client
// once (a JSON log with a repeated key is ambiguous to every reader).
func TestConnLogNamesClientOnce(t *testing.T) {
	var buf storetest.LogBuffer
	tb := startBroker(t, engine.Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	r := mustConnectAs(t, tb.addr, wire.V311, "once", "", "")
	r.Send(&wire.Connect{Version: wire.V311, CleanStart: true, ClientID: "once"}) // a second CONNECT: closed
	r.expectClosed(t, 5*time.Second)
	waitCounter(t, "log line", 1, func() int64 { return int64(buf.Count("second CONNECT")) })
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "second CONNECT") && strings.Count(line, `"client":`) != 1 {
			t.Fatalf("log line names the client %d times: %s", strings.Count(line, `"client":`), line)
		}
	}
}
