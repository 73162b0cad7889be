package engine_test

// The hostile-input suite: bad clients over real sockets against one
// broker. After every attack the broker must have answered as the spec says
// (a reason code or a closed connection), still serve a canary client
// (ping, publish, receive), have closed every attacking connection, and its
// heap must have stayed under hostileHeapBound the whole time (sampled
// every 10 ms while the attacks run; the test's own clients are in the same
// heap, so the bound covers both).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// hostileHeapBound is the stated bound on the heap in use during the suite.
const hostileHeapBound = 64 << 20

// hostileConnectTimeout is the suite broker's CONNECT deadline.
const hostileConnectTimeout = 500 * time.Millisecond

type hostile struct {
	t        *testing.T
	tb       *testBroker
	sub, pub *rawConn
	canaries int
	peak     atomic.Uint64
}

func TestHostileInputs(t *testing.T) {
	tb := startBroker(t, engine.Options{ConnectTimeout: hostileConnectTimeout})
	h := &hostile{t: t, tb: tb}
	h.sub = mustConnectAs(t, tb.addr, wire.V311, "canary-sub", "", "")
	h.sub.subscribe(t, 1, "canary/#", 1)
	h.pub = mustConnectAs(t, tb.addr, wire.V5, "canary-pub", "", "")
	stop := h.sampleHeap()
	defer stop()

	attacks := []struct {
		name string
		f    func(t *testing.T)
	}{
		{"random bytes", h.randomBytes},
		{"malformed table", h.malformedTable},
		{"truncated packets", h.truncated},
		{"oversize remaining length", h.oversize},
		{"slowloris", h.slowloris},
		{"connect never sent and abandoned connections", h.abandoned},
		{"publish flood", h.publishFlood},
		{"subscribe bomb", h.subscribeBomb},
		{"deep topics", h.deepTopics},
		{"invalid utf-8", h.invalidUTF8},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			a.f(t)
			h.settle(t)
		})
	}
	stop()
	t.Logf("peak heap in use %.1f MiB (bound %d MiB)", float64(h.peak.Load())/(1<<20), hostileHeapBound>>20)
}

// sampleHeap records the peak heap in use until stopped.
func (h *hostile) sampleHeap() (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() { once.Do(func() { close(done); <-finished }) }
}

// settle checks the broker after an attack: attack connections gone, the
// canary served, the heap within bound.
func (h *hostile) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.tb.b.ConnLimits().Active != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after the attack (want the 2 canaries)", h.tb.b.ConnLimits().Active)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.canary(t)
	if p := h.peak.Load(); p > hostileHeapBound {
		t.Fatalf("heap in use reached %.1f MiB, over the bound of %d MiB", float64(p)/(1<<20), hostileHeapBound>>20)
	}
}

// canary publishes through the broker and expects the message back.
func (h *hostile) canary(t *testing.T) {
	t.Helper()
	h.canaries++
	pid := uint16(h.canaries)
	payload := fmt.Sprintf("canary %d", h.canaries)
	h.pub.Send(&wire.Publish{Topic: "canary/x", QoS: 1, PacketID: pid, Payload: []byte(payload)})
	h.pub.expectAck(t, wire.PUBACK, pid)
	p := h.sub.expectPublish(t, 5*time.Second)
	if string(p.Payload) != payload {
		t.Fatalf("canary got %q, want %q", p.Payload, payload)
	}
	h.sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
	h.pub.ping(t)
}

// parallel runs f(i) for i in [0, n) on at most width goroutines.
func parallel(n, width int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, width)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}

// closedWithin reads nc until the server closes it; it returns an error if
// that takes longer than d, and what was read.
func closedWithin(nc net.Conn, d time.Duration) ([]byte, error) {
	_ = nc.SetReadDeadline(time.Now().Add(d))
	var got bytes.Buffer
	_, err := io.Copy(&got, nc)
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, syscall.ECONNRESET):
		return got.Bytes(), nil
	case errors.As(err, &ne) && ne.Timeout():
		return got.Bytes(), fmt.Errorf("still open after %v (%d bytes received)", d, got.Len())
	}
	return got.Bytes(), err
}

func dialTCP(t *testing.T, addr string) net.Conn {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Error(err)
		return nil
	}
	return nc
}

func encode(p wire.Packet, v wire.Version) []byte {
	b, err := wire.AppendPacket(nil, p, v)
	if err != nil {
		panic(err)
	}
	return b
}

func connectBytes(v wire.Version, id string, keepAlive uint16) []byte {
	return encode(&wire.Connect{Version: v, ClientID: id, CleanStart: true, KeepAlive: keepAlive}, v)
}

// randomBytes: connections sending random bytes, before and after a valid
// CONNECT, are closed.
func (h *hostile) randomBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := make([][]byte, 300)
	for i := range inputs {
		b := make([]byte, 1+rng.IntN(4096))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		if i%2 == 1 {
			b = append(connectBytes(wire.V311, fmt.Sprintf("rnd%d", i), 1), b...)
		}
		inputs[i] = b
	}
	parallel(len(inputs), 32, func(i int) {
		nc := dialTCP(t, h.tb.addr)
		if nc == nil {
			return
		}
		defer nc.Close()
		_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = nc.Write(inputs[i]) // the server may close before it has all
		if _, err := closedWithin(nc, 5*time.Second); err != nil {
			t.Errorf("random input %d (%d bytes): %v", i, len(inputs[i]), err)
		}
	})
}

// malformedTable: every malformed packet of wiretest.Malformed, sent after
// a valid CONNECT of its version (or instead of it, for CONNECT packets),
// closes the connection; a 5.0 client is told the packet's reason code — in
// a CONNACK when the bad packet is a 5.0 CONNECT (the decoder got as far as
// its protocol level), with the decoder's message as the Reason String.
func (h *hostile) malformedTable(t *testing.T) {
	for i, bad := range wiretest.Malformed {
		r := dialRawV(t, h.tb.addr, bad.Version)
		isConnect := bad.Raw[0]>>4 == byte(wire.CONNECT)
		connack5 := false // a 5.0 CONNECT, refused with its reason code
		if isConnect {
			_, _, err := wire.Decode(bad.Raw, 0)
			connack5 = wire.AsError(err).Version == wire.V5
		} else {
			r.connect(t, fmt.Sprintf("mal%d", i), true, 30, nil)
		}
		r.SendRaw(bad.Raw)
		got := r.ExpectClosed(t, 5*time.Second)
		if connack5 && len(got) != 1 {
			t.Errorf("%s: %d packets before the close, want CONNACK 0x%02X", bad.Name, len(got), byte(bad.Code))
		}
		for _, p := range got {
			switch p := p.(type) {
			case *wire.Disconnect:
				if isConnect || p.ReasonCode != bad.Code {
					t.Errorf("%s: DISCONNECT 0x%02X, want 0x%02X", bad.Name, byte(p.ReasonCode), byte(bad.Code))
				}
			case *wire.Connack:
				switch {
				case connack5:
					if p.ReasonCode != bad.Code || p.Props == nil || p.Props.ReasonString == "" {
						t.Errorf("%s: CONNACK 0x%02X %+v, want 0x%02X with a reason string", bad.Name, byte(p.ReasonCode), p.Props, byte(bad.Code))
					}
				case !isConnect || bad.Code != wire.UnsupportedProtocolVersion || p.ReasonCode != wire.ConnRefusedProtocolVersion:
					t.Errorf("%s: CONNACK 0x%02X", bad.Name, byte(p.ReasonCode))
				}
			default:
				t.Errorf("%s: answered with %s", bad.Name, p.Type())
			}
		}
		r.Close()
	}
}

// truncated: every golden client packet cut short — then the client goes
// away, or stays silent — leaves nothing behind.
func (h *hostile) truncated(t *testing.T) {
	var cases [][]byte
	for _, g := range wiretest.Golden {
		if len(g.Raw) < 2 {
			continue
		}
		var prefix []byte
		if g.Raw[0]>>4 != byte(wire.CONNECT) {
			prefix = connectBytes(g.Version, "", 1)
			if g.Version == wire.V31 {
				prefix = connectBytes(g.Version, "trunc", 1)
			}
		}
		for _, cut := range []int{1, len(g.Raw) / 2, len(g.Raw) - 1} {
			if cut > 0 && cut < len(g.Raw) {
				cases = append(cases, append(append([]byte(nil), prefix...), g.Raw[:cut]...))
			}
		}
	}
	parallel(len(cases), 100, func(i int) {
		nc := dialTCP(t, h.tb.addr)
		if nc == nil {
			return
		}
		defer nc.Close()
		_, _ = nc.Write(cases[i])
		if i%2 == 0 {
			return // gone: the broker sees the stream end inside a packet
		}
		// Silent: the CONNECT deadline or the 1 s keep alive closes it.
		if _, err := closedWithin(nc, 5*time.Second); err != nil {
			t.Errorf("truncated input %d: %v", i, err)
		}
	})
}

// oversize: remaining lengths over the maximum packet size, or longer than
// four bytes, close the connection at the header; 5.0 hears 0x95 / 0x81.
func (h *hostile) oversize(t *testing.T) {
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		for _, raw := range [][]byte{
			{0x30, 0xff, 0xff, 0xff, 0x7f},       // PUBLISH of 256 MiB
			{0x82, 0xff, 0xff, 0x7f},             // SUBSCRIBE of 2 MiB
			{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, // five-byte remaining length
		} {
			r := dialRawV(t, h.tb.addr, v)
			r.connect(t, "big", true, 30, nil)
			r.SendRaw(raw)
			got := r.ExpectClosed(t, 5*time.Second)
			if v == wire.V5 {
				want := wire.PacketTooLarge
				if len(raw) == 6 {
					want = wire.MalformedPacket
				}
				if len(got) != 1 || got[0].(*wire.Disconnect).ReasonCode != want {
					t.Errorf("5.0 % x: %+v, want DISCONNECT 0x%02X", raw, got, byte(want))
				}
			}
		}
	}
	// Before CONNECT.
	nc := dialTCP(t, h.tb.addr)
	defer nc.Close()
	_, _ = nc.Write([]byte{0x10, 0xff, 0xff, 0xff, 0x7f})
	if _, err := closedWithin(nc, 5*time.Second); err != nil {
		t.Error(err)
	}
}

// slowloris: clients trickling bytes are closed at the deadline however
// steady the trickle: before CONNECT (the CONNECT deadline) and after it (a
// packet must arrive whole within 1.5 keep alive).
func (h *hostile) slowloris(t *testing.T) {
	pre := connectBytes(wire.V311, "slowloris", 60)
	post := append(connectBytes(wire.V311, "", 1), encode(&wire.Publish{Topic: "slow", Payload: bytes.Repeat([]byte("z"), 200)}, wire.V311)...)
	const step = 100 * time.Millisecond
	parallel(20, 20, func(i int) {
		nc := dialTCP(t, h.tb.addr)
		if nc == nil {
			return
		}
		defer nc.Close()
		input, limit := pre, hostileConnectTimeout
		if i%2 == 1 {
			input, limit = post, 1500*time.Millisecond
			_, _ = nc.Write(input[:len(connectBytes(wire.V311, "", 1))])
			input = input[len(connectBytes(wire.V311, "", 1)):]
		}
		closed := make(chan error, 1)
		go func() { _, err := closedWithin(nc, 10*time.Second); closed <- err }()
		start := time.Now()
		for _, c := range input {
			select {
			case err := <-closed:
				if err != nil {
					t.Error(err)
				}
				if d := time.Since(start); d < limit-step {
					t.Errorf("slowloris %d closed after %v, before its deadline %v", i, d, limit)
				}
				return
			case <-time.After(step):
			}
			if _, err := nc.Write([]byte{c}); err != nil {
				break
			}
		}
		if err := <-closed; err != nil {
			t.Errorf("slowloris %d: %v", i, err)
		}
	})
}

// abandoned: thousands of connections that never send CONNECT, half of
// them closed by the client at once and half left open, are all gone
// after the CONNECT deadline; the broker's heap stays bounded.
func (h *hostile) abandoned(t *testing.T) {
	n := min(2000, maxTestConns())
	conns := make([]net.Conn, n)
	parallel(n, 64, func(i int) {
		nc := dialTCP(t, h.tb.addr)
		if nc == nil {
			return
		}
		if i%2 == 0 {
			nc.Close()
			return
		}
		conns[i] = nc
	})
	h.canary(t) // served while they are open
	parallel(n, 64, func(i int) {
		if conns[i] == nil {
			return
		}
		defer conns[i].Close()
		if _, err := closedWithin(conns[i], 10*time.Second); err != nil {
			t.Errorf("idle connection %d: %v", i, err)
		}
	})
	if got := h.tb.b.Stats().Security.ConnectTimeouts.Load(); got < int64(n/2) {
		t.Errorf("ConnectTimeouts = %d, want at least %d", got, n/2)
	}
}

// publishFlood: one client publishing as fast as it can (QoS 0 to a
// subscriber that does not read; QoS 1 without reading its PUBACKs) is
// held back by TCP back-pressure and bounded queues while the canary is
// served.
func (h *hostile) publishFlood(t *testing.T) {
	sink := mustConnectAs(t, h.tb.addr, wire.V311, "sink", "", "")
	sink.subscribe(t, 1, "flood/#", 1) // and never reads again
	payload := bytes.Repeat([]byte("f"), 32<<10)
	for _, qos := range []byte{0, 1} {
		nc := dialTCP(t, h.tb.addr)
		if nc == nil {
			return
		}
		_, _ = nc.Write(connectBytes(wire.V311, fmt.Sprintf("flood%d", qos), 0))
		var batch []byte
		for i := range 16 {
			batch, _ = wire.AppendPacket(batch, &wire.Publish{Topic: "flood/x", QoS: qos, PacketID: uint16(i + 1), Payload: payload}, wire.V311)
		}
		done := make(chan int)
		go func() {
			sent := 0
			deadline := time.Now().Add(1500 * time.Millisecond)
			for time.Now().Before(deadline) {
				_ = nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := nc.Write(batch); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						continue // back-pressure: the broker stopped reading
					}
					break
				}
				sent += 16
			}
			done <- sent
		}()
		time.Sleep(300 * time.Millisecond)
		h.canary(t) // served during the flood
		sent := <-done
		t.Logf("QoS %d flood: %d publishes (%d MiB) written in 1.5 s", qos, sent, sent>>5)
		nc.Close()
	}
	sink.Close()
	if h.tb.b.Stats().Security.QueueFull.Load() == 0 {
		t.Error("nothing dropped for a subscriber that does not read")
	}
}

// subscribeBomb: SUBSCRIBEs of 10,000 filters each get a SUBACK of 10,000
// codes: the first MaxSubscriptions granted, the rest refused.
func (h *hostile) subscribeBomb(t *testing.T) {
	max := engine.DefaultLimits().MaxSubscriptions
	parallel(4, 4, func(c int) {
		v := wire.V311
		deny := wire.SubackFailure3
		if c%2 == 1 {
			v, deny = wire.V5, wire.QuotaExceeded
		}
		r := dialRawV(t, h.tb.addr, v)
		defer r.Close()
		ack := r.Connect(t, &wire.Connect{Version: v, ClientID: fmt.Sprintf("bomb%d", c), CleanStart: true, KeepAlive: 30})
		if ack.ReasonCode != 0 {
			t.Errorf("bomber %d refused", c)
			return
		}
		s := &wire.Subscribe{PacketID: 1}
		for i := range 10000 {
			s.Subscriptions = append(s.Subscriptions, wire.Subscription{Filter: fmt.Sprintf("bomb/%d/%d/+", c, i), QoS: 1})
		}
		r.Send(s)
		p, err := r.Recv(10 * time.Second)
		if err != nil {
			t.Errorf("bomber %d: %v", c, err)
			return
		}
		sa, ok := p.(*wire.Suback)
		if !ok || len(sa.ReasonCodes) != 10000 {
			t.Errorf("bomber %d: %T", c, p)
			return
		}
		for i, code := range sa.ReasonCodes {
			want := wire.ReasonCode(1)
			if i >= max {
				want = deny
			}
			if code != want {
				t.Errorf("bomber %d filter %d: 0x%02X, want 0x%02X", c, i, byte(code), byte(want))
				return
			}
		}
	})
}

// deepTopics: topics and filters of thousands of levels are refused by
// the level limit, never built into the trie.
func (h *hostile) deepTopics(t *testing.T) {
	deep := strings.Repeat("a/", 10000) + "a"
	slashes := strings.Repeat("/", 60000)
	r5 := mustConnectAs(t, h.tb.addr, wire.V5, "deep5", "", "")
	if c := r5.subscribeCodes(t, 1, deep, slashes, deep[:len(deep)-1]+"#"); c[0] != wire.TopicFilterInvalid || c[1] != wire.TopicFilterInvalid || c[2] != wire.TopicFilterInvalid {
		t.Errorf("5.0 SUBACK %v", c)
	}
	r5.Send(&wire.Publish{Topic: deep, QoS: 1, PacketID: 2, Payload: []byte("x")})
	if a := r5.expectAck(t, wire.PUBACK, 2); a.ReasonCode != wire.TopicNameInvalid {
		t.Errorf("PUBACK 0x%02X", byte(a.ReasonCode))
	}
	r5.ping(t)
	r3 := mustConnectAs(t, h.tb.addr, wire.V311, "deep3", "", "")
	if c := r3.subscribeCodes(t, 1, slashes); c[0] != wire.SubackFailure3 {
		t.Errorf("3.1.1 SUBACK %v", c)
	}
	r3.Send(&wire.Publish{Topic: slashes, Payload: []byte("x")})
	r3.expectClosed(t, 5*time.Second)
	r5.Close()
}

// invalidUTF8: ill-formed UTF-8 (and U+0000) in a client id, a topic, a
// filter or a user name closes the connection [MQTT-1.5.4-1].
func (h *hostile) invalidUTF8(t *testing.T) {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	packet := func(first byte, body ...[]byte) []byte {
		b := bytes.Join(body, nil)
		return append([]byte{first, byte(len(b))}, b...)
	}
	conn := func(id string) []byte {
		return packet(0x10, str("MQTT"), []byte{4, 2, 0, 30}, str(id))
	}
	for _, bad := range []string{"\xff\xfe", "a\xc3\x28", "\xed\xa0\x80", "nul\x00"} {
		for _, input := range [][]byte{
			conn(bad),
			packet(0x10, str("MQTT"), []byte{4, 0x82, 0, 30}, str("u8"), str(bad)), // user name
			append(conn("u8"), packet(0x30, str(bad), []byte("x"))...),
			append(conn("u8"), packet(0x82, []byte{0, 1}, str(bad), []byte{1})...),
			append(conn("u8"), packet(0xA2, []byte{0, 1}, str(bad))...),
		} {
			nc := dialTCP(t, h.tb.addr)
			if nc == nil {
				return
			}
			_, _ = nc.Write(input)
			got, err := closedWithin(nc, 5*time.Second)
			nc.Close()
			if err != nil {
				t.Errorf("% x: %v", input, err)
			}
			// At most the CONNACK of a good CONNECT came back.
			if len(got) > 4 {
				t.Errorf("% x: answered % x", input, got)
			}
		}
	}
}
