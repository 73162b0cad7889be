package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// waitExit waits for the broker process to exit by itself and returns its
// exit code.
func (b *broker) waitExit(d time.Duration) int {
	b.t.Helper()
	p := b.p
	select {
	case <-p.exited:
	case <-time.After(d):
		b.t.Fatalf("broker pid %d still running after %v", p.cmd.Process.Pid, d)
	}
	b.p, b.addr = nil, ""
	return p.cmd.ProcessState.ExitCode()
}

// publishOnce publishes at QoS 1 and returns the PUBACK reason code.
func publishOnce(t *testing.T, c *wiretest.Conn, pid uint16, topic, payload string) (wire.ReasonCode, error) {
	t.Helper()
	c.Send(&wire.Publish{QoS: 1, PacketID: pid, Topic: topic, Payload: []byte(payload)})
	p, err := c.Recv(ioTimeout)
	if err != nil {
		return 0, err
	}
	a, ok := p.(*wire.Ack)
	if !ok || a.Kind != wire.PUBACK || a.PacketID != pid {
		t.Fatalf("want PUBACK %d, got %s %+v", pid, p.Type(), p)
	}
	return a.ReasonCode, nil
}

// receiveAll connects a persistent session and collects the payloads of its
// deliveries (acknowledging them) until want are all there.
func receiveAll(t *testing.T, addr, id string, want []string) {
	t.Helper()
	c := wiretest.Dial(t, addr, wire.V311)
	defer c.Close()
	if ack := c.Connect(t, persistentConnect(id, wire.V311)); ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("%s: CONNACK %+v, want its session back", id, ack)
	}
	got := map[string]bool{}
	missing := func() []string {
		var m []string
		for _, w := range want {
			if !got[w] {
				m = append(m, w)
			}
		}
		return m
	}
	for len(missing()) > 0 {
		p, err := c.Recv(ioTimeout)
		if err != nil {
			t.Fatalf("%s: acknowledged messages never delivered: %v (%v)", id, missing(), err)
		}
		if pub, ok := p.(*wire.Publish); ok {
			got[string(pub.Payload)] = true
			c.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: pub.PacketID})
		}
	}
}

// An fsync error makes `cairn serve` stop acknowledging, close its listener
// and exit non-zero, so that a supervisor restarts it; the restart brings
// back everything acknowledged before the failure.
func TestServeExitsOnFsyncError(t *testing.T) {
	trigger := filepath.Join(t.TempDir(), "fail-fsync")
	b := startBroker(t, "--fault-fsync-error-file", trigger)
	subscribePersistent(t, b.addr, "fs-sub", wire.V311, wire.Subscription{Filter: "fs/#", QoS: 1})
	pub := wiretest.Dial(t, b.addr, wire.V311)
	pub.Connect(t, persistentConnect("fs-pub", wire.V311))
	var acked []string
	for i := 1; i <= 5; i++ {
		m := fmt.Sprintf("m%d", i)
		if rc, err := publishOnce(t, pub, uint16(i), "fs/x", m); err != nil || rc != 0 {
			t.Fatalf("%s before the failure: 0x%02X %v", m, byte(rc), err)
		}
		acked = append(acked, m)
	}
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pub.Send(&wire.Publish{QoS: 1, PacketID: 6, Topic: "fs/x", Payload: []byte("m6")})
	for _, p := range pub.ExpectClosed(t, 10*time.Second) {
		t.Fatalf("after the failed fsync the publisher got %s %+v: an acknowledgement of what is not on disk", p.Type(), p)
	}
	if code := b.waitExit(stopTimeout); code == 0 {
		t.Fatal("cairn serve exited 0 after a store failure")
	}
	log := b.logs.tail(logTail)
	for _, want := range []string{"store failed: accepting no more commits", "store failed: acknowledging nothing more", "the store failed and the broker stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	if err := os.Remove(trigger); err != nil {
		t.Fatal(err)
	}
	b.restart()
	receiveAll(t, b.addr, "fs-sub", acked)
}

// --min-free-space end to end: below the reserve, a 5.0 publish of a
// persistent subscriber's message is refused with 0x97 and the condition is
// logged; when space returns the broker accepts again by itself, and what
// it acknowledged before is delivered.
func TestServeDiskFull(t *testing.T) {
	space := filepath.Join(t.TempDir(), "free-space")
	b := startBroker(t, "--min-free-space", "1GiB", "--fault-free-space-file", space)
	subscribePersistent(t, b.addr, "df-sub", wire.V311, wire.Subscription{Filter: "df/#", QoS: 1})
	pub := wiretest.Dial(t, b.addr, wire.V5)
	if ack := pub.Connect(t, &wire.Connect{ClientID: "df-pub", CleanStart: true}); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	if rc, err := publishOnce(t, pub, 1, "df/x", "before"); err != nil || rc != 0 {
		t.Fatalf("publish before the disk filled: 0x%02X %v", byte(rc), err)
	}
	if err := os.WriteFile(space, []byte("1000000"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := uint16(2)
	until := func(want wire.ReasonCode) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; pid++ {
			rc, err := publishOnce(t, pub, pid, "df/x", fmt.Sprintf("p%d", pid))
			if err != nil {
				t.Fatal(err)
			}
			if rc == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("PUBACK still 0x%02X after 10s, want 0x%02X", byte(rc), byte(want))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	until(wire.QuotaExceeded)
	if b.logs.lastJSON(1, "free space below the reserve: refusing new durable work until space returns") == nil {
		t.Fatal("the condition was not logged")
	}
	if err := os.Remove(space); err != nil {
		t.Fatal(err)
	}
	until(wire.Success)
	receiveAll(t, b.addr, "df-sub", []string{"before", fmt.Sprintf("p%d", pid)})
}

// dirDigest hashes every file of a store directory (name and content), to
// show that a refused start changed nothing.
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %d\n", n, len(data))
		h.Write(data)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the damaged file is gone: %v", err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

// storeFiles returns the paths of dir's files with the given suffix,
// largest first.
func storeFiles(t *testing.T, dir, suffix string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	type f struct {
		path string
		size int64
	}
	var fs []f
	for _, e := range ents {
		if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), suffix) {
			fs = append(fs, f{filepath.Join(dir, e.Name()), info.Size()})
		}
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].size > fs[j].size })
	var out []string
	for _, x := range fs {
		out = append(out, x.path)
	}
	return out
}

func flipBytes(t *testing.T, path string, offsets ...int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range offsets {
		data[off] ^= 0x40
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// serveOnce runs `cairn serve` on dir, expecting it to refuse to start: it
// returns the exit code and the output.
func serveOnce(t *testing.T, dir string) (int, string) {
	t.Helper()
	cmd := exec.Command(cairnBinary(t), "serve", "--listen", "127.0.0.1:0", "--data", dir)
	cmd.Env = append(os.Environ(), "CAIRN_LOG_FORMAT=json")
	out, err := runWithTimeout(cmd, listenTimeout)
	if err == nil {
		t.Fatalf("cairn serve on a damaged store exited 0:\n%s", out)
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("cairn serve on a damaged store: %v\n%s", err, out)
	}
	return ee.ExitCode(), string(out)
}

// walWithRecords is the WAL of dir holding the most records, and the offset
// where they end (the file is zero-filled ahead, store/zeroahead.go).
func walWithRecords(t *testing.T, dir string) (wal string, live int) {
	t.Helper()
	most := -1
	for _, w := range storeFiles(t, dir, ".log") {
		sc, err := store.ScanWAL(vfs.Default, filepath.Dir(w), filepath.Base(w))
		if err != nil {
			t.Fatal(err)
		}
		if sc.Records > most {
			wal, live, most = w, int(sc.EndOffset), sc.Records
		}
	}
	if most <= 0 {
		t.Fatalf("no WAL with records in %s", dir)
	}
	return wal, live
}

// A store whose WAL or sstables fail their checksums is not served: `cairn
// serve` exits non-zero, names the damaged file and points at `cairn
// recover`, and leaves every file as it was (nothing is silently dropped or
// rewritten).
func TestServeRefusesCorruptStore(t *testing.T) {
	build := func(t *testing.T, n, size int, extra ...string) *broker {
		b := startBroker(t, extra...)
		subscribePersistent(t, b.addr, "cs-sub", wire.V311, wire.Subscription{Filter: "cs/#", QoS: 1})
		c := wiretest.Dial(t, b.addr, wire.V311)
		c.Connect(t, persistentConnect("cs-pub", wire.V311))
		payload := strings.Repeat("p", size)
		for i := 1; i <= n; i++ {
			if rc, err := publishOnce(t, c, uint16(i), "cs/x", payload); err != nil || rc != 0 {
				t.Fatalf("publish %d: 0x%02X %v", i, byte(rc), err)
			}
		}
		c.Close()
		b.kill9()
		return b
	}
	// check runs serve on the damaged store: it must refuse, name the
	// damaged file (and what it says about where), point at recover, and
	// leave the damaged file as it is for recover to salvage. With unchanged
	// set, no file at all may change: Pebble met the damage before writing
	// anything. (Damage met after Pebble opened — in an sstable — comes
	// after it replayed the WAL into a new sstable and removed the WAL: a
	// change of files, not of contents.)
	check := func(t *testing.T, dir, damaged string, unchanged bool, mention ...string) {
		t.Helper()
		before, file := dirDigest(t, dir), fileDigest(t, damaged)
		code, out := serveOnce(t, dir)
		t.Logf("exit %d: %s", code, out[strings.LastIndex(out, "cairn: "):])
		for _, want := range append([]string{"cairn recover --check --data " + dir, "no data was changed"}, mention...) {
			if !strings.Contains(out, want) {
				t.Errorf("the refusal does not mention %q", want)
			}
		}
		if fileDigest(t, damaged) != file {
			t.Errorf("the refused start changed or removed the damaged %s", damaged)
		}
		if unchanged && dirDigest(t, dir) != before {
			t.Error("the refused start changed the store's files")
		}
	}
	t.Run("wal", func(t *testing.T) {
		b := build(t, 200, 900) // 200 synced publishes of ~1 KiB: the WAL spans several 32 KiB blocks
		wal, live := walWithRecords(t, b.dir)
		if live < 3*32<<10 {
			t.Fatalf("WAL %s too small to corrupt mid-file: records end at %d", wal, live)
		}
		flipBytes(t, wal, live/3)
		check(t, b.dir, wal, true, "replaying wal", wal+":", "offset")
	})
	// Damage in the newest WAL's last 32 KiB block: Pebble alone takes it
	// for a torn tail and opens without the acknowledged publishes behind
	// it; Open's own scan of the newest WAL refuses it.
	t.Run("wal-last-block", func(t *testing.T) {
		b := build(t, 20, 200) // 20 synced publishes: a WAL of one block
		wal, live := walWithRecords(t, b.dir)
		if live >= 32<<10 || live < 2000 {
			t.Fatalf("WAL %s with records up to %d: want one partly filled block", wal, live)
		}
		flipBytes(t, wal, live/3)
		check(t, b.dir, wal, true, filepath.Base(wal), "synced")
	})
	t.Run("sstable", func(t *testing.T) {
		b := build(t, 200, 900, "--memtable-size", "1") // 180 KiB of publishes: flushed to sstables
		ssts := storeFiles(t, b.dir, ".sst")
		if len(ssts) == 0 {
			t.Fatal("no sstable after the memtable filled")
		}
		info, err := os.Stat(ssts[0])
		if err != nil {
			t.Fatal(err)
		}
		var offs []int
		for off := 0; off < int(info.Size()); off += 256 {
			offs = append(offs, off)
		}
		flipBytes(t, ssts[0], offs...)
		check(t, b.dir, ssts[0], false, "file "+strings.TrimSuffix(filepath.Base(ssts[0]), ".sst"), "checksum mismatch")
	})
}

func TestServeMinFreeSpaceFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int64
	}{
		{nil, 0}, // auto: the store's default
		{[]string{"--min-free-space", "auto"}, 0},
		{[]string{"--min-free-space", "1GiB"}, 1 << 30},
		{[]string{"--min-free-space", "500MB"}, 500e6},
		{[]string{"--min-free-space", "0"}, -1}, // no reserve: the guard is off
		{[]string{"--min-free-space", "off"}, -1},
	} {
		cfg, err := runServeConfig(t, tc.args...)
		if err != nil || cfg.MinFreeSpace != tc.want {
			t.Errorf("%v: MinFreeSpace %d, %v; want %d", tc.args, cfg.MinFreeSpace, err, tc.want)
		}
	}
	t.Setenv("CAIRN_MIN_FREE_SPACE", "2GiB")
	if cfg, err := runServeConfig(t); err != nil || cfg.MinFreeSpace != 2<<30 {
		t.Errorf("CAIRN_MIN_FREE_SPACE: %d, %v", cfg.MinFreeSpace, err)
	}
	if _, err := runServeConfig(t, "--min-free-space", "lots"); err == nil || !strings.Contains(err.Error(), "min-free-space") {
		t.Errorf("a bad size: %v", err)
	}
}
