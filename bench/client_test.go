package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// fakeBroker accepts one connection and hands it, after the CONNECT, to
// serve; it is enough broker to check the client's side of each exchange.
type fakeBroker struct {
	addr string
	errs chan error
}

func startFake(t *testing.T, connack wire.ReasonCode, serve func(nc net.Conn, r *wire.Reader, v wire.Version, c *wire.Connect) error) *fakeBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBroker{addr: l.Addr().String(), errs: make(chan error, 1)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := l.Accept()
		if err != nil {
			f.errs <- err
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		r := wire.NewReader(nc, 0)
		p, err := r.ReadPacket(0)
		if err != nil {
			f.errs <- err
			return
		}
		c := p.(*wire.Connect)
		if err := send(nc, c.Version, &wire.Connack{ReasonCode: connack}); err != nil || connack != 0 {
			f.errs <- err
			return
		}
		f.errs <- serve(nc, r, c.Version, c)
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return f
}

func (f *fakeBroker) check(t *testing.T) {
	t.Helper()
	select {
	case err := <-f.errs:
		if err != nil {
			t.Fatalf("fake broker: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fake broker did not finish")
	}
}

func send(w io.Writer, v wire.Version, ps ...wire.Packet) error {
	var b []byte
	for _, p := range ps {
		var err error
		if b, err = wire.AppendPacket(b, p, v); err != nil {
			return err
		}
	}
	_, err := w.Write(b)
	return err
}

func TestClientPublisherWindowAndOutOfOrderAcks(t *testing.T) {
	const window, count = 8, 300
	var maxOut int
	fb := startFake(t, 0, func(nc net.Conn, r *wire.Reader, v wire.Version, _ *wire.Connect) error {
		out := map[uint16]bool{}
		var order []uint16
		for n := 0; n < count; {
			p, err := r.ReadPacket(v)
			if err != nil {
				return err
			}
			pub, ok := p.(*wire.Publish)
			if !ok || pub.QoS != 1 {
				return errorf("got %v", p.Type())
			}
			if out[pub.PacketID] {
				return errorf("packet id %d reused while in flight", pub.PacketID)
			}
			out[pub.PacketID] = true
			order = append(order, pub.PacketID)
			maxOut = max(maxOut, len(out))
			n++
			if len(order) >= 4 || r.Buffered() == 0 {
				// Acknowledge in reverse order.
				var acks []wire.Packet
				for i := len(order) - 1; i >= 0; i-- {
					acks = append(acks, &wire.Ack{Kind: wire.PUBACK, PacketID: order[i]})
					delete(out, order[i])
				}
				order = order[:0]
				if err := send(nc, v, acks...); err != nil {
					return err
				}
			}
		}
		_, err := r.ReadPacket(v) // DISCONNECT
		return err
	})
	c, err := dial(context.Background(), fb.addr, connOptions{ClientID: "p", Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher(c, 1, 0, "t/0", 1, window)
	c.start()
	err = p.publish(context.Background(), publishOpts{count: count, until: time.Now().Add(10 * time.Second), payload: 64}, 5*time.Second)
	c.close()
	if err != nil {
		t.Fatal(err)
	}
	fb.check(t)
	if p.acked.Load() != count || p.ackedSet.len() != count || p.puback.Count() != count {
		t.Fatalf("acked %d, set %d, latencies %d; want %d", p.acked.Load(), p.ackedSet.len(), p.puback.Count(), count)
	}
	if maxOut > window {
		t.Fatalf("%d publishes in flight, window %d", maxOut, window)
	}
}

func TestClientSubscriberAcksAndCounts(t *testing.T) {
	const run = 42
	stamped := func(pub uint32, seq uint64, qos byte, pid uint16, dup bool) *wire.Publish {
		b := make([]byte, 30)
		putStamp(b, run, pub, seq, clock())
		return &wire.Publish{Topic: "t/x", QoS: qos, PacketID: pid, Payload: b, Dup: dup}
	}
	fb := startFake(t, 0, func(nc net.Conn, r *wire.Reader, v wire.Version, c *wire.Connect) error {
		if c.CleanStart || c.Props == nil || c.Props.SessionExpiry == nil {
			return errorf("want a persistent 5.0 session, got clean=%v props=%+v", c.CleanStart, c.Props)
		}
		p, err := r.ReadPacket(v)
		if err != nil {
			return err
		}
		sub := p.(*wire.Subscribe)
		if sub.Subscriptions[0].Filter != "t/+" || sub.Subscriptions[0].QoS != 2 {
			return errorf("subscription %+v", sub.Subscriptions)
		}
		if err := send(nc, v, &wire.Suback{PacketID: sub.PacketID, ReasonCodes: []wire.ReasonCode{2}}); err != nil {
			return err
		}
		// 10 QoS 1, one duplicate, one foreign, 5 QoS 2 from publisher 1.
		var ps []wire.Packet
		for i := range 10 {
			ps = append(ps, stamped(0, uint64(i), 1, uint16(i+1), false))
		}
		ps = append(ps, stamped(0, 3, 1, 11, true))
		ps = append(ps, &wire.Publish{Topic: "t/x", QoS: 0, Payload: []byte("not ours")})
		for i := range 5 {
			ps = append(ps, stamped(1, uint64(i), 2, uint16(100+i), false))
		}
		if err := send(nc, v, ps...); err != nil {
			return err
		}
		pubacks, pubrecs := 0, 0
		for pubacks < 11 || pubrecs < 5 {
			p, err := r.ReadPacket(v)
			if err != nil {
				return err
			}
			a, ok := p.(*wire.Ack)
			if !ok {
				return errorf("got %v", p.Type())
			}
			switch a.Kind {
			case wire.PUBACK:
				pubacks++
			case wire.PUBREC:
				pubrecs++
				if err := send(nc, v, &wire.Ack{Kind: wire.PUBREL, PacketID: a.PacketID}); err != nil {
					return err
				}
			}
		}
		for range 5 {
			p, err := r.ReadPacket(v)
			if err != nil {
				return err
			}
			if a, ok := p.(*wire.Ack); !ok || a.Kind != wire.PUBCOMP {
				return errorf("got %v, want PUBCOMP", p.Type())
			}
		}
		_, err = r.ReadPacket(v) // DISCONNECT
		return err
	})
	c, err := dial(context.Background(), fb.addr, connOptions{ClientID: "s", Version: wire.V5})
	if err != nil {
		t.Fatal(err)
	}
	s := newSubscriber(c, run, 2, true)
	if err := c.subscribe([]string{"t/+"}, 2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.start()
	waitDeliveries(context.Background(), 15, s.received.Load, 5*time.Second, 5*time.Second)
	time.Sleep(50 * time.Millisecond) // let the PUBCOMPs go out
	c.close()
	fb.check(t)
	if s.received.Load() != 15 || s.dups.Load() != 1 || s.foreign.Load() != 1 || s.latency.Count() != 15 {
		t.Fatalf("received %d dups %d foreign %d latencies %d", s.received.Load(), s.dups.Load(), s.foreign.Load(), s.latency.Count())
	}
}

func TestClientQoS2Publisher(t *testing.T) {
	const count = 50
	fb := startFake(t, 0, func(nc net.Conn, r *wire.Reader, v wire.Version, _ *wire.Connect) error {
		done := 0
		for done < count {
			p, err := r.ReadPacket(v)
			if err != nil {
				return err
			}
			switch p := p.(type) {
			case *wire.Publish:
				err = send(nc, v, &wire.Ack{Kind: wire.PUBREC, PacketID: p.PacketID})
			case *wire.Ack:
				if p.Kind != wire.PUBREL {
					return errorf("got %v", p.Kind)
				}
				done++
				err = send(nc, v, &wire.Ack{Kind: wire.PUBCOMP, PacketID: p.PacketID})
			}
			if err != nil {
				return err
			}
		}
		_, err := r.ReadPacket(v)
		return err
	})
	c, err := dial(context.Background(), fb.addr, connOptions{ClientID: "p2", Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher(c, 1, 0, "t/2", 2, 4)
	c.start()
	err = p.publish(context.Background(), publishOpts{count: count, until: time.Now().Add(10 * time.Second), payload: 24, rate: 5000}, 5*time.Second)
	c.close()
	if err != nil {
		t.Fatal(err)
	}
	fb.check(t)
	if p.acked.Load() != count {
		t.Fatalf("completed %d, want %d", p.acked.Load(), count)
	}
}

func TestClientConnackRefused(t *testing.T) {
	fb := startFake(t, wire.ReasonCode(5), nil)
	_, err := dial(context.Background(), fb.addr, connOptions{ClientID: "x", Clean: true})
	if err == nil || !strings.Contains(err.Error(), "0x05") {
		t.Fatalf("dial: %v, want a refusal with code 0x05", err)
	}
	fb.check(t)
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
