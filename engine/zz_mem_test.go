package engine_test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

func TestZZIdleMemory(t *testing.T) {
	if os.Getenv("ZZMEM") == "" {
		t.Skip()
	}
	tb := startBroker(t, engine.Options{})
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	const n = 5000
	conns := make([]net.Conn, 0, n)
	buf := make([]byte, 64)
	for i := range n {
		nc, err := net.Dial("tcp", tb.addr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := wire.AppendPacket(nil, &wire.Connect{Version: wire.V311, ClientID: fmt.Sprintf("idle-%d", i), KeepAlive: 60}, wire.V311)
		nc.Write(b)
		if _, err := nc.Read(buf); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	time.Sleep(500 * time.Millisecond)
	runtime.ReadMemStats(&ms1)
	f := func(a, b uint64) float64 { return float64(int64(b)-int64(a)) / n }
	t.Logf("per conn before GC: heapInuse %.0f B, stackInuse %.0f B, heapAlloc %.0f, sys %.0f", f(ms0.HeapInuse, ms1.HeapInuse), f(ms0.StackInuse, ms1.StackInuse), f(ms0.HeapAlloc, ms1.HeapAlloc), f(ms0.Sys, ms1.Sys))
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	t.Logf("per conn after GC: heapInuse %.0f B, stackInuse %.0f B, heapAlloc %.0f, sys %.0f", f(ms0.HeapInuse, ms1.HeapInuse), f(ms0.StackInuse, ms1.StackInuse), f(ms0.HeapAlloc, ms1.HeapAlloc), f(ms0.Sys, ms1.Sys))
	pf, _ := os.Create("/tmp/perf/idle.heap")
	pprof.WriteHeapProfile(pf)
	pf.Close()
	for _, c := range conns {
		c.Close()
	}
}
