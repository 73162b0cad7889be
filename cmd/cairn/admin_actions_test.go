package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// The running broker's compaction and reload on demand: `cairn compact
// --admin` runs a pass now (a retained message past its TTL is deleted by
// it, not by the interval task, which is off), POST /v1/reload rereads the
// security files, and a GET triggers neither.
func TestAdminCompactAndReload(t *testing.T) {
	b := startBroker(t, "--retained-ttl", "1s", "--compact-interval", "0")
	addr, _ := b.logs.lastJSON(1, "admin endpoint listening")["addr"].(string)
	if addr == "" {
		t.Fatalf("no admin endpoint in the log:\n%s", b.logs.tail(logTail))
	}
	c, err := dialRaw(t, b.addr, wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if ack, err := c.connect(&wire.Connect{Version: wire.V311, ClientID: "retainer", CleanStart: true}); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v %v", ack, err)
	}
	if err := c.send(&wire.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: "admin/r", Payload: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if p, err := c.recv(5 * time.Second); err != nil || p.Type() != wire.PUBACK {
		t.Fatalf("want PUBACK, got %v %v", p, err)
	}
	for _, path := range []string{"/v1/compact", "/v1/reload"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET %s: %d, want 405", path, resp.StatusCode)
		}
	}
	time.Sleep(1200 * time.Millisecond) // past the TTL
	out := mustCLI(t, "compact", "--admin", addr)
	if !strings.Contains(out, "retained expired:   1") {
		t.Fatalf("cairn compact --admin:\n%s", out)
	}
	resp, err := http.Post("http://"+addr+"/v1/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/reload: %d", resp.StatusCode)
	}
	if _, err := runCLI(t, "compact", "--admin", "127.0.0.1:1"); err == nil {
		t.Fatal("compact against no endpoint succeeded")
	}
}
