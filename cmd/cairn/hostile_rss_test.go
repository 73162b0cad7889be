package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// hostileRSSBound is the stated bound on the resident memory of a `cairn
// serve` under the attacks of TestHostileRSS (its default limits).
const hostileRSSBound = 160 << 20

// procRSS reads VmRSS of pid from /proc, in bytes.
func procRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(string(f[0]), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// TestHostileRSS attacks a child `cairn serve` with its default limits —
// abandoned connections, subscribe bombs, floods of large messages toward a
// subscriber that does not read — while sampling its resident memory, which
// must stay under hostileRSSBound; and it must keep serving.
func TestHostileRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	b := startBroker(t, "--connect-timeout", "1s")
	pid := b.p.cmd.Process.Pid
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if rss, err := procRSS(pid); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	base, _ := procRSS(pid)

	// 1500 connections that never send CONNECT.
	var idle []net.Conn
	for range 1500 {
		nc, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, nc)
	}
	// Subscribe bombs: 4 × 10,000 filters.
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := dialRaw(t, b.addr, wire.V311)
			if err != nil {
				t.Error(err)
				return
			}
			if err := r.send(&wire.Connect{Version: wire.V311, ClientID: fmt.Sprintf("bomb%d", c), CleanStart: true}); err != nil {
				t.Error(err)
				return
			}
			s := &wire.Subscribe{PacketID: 1}
			for i := range 10000 {
				s.Subscriptions = append(s.Subscriptions, wire.Subscription{Filter: fmt.Sprintf("bomb/%d/%d", c, i), QoS: 1})
			}
			if err := r.send(s); err != nil {
				t.Error(err)
				return
			}
			for {
				p, err := r.recv(10 * time.Second)
				if err != nil {
					t.Errorf("bomber %d: %v", c, err)
					return
				}
				if sa, ok := p.(*wire.Suback); ok {
					if len(sa.ReasonCodes) != 10000 || sa.ReasonCodes[9999] != wire.SubackFailure3 {
						t.Errorf("bomber %d: SUBACK of %d codes", c, len(sa.ReasonCodes))
					}
					return
				}
			}
		}()
	}
	wg.Wait()

	// A subscriber that stops reading, and floods of 32 KiB messages.
	sink, err := dialRaw(t, b.addr, wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.send(&wire.Connect{Version: wire.V311, ClientID: "sink", CleanStart: true},
		&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "flood/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	payload := bytes.Repeat([]byte("f"), 32<<10)
	var written atomic.Int64
	for f := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			qos := byte(f % 2)
			connect, _ := wire.AppendPacket(nil, &wire.Connect{Version: wire.V311, ClientID: fmt.Sprintf("flood%d", f), CleanStart: true}, wire.V311)
			if _, err := nc.Write(connect); err != nil {
				t.Error(err)
				return
			}
			var batch []byte
			for i := range 16 {
				batch, _ = wire.AppendPacket(batch, &wire.Publish{Topic: "flood/x", QoS: qos, PacketID: uint16(i + 1), Payload: payload}, wire.V311)
			}
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
				_ = nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
				n, err := nc.Write(batch)
				written.Add(int64(n))
				if err != nil {
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("floods wrote %d MiB", written.Load()>>20)

	// Still serving: a round trip through the broker.
	c, err := dialRaw(t, b.addr, wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.send(&wire.Connect{Version: wire.V311, ClientID: "canary", CleanStart: true},
		&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "canary", QoS: 1}}},
		&wire.Publish{Topic: "canary", QoS: 1, PacketID: 2, Payload: []byte("alive")}); err != nil {
		t.Fatal(err)
	}
	for got := false; !got; {
		p, err := c.recv(10 * time.Second)
		if err != nil {
			t.Fatalf("canary: %v", err)
		}
		if pub, ok := p.(*wire.Publish); ok && string(pub.Payload) == "alive" {
			got = true
		}
	}
	for _, nc := range idle {
		nc.Close()
	}
	close(stop)
	<-sampled
	t.Logf("RSS: %.1f MiB at start, peak %.1f MiB (bound %d MiB)", float64(base)/(1<<20), float64(peak.Load())/(1<<20), hostileRSSBound>>20)
	if peak.Load() > hostileRSSBound {
		t.Fatalf("peak RSS %.1f MiB over the bound of %d MiB", float64(peak.Load())/(1<<20), hostileRSSBound>>20)
	}
}
