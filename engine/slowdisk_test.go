package engine_test

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/store/storetest"
	"github.com/cairn-mqtt/cairn/wire"
)

func startSlowBroker(t *testing.T, delay time.Duration) (*faultBroker, *storetest.SlowFS) {
	t.Helper()
	fs := storetest.NewSlowFS(vfs.NewMem(), delay)
	return startFaultBroker(t, engine.Options{Logger: quietLogger()}, store.Options{FS: fs}), fs
}

// offlineSubscriber makes a persistent 3.1.1 session subscribed to filter
// and leaves, so that every QoS 1 publish on it must be fsynced.
func offlineSubscriber(t *testing.T, addr, id, filter string) {
	t.Helper()
	r := dialRaw(t, addr)
	r.connect(t, id, false, 60, nil)
	r.subscribe(t, 1, filter, 1)
	r.Send(&wire.Disconnect{})
	r.expectClosed(t, 5*time.Second)
}

// While an fsync is stuck, the broker still answers: PINGREQ on the
// connection waiting for it and on others, QoS 0 between clean sessions, a
// QoS 1 publish nobody persistent receives, a new clean connection. Only
// what needs the fsync waits for it, and goes out as soon as it completes.
func TestStuckFsyncKeepsBrokerResponsive(t *testing.T) {
	fb, fs := startSlowBroker(t, 0)
	offlineSubscriber(t, fb.addr, "sub", "d/#")
	live := dialRaw(t, fb.addr)
	live.connect(t, "live", true, 60, nil)
	live.subscribe(t, 1, "v/#", 1)
	pub := dialRaw(t, fb.addr)
	pub.connect(t, "pub", true, 60, nil)

	fs.Hold()
	pub.Send(&wire.Publish{QoS: 1, PacketID: 1, Topic: "d/1", Payload: []byte("durable")})
	waitFor(t, 5*time.Second, "an fsync in progress", func() bool { return fs.Waiting() > 0 })
	pub.Send(&wire.Pingreq{})
	if p := pub.Expect(t, 2*time.Second); p.Type() != wire.PINGRESP {
		t.Fatalf("PINGREQ while its connection's publish waits for a stuck fsync: got %s", p.Type())
	}
	other := dialRaw(t, fb.addr)
	other.connect(t, "other", true, 60, nil)
	other.Send(&wire.Pingreq{})
	if p := other.Expect(t, 2*time.Second); p.Type() != wire.PINGRESP {
		t.Fatalf("PINGREQ on another connection: got %s", p.Type())
	}
	other.Send(&wire.Publish{Topic: "v/0", Payload: []byte("qos0")})
	if p := live.expectPublish(t, 2*time.Second); string(p.Payload) != "qos0" {
		t.Fatalf("QoS 0 delivery during a stuck fsync: %q", p.Payload)
	}
	other.Send(&wire.Publish{QoS: 1, PacketID: 7, Topic: "v/1", Payload: []byte("volatile")})
	other.expectAck(t, wire.PUBACK, 7)
	if p := live.expectPublish(t, 2*time.Second); string(p.Payload) != "volatile" {
		t.Fatalf("QoS 1 delivery to a clean session during a stuck fsync: %q", p.Payload)
	}
	live.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: 1})
	pub.expectSilence(t, 100*time.Millisecond) // its PUBACK waits for the disk
	if fs.Waiting() == 0 {
		t.Fatal("the fsync finished while held")
	}

	fs.Release()
	pub.expectAck(t, wire.PUBACK, 1)
}

// publishWindowed publishes n QoS 1 messages on topic over one connection,
// with up to window of them unacknowledged, and returns when all are
// acknowledged.
func publishWindowed(addr, id, topic string, n, window int) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := wire.NewReader(nc, 1<<20)
	write := func(ps ...wire.Packet) error {
		var buf []byte
		for _, p := range ps {
			if buf, err = wire.AppendPacket(buf, p, wire.V311); err != nil {
				return err
			}
		}
		_, err := nc.Write(buf)
		return err
	}
	if err := write(&wire.Connect{Version: wire.V311, ClientID: id, CleanStart: true, KeepAlive: 60}); err != nil {
		return err
	}
	if p, err := r.ReadPacket(wire.V311); err != nil || p.Type() != wire.CONNACK {
		return fmt.Errorf("%s: CONNACK: %v %v", id, p, err)
	}
	sent, acked := 0, 0
	next := func() *wire.Publish {
		sent++
		return &wire.Publish{QoS: 1, PacketID: uint16(sent), Topic: topic, Payload: []byte(fmt.Sprintf("%s-%d", id, sent))}
	}
	var first []wire.Packet
	for sent < min(window, n) {
		first = append(first, next())
	}
	if err := write(first...); err != nil {
		return err
	}
	for acked < n {
		p, err := r.ReadPacket(wire.V311)
		if err != nil {
			return fmt.Errorf("%s: %d of %d acknowledged: %w", id, acked, n, err)
		}
		if a, ok := p.(*wire.Ack); !ok || a.Kind != wire.PUBACK {
			return fmt.Errorf("%s: unexpected %s", id, p.Type())
		}
		acked++
		if sent < n {
			if err := write(next()); err != nil {
				return err
			}
		}
	}
	return write(&wire.Disconnect{})
}

// With every fsync taking 50 ms, throughput comes from the group commit: a
// lone publisher waiting for each PUBACK pays one fsync per message, while
// 128 messages in flight share each fsync — the commits per fsync grow
// with the load, so throughput degrades with the disk's latency instead of
// collapsing. The latency is visible in the store's commit statistics, and
// an idle connection's PINGREQ is answered meanwhile.
func TestSlowDiskGroupCommit(t *testing.T) {
	const delay = 50 * time.Millisecond
	fb, fs := startSlowBroker(t, 0)
	offlineSubscriber(t, fb.addr, "sub", "g/#")
	fs.SetDelay(delay)
	defer fs.SetDelay(0) // a quick shutdown

	phase := func(pubs, window, each int) (commitsPerSync, perSec float64) {
		t.Helper()
		before, start := fb.st.CommitStats(), time.Now()
		errs := make(chan error, pubs)
		var wg sync.WaitGroup
		for i := range pubs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- publishWindowed(fb.addr, fmt.Sprintf("gp-%d-%d", window, i), fmt.Sprintf("g/%d", i), each, window)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		took := time.Since(start)
		st := fb.st.CommitStats()
		commits, syncs := st.Commits-before.Commits, st.Syncs-before.Syncs
		if syncs == 0 {
			t.Fatal("no fsync")
		}
		if lat := (st.SyncTime - before.SyncTime) / time.Duration(syncs); lat < delay {
			t.Fatalf("CommitStats shows a mean fsync of %v on a %v disk", lat, delay)
		}
		return float64(commits) / float64(syncs), float64(pubs*each) / took.Seconds()
	}

	// An idle connection pings throughout.
	ping := dialRaw(t, fb.addr)
	ping.connect(t, "pinger", true, 60, nil)
	pingreq, err := wire.AppendPacket(nil, &wire.Pingreq{}, wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var rtts []time.Duration
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			if _, err := ping.NetConn().Write(pingreq); err != nil {
				rtts = append(rtts, -1)
				return
			}
			if p, err := ping.Recv(5 * time.Second); err != nil || p.Type() != wire.PINGRESP {
				rtts = append(rtts, -1)
				return
			}
			rtts = append(rtts, time.Since(start))
		}
	}()
	loneFactor, loneRate := phase(1, 1, 5)
	busyFactor, busyRate := phase(8, 16, 96)
	close(stop)
	<-pinged
	slices.Sort(rtts)
	t.Logf("fsync %v: 1 publisher, window 1: %.1f commits/fsync, %.0f msg/s; 8 publishers, window 16: %.1f commits/fsync, %.0f msg/s; PINGRESP of an idle connection p50 %v max %v (%d pings)",
		delay, loneFactor, loneRate, busyFactor, busyRate, rtts[len(rtts)/2], rtts[len(rtts)-1], len(rtts))
	if rtts[0] < 0 {
		t.Fatal("a PINGREQ went unanswered during the load")
	}
	if loneFactor > 1.5 {
		t.Errorf("a lone publisher waiting for each PUBACK shared fsyncs: %.1f commits/fsync", loneFactor)
	}
	if busyFactor < 16 {
		t.Errorf("128 messages in flight got only %.1f commits per fsync: the group commit does not scale with the load", busyFactor)
	}
	if q := fb.st.QueueInfo("sub"); q.Count != 5+8*96 {
		t.Fatalf("queue of the offline subscriber holds %d messages, want %d", q.Count, 5+8*96)
	}
}
