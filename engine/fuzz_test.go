package engine_test

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// FuzzConn feeds arbitrary bytes to the connection handler, as a client
// would send them, and checks that the broker neither panics nor keeps a
// goroutine for the connection once the client is gone. Its corpus is in
// testdata/fuzz/FuzzConn; the seeds below are sessions built from the
// golden and malformed packet tables.
//
//	go test ./engine -run '^$' -fuzz FuzzConn -fuzztime 60s
func FuzzConn(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	tb := startBroker(f, engine.Options{ConnectTimeout: time.Second, MaxPacketSize: 64 << 10,
		Limits: engine.Limits{MaxSubscriptions: 64, MaxTopicLevels: 16}})
	f.Fuzz(func(t *testing.T, in []byte) {
		// The previous input left nothing running (checked below), so
		// this is the broker's own goroutines and this one. The CONNECT
		// workers (connectpool.go) are a bounded pool that outlives
		// connections: not counted.
		goroutines := func() int { return runtime.NumGoroutine() - engine.ConnectWorkers(tb.b) }
		base := goroutines()
		client, server := net.Pipe()
		if !tb.b.ServeConn(server) {
			t.Fatal("broker closed")
		}
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, client); close(drained) }()
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = client.Write(in) // the broker may stop reading early
		client.Close()
		<-drained
		deadline := time.Now().Add(5 * time.Second)
		for tb.b.OpenConns() != 0 || goroutines() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("after the client left: %d connections open, %d goroutines (base %d)\n%s",
					tb.b.OpenConns(), goroutines(), base, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// fuzzSeeds are client sessions: a CONNECT of each version followed by
// every golden packet of that version, a complete QoS 1/2 exchange, and each
// malformed packet after a valid CONNECT.
func fuzzSeeds() [][]byte {
	enc := func(v wire.Version, ps ...wire.Packet) []byte {
		var b []byte
		for _, p := range ps {
			b, _ = wire.AppendPacket(b, p, v)
		}
		return b
	}
	var seeds [][]byte
	for _, v := range []wire.Version{wire.V31, wire.V311, wire.V5} {
		conn := enc(v, &wire.Connect{Version: v, ClientID: "fuzz-" + v.String(), KeepAlive: 30, CleanStart: v != wire.V311,
			Will: &wire.Will{Topic: "fuzz/will", Payload: []byte("bye"), QoS: 1}})
		for _, g := range wiretest.Golden {
			if g.Version == v && g.Raw[0]>>4 != byte(wire.CONNECT) {
				seeds = append(seeds, append(append([]byte(nil), conn...), g.Raw...))
			}
			if g.Version == v && g.Raw[0]>>4 == byte(wire.CONNECT) {
				seeds = append(seeds, append([]byte(nil), g.Raw...))
			}
		}
		seeds = append(seeds, bytes.Join([][]byte{conn, enc(v,
			&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "fuzz/#", QoS: 2}, {Filter: "$share/g/fuzz/+", QoS: 1}}},
			&wire.Publish{Topic: "fuzz/a", QoS: 1, PacketID: 2, Retain: true, Payload: []byte("one")},
			&wire.Publish{Topic: "fuzz/b", QoS: 2, PacketID: 3, Payload: []byte("two")},
			&wire.Ack{Kind: wire.PUBREL, PacketID: 3},
			&wire.Ack{Kind: wire.PUBACK, PacketID: 1},
			&wire.Unsubscribe{PacketID: 4, Filters: []string{"fuzz/#"}},
			&wire.Pingreq{},
			&wire.Disconnect{},
		)}, nil))
	}
	for _, bad := range wiretest.Malformed {
		conn := enc(bad.Version, &wire.Connect{Version: bad.Version, ClientID: "fuzz-bad", CleanStart: true})
		if bad.Raw[0]>>4 == byte(wire.CONNECT) {
			conn = nil
		}
		seeds = append(seeds, append(conn, bad.Raw...))
	}
	return seeds
}
