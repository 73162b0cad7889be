package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-mqtt/cairn/wire"
)

// backup DIR from a running broker — while a publisher keeps committing —
// and from the stopped store: each copy opens as a store that verifies
// against its own log and holds what was acknowledged before it was taken.
func TestBackupLiveAndStopped(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	lb := startLive(t, dir, nil)
	s := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "bk-sub", Version: wire.V311})
	s.subscribe(wire.Subscription{Filter: "bk/#", QoS: 1})
	s.disconnect()
	p := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "bk-pub", Version: wire.V311, CleanStart: true})
	for i := range 50 {
		p.publish(&wire.Publish{Topic: "bk/a", QoS: 1, PacketID: uint16(i + 1), Payload: []byte(fmt.Sprint(i))})
	}
	// Keep publishing while the backup is taken (errors reported, not
	// fatal: this is not the test goroutine).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	q, err := dialRaw(t, lb.addr, wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	if _, err := q.connect(&wire.Connect{ClientID: "bk-pub2", CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := q.send(&wire.Publish{Topic: "bk/b", QoS: 1, PacketID: uint16(i%60000 + 1), Payload: []byte("more")})
			if err == nil {
				_, err = q.recv(ioTimeout)
			}
			if err != nil {
				t.Errorf("publisher during the backup: %v", err)
				return
			}
		}
	}()
	live := filepath.Join(t.TempDir(), "live")
	out := mustCLI(t, "backup", live, "--admin", lb.admin)
	close(stop)
	wg.Wait()
	if !strings.Contains(out, "written to "+live) || !strings.Contains(out, "(checkpoint, ") || !strings.Contains(out, "it opens as a store") {
		t.Fatalf("backup --admin: %s", out)
	}
	if out := mustCLI(t, "replay", "--verify", "--data", live); !strings.Contains(out, "no differences") {
		t.Fatalf("replay --verify of the live backup: %s", out)
	}
	queue := mustCLI(t, "inspect", "queue", "bk-sub", "--limit", "0", "--json", "--data", live)
	if n := strings.Count(queue, `"topic":"bk/a"`); n != 50 {
		t.Fatalf("the live backup holds %d of the 50 messages acknowledged before it", n)
	}
	if _, err := runCLI(t, "backup", live, "--admin", lb.admin); err == nil {
		t.Fatal("backup into an existing directory succeeded")
	}
	// The tools that need a stopped store work on a running broker through
	// a fresh checkpoint.
	if out := mustCLI(t, "recover", "--check", "--admin", lb.admin); !strings.Contains(out, "checking a fresh checkpoint of the broker at "+lb.admin) || !strings.Contains(out, "the store is healthy") {
		t.Fatalf("recover --check --admin: %s", out)
	}
	rebuilt := filepath.Join(t.TempDir(), "rebuilt")
	if out := mustCLI(t, "replay", "--into", rebuilt, "--admin", lb.admin); !strings.Contains(out, "into "+rebuilt) {
		t.Fatalf("replay --into --admin: %s", out)
	}
	if n := strings.Count(mustCLI(t, "inspect", "queue", "bk-sub", "--limit", "0", "--json", "--data", rebuilt), `"topic":"bk/a"`); n != 50 {
		t.Fatalf("the store rebuilt from a live checkpoint holds %d of the 50 messages", n)
	}
	if _, err := runCLI(t, "recover", "--repair", "--admin", lb.admin); err == nil || !strings.Contains(err.Error(), "works on a stopped store") {
		t.Fatalf("recover --repair --admin: %v", err)
	}

	lb.stop()
	stopped := filepath.Join(t.TempDir(), "stopped")
	out = mustCLI(t, "backup", stopped, "--data", dir)
	if !strings.Contains(out, "(copy, ") || !strings.Contains(out, "it opens as a store") {
		t.Fatalf("backup --data: %s", out)
	}
	sameText(t, "queue of the stopped backup", mustCLI(t, "inspect", "queue", "bk-sub", "--limit", "0", "--json", "--data", stopped),
		mustCLI(t, "inspect", "queue", "bk-sub", "--limit", "0", "--json", "--data", dir))
	// The source is untouched and still serves.
	if out := mustCLI(t, "recover", "--check", "--data", dir); !strings.Contains(out, "the store is healthy") {
		t.Fatalf("source after backup: %s", out)
	}
}
