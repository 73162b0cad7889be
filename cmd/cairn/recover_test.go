package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

const damagedQueued = 200 // messages queued for rec-sub in the damage fixture

// damageFixture builds, through a real broker, a stopped store in which the
// persistent session rec-sub holds damagedQueued messages d/<i> = "msg-<i>"
// (one synced commit each, all still in the WAL: the memtable never
// flushed; rec-sub2 holds the same messages) and one retained message. It
// returns the directory.
func damageFixture(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fixture")
	lb := startLive(t, dir, nil)
	// Two subscribers, so that the bodies are shared (m/ keys with a
	// refcount) rather than inline in a single queue entry.
	for _, id := range []string{"rec-sub", "rec-sub2"} {
		s := dialMQTT(t, lb.addr, &wire.Connect{ClientID: id, Version: wire.V311})
		s.subscribe(wire.Subscription{Filter: "d/#", QoS: 1})
		s.disconnect()
	}
	p := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "rec-pub", Version: wire.V311, CleanStart: true})
	p.publish(&wire.Publish{Topic: "status/rec", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("kept")})
	for i := range damagedQueued {
		if i == damagedQueued/4 {
			// Other commits among the publishes, as a busy broker has
			// (the message ids, which are seqs, are not consecutive).
			o := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "rec-other", Version: wire.V311})
			o.disconnect()
		}
		p.publish(&wire.Publish{Topic: fmt.Sprintf("d/%d", i), QoS: 1, PacketID: uint16(i%60000 + 2), Payload: []byte(fmt.Sprintf("msg-%03d", i))})
	}
	p.disconnect()
	lb.stop()
	return dir
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	es, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fixtureWAL is the WAL holding the fixture's commits, its bytes, and the
// offset where its records end: on the disk the store zero-fills its WAL
// ahead (store/zeroahead.go), so damage meant for the log goes before that
// end.
func fixtureWAL(t *testing.T, dir string) (wal string, data []byte, live int) {
	t.Helper()
	wal, live = walWithRecords(t, dir)
	if live < 20000 {
		t.Fatalf("no WAL holds the fixture's commits in %s", dir)
	}
	data, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	return wal, data, live
}

// syncedInLastBlock returns the offset of a payload byte in the last 32 KiB
// block of a WAL (live bytes in b) that a later chunk's synced offset says
// was fsynced, as near the end as there is one. (A fixed distance from the
// end can land in the last group commit, which no later chunk vouches for:
// then the damage is rightly a crash's unsynced tail, and on a slow machine
// the fixture's last commits are grouped so.)
func syncedInLastBlock(t *testing.T, b []byte, live int) int {
	t.Helper()
	const block, header = 32 << 10, 19 // Pebble's WAL-sync chunk header
	type chunk struct{ start, synced int }
	var chunks []chunk
	for off := (live - 1) / block * block; off+header <= live; {
		typ := b[off+6]
		if typ < 9 || typ > 12 {
			break // not a WAL-sync chunk: zeroed space or a block tail
		}
		chunks = append(chunks, chunk{off, int(binary.LittleEndian.Uint64(b[off+11:]))})
		off += header + int(binary.LittleEndian.Uint16(b[off+4:]))
	}
	for i := len(chunks) - 1; i >= 0; i-- {
		for _, later := range chunks[i+1:] {
			if later.synced > chunks[i].start+header {
				return chunks[i].start + header // its first payload byte
			}
		}
	}
	t.Fatalf("no chunk in the WAL's last block is vouched synced by a later one (%d chunks)", len(chunks))
	return 0
}

// rawDB runs fn on the store's Pebble DB directly (damage from outside).
func rawDB(t *testing.T, dir string, fn func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: silentPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

type silentPebble struct{}

func (silentPebble) Infof(string, ...any)           {}
func (silentPebble) Errorf(string, ...any)          {}
func (silentPebble) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

func sessionKeyOf(client string) []byte {
	return append(binary.BigEndian.AppendUint16([]byte("s/"), uint16(len(client))), client...)
}

// queuedBodies reads rec-sub's queue: the message id of every entry.
func queuedMsgIDs(t *testing.T, dir string) []uint64 {
	t.Helper()
	st, err := store.Open(dir, store.Options{ReadOnly: true, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.QueueRows("rec-sub", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, r := range rows {
		ids = append(ids, r.MsgID)
	}
	return ids
}

// serveRefuses runs the real binary on dir and wants it to exit at once
// with a message pointing at recover.
func serveRefuses(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command(cairnBinary(t), "serve", "--data", dir, "--listen", "127.0.0.1:0", "--admin", "", "--listen-ws", "")
	cmd.Env = append(os.Environ(), "CAIRN_LOG_FORMAT=json")
	out, err := runWithTimeout(cmd, 20*time.Second)
	if err == nil || strings.Contains(err.Error(), "killed after") {
		t.Fatalf("serve on a damaged store: %v\n%s", err, out)
	}
	for _, want := range []string{"is damaged and the broker will not start without its data", "cairn recover --check --data " + dir} {
		if !bytes.Contains(out, []byte(want)) {
			t.Fatalf("serve's refusal lacks %q:\n%s", want, out)
		}
	}
}

// serveDelivers starts the real binary on dir and wants rec-sub to receive
// exactly the messages named, and the retained message.
func serveDelivers(t *testing.T, dir string, want []string) {
	t.Helper()
	b := &broker{t: t, bin: cairnBinary(t), dir: dir, logs: &logSink{}}
	t.Cleanup(func() {
		if b.p != nil {
			b.kill9()
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", b.logs.tail(logTail))
		}
	})
	b.start()
	got := &pahoInbox{seen: map[string]int{}}
	c, present := pahoConnect(t, b.addr, "rec-sub", false, got.add)
	if !present {
		t.Fatal("rec-sub's session is not present after repair")
	}
	deadline := time.After(20 * time.Second)
	for {
		// The count and the channel of the next message under one lock:
		// taken apart, the last messages could arrive in between and the
		// wait would miss them (a lost wake-up, seen as "0 of 199").
		got.mu.Lock()
		n := len(got.order)
		if got.wake == nil {
			got.wake = make(chan struct{})
		}
		next := got.wake
		got.mu.Unlock()
		if n >= len(want) {
			break
		}
		select {
		case <-next:
		case <-deadline:
			t.Fatalf("rec-sub received %d of %d messages after repair", n, len(want))
		}
	}
	time.Sleep(200 * time.Millisecond) // nothing more may come
	got.mu.Lock()
	var payloads []string
	for _, m := range got.order {
		payloads = append(payloads, m.payload)
	}
	got.mu.Unlock()
	if !slices.Equal(payloads, want) {
		t.Fatalf("rec-sub received %d messages %v..., want %d", len(payloads), payloads[:min(5, len(payloads))], len(want))
	}
	c.Disconnect(100)
	r, _ := pahoConnect(t, b.addr, "rec-peek", true, nil)
	ch := make(chan string, 1)
	if tok := r.Subscribe("status/#", 1, func(_ paho.Client, m paho.Message) { ch <- string(m.Payload()) }); !tok.WaitTimeout(ioTimeout) {
		t.Fatal("subscribe status/#")
	}
	select {
	case p := <-ch:
		if p != "kept" {
			t.Fatalf("retained status/rec = %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the retained message is gone after repair")
	}
}

func payloadsExcept(lost map[int]bool) []string {
	var out []string
	for i := range damagedQueued {
		if !lost[i] {
			out = append(out, fmt.Sprintf("msg-%03d", i))
		}
	}
	return out
}

var gapRe = regexp.MustCompile(`the event log skips seqs (\d+)\.\.(\d+)`)

// The four kinds of damage of the issue: `recover --check` reports each,
// `serve` refuses the store where the damage is visible at start, `recover
// --repair` backs the store up, mends it and lists its changes, and the
// repaired store is accepted by `serve`, which delivers every message that
// was readable.
func TestRecoverDamagedStores(t *testing.T) {
	fixture := damageFixture(t)
	ids := queuedMsgIDs(t, fixture)
	if len(ids) != damagedQueued {
		t.Fatalf("fixture queue holds %d messages", len(ids))
	}
	// A message's id is the seq of its publish event. The seqs of the
	// publishes need not follow each other: another commit (rec-sub2's
	// session closing, on a slow machine) may land among them.
	indexOfSeq := map[int]int{}
	for i, id := range ids {
		indexOfSeq[int(id)] = i
	}
	cases := []struct {
		name        string
		damage      func(t *testing.T, dir string)
		check       []string // findings recover --check must print
		checkFails  bool
		refused     bool     // serve refuses the damaged store
		repair      []string // lines recover --repair must print
		lostAtMost  int      // messages the damage may destroy
		lostFromGap bool     // which: the log gap after repair tells
	}{
		{
			name: "message body deleted",
			damage: func(t *testing.T, dir string) {
				rawDB(t, dir, func(db *pebble.DB) {
					_ = db.Delete(binary.BigEndian.AppendUint64([]byte("m/"), ids[10]), pebble.Sync)
				})
			},
			check:      []string{fmt.Sprintf("error m/%d missing-body: message %d is missing but 2 queue entries reference it (q/rec-sub/11, q/rec-sub2/11)", ids[10], ids[10])},
			checkFails: true,
			repair:     []string{fmt.Sprintf("restored m/%d missing-body: message body rebuilt from event %d", ids[10], ids[10])},
		},
		{
			name: "session record corrupt",
			damage: func(t *testing.T, dir string) {
				rawDB(t, dir, func(db *pebble.DB) { _ = db.Set(sessionKeyOf("rec-sub"), []byte{0xc1, 0x00, 0x01}, pebble.Sync) })
			},
			check:      []string{`error s/rec-sub undecodable: session record of "rec-sub" does not decode: msgpack:`},
			checkFails: true, refused: true,
			repair: []string{"restored s/rec-sub undecodable: session record rebuilt from event "},
		},
		{
			name: "WAL truncated mid-record",
			damage: func(t *testing.T, dir string) {
				wal, b, live := fixtureWAL(t, dir)
				if err := os.WriteFile(wal, b[:live-57], 0o644); err != nil {
					t.Fatal(err)
				}
			},
			// Cut inside a page, which a crash cannot do on the disk:
			// what followed may have been acknowledged, so the check
			// fails (serve, which cannot tell for sure, starts without
			// it, as Pebble does).
			check:      []string{"error 000004.log wal-cut: ends at byte ", "inside a page"},
			checkFails: true,
			repair:     []string{"cut 000004.log kept the complete records before the cut; what followed it is lost", "the store is healthy"},
			lostAtMost: 1,
		},
		{
			name: "WAL byte flipped in the middle",
			damage: func(t *testing.T, dir string) {
				wal, b, live := fixtureWAL(t, dir)
				b[live/2] ^= 0x40
				if err := os.WriteFile(wal, b, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			check:      []string{"error 000004.log wal-damage: ", "bytes unreadable at offset", "error store corruption: Pebble refuses to open the store"},
			checkFails: true, refused: true,
			repair:     []string{"salvaged 000004.log cut at byte ", "replayed 000004.log ", " readable events behind the damage: ", "the store is healthy"},
			lostAtMost: 1, lostFromGap: true,
		},
		{
			// Pebble confirms WAL damage only from later 32 KiB blocks: in
			// the last block it would open the store without the synced
			// commits after the damage. Cairn must not.
			name: "WAL byte flipped in its last block",
			damage: func(t *testing.T, dir string) {
				wal, b, live := fixtureWAL(t, dir)
				b[syncedInLastBlock(t, b, live)] ^= 0x40
				if err := os.WriteFile(wal, b, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			check:      []string{"error 000004.log wal-damage: ", "the log says it was synced, yet Pebble would open the store without the"},
			checkFails: true, refused: true,
			repair:     []string{"salvaged 000004.log cut at byte ", "replayed 000004.log ", "the store is healthy"},
			lostAtMost: 1, lostFromGap: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			copyDir(t, fixture, dir)
			tc.damage(t, dir)
			damaged := snapshotDir(t, dir)

			out, err := runCLI(t, "recover", "--check", "--data", dir)
			if (err != nil) != tc.checkFails {
				t.Fatalf("recover --check: err %v\n%s", err, out)
			}
			for _, want := range tc.check {
				if !strings.Contains(squeeze(out), want) {
					t.Errorf("recover --check output lacks %q:\n%s", want, out)
				}
			}
			if !slices.Equal(snapshotDir(t, dir), damaged) {
				t.Fatal("recover --check changed the store")
			}
			if tc.refused {
				serveRefuses(t, dir)
				// Pebble opened the store for writing before the broker
				// found the damage (its files change, not its data).
				damaged = snapshotDir(t, dir)
			}

			backup := filepath.Join(t.TempDir(), "backup")
			out, err = runCLI(t, "recover", "--repair", "--data", dir, "--backup", backup)
			if err != nil {
				t.Fatalf("recover --repair: %v\n%s", err, out)
			}
			t.Logf("recover --repair:\n%s", out)
			for _, want := range append(tc.repair, "backup: "+backup) {
				if !strings.Contains(squeeze(out), want) {
					t.Errorf("recover --repair output lacks %q", want)
				}
			}
			if !slices.Equal(snapshotDir(t, backup), damaged) {
				t.Error("the backup is not the store as it was before the repair")
			}
			out, err = runCLI(t, "recover", "--check", "--data", dir)
			if err != nil || !strings.Contains(out, "the store is healthy") {
				t.Fatalf("recover --check after repair: %v\n%s", err, out)
			}
			if out, err := runCLI(t, "replay", "--verify", "--data", dir); err != nil || !strings.Contains(out, "no differences") {
				t.Fatalf("replay --verify after repair: %v\n%s", err, out)
			}

			// What was lost: the publishes whose events are gone.
			lost := map[int]bool{}
			after := queuedMsgIDs(t, dir)
			if tc.lostFromGap {
				if m := gapRe.FindStringSubmatch(out); m != nil {
					from, _ := strconv.Atoi(m[1])
					to, _ := strconv.Atoi(m[2])
					for seq := from; seq <= to; seq++ {
						if i, ok := indexOfSeq[seq]; ok {
							lost[i] = true
						}
					}
				}
			} else {
				for i := len(after); i < damagedQueued; i++ {
					lost[i] = true
				}
			}
			if len(lost) > tc.lostAtMost {
				t.Fatalf("%d messages lost, at most %d may be", len(lost), tc.lostAtMost)
			}
			want := payloadsExcept(lost)
			if len(after) != len(want) {
				t.Fatalf("repaired queue holds %d messages, want %d (lost %v)", len(after), len(want), lost)
			}
			t.Logf("%d messages lost to the damage: %v", len(lost), lost)
			serveDelivers(t, dir, want)
		})
	}
}

// snapshotDir is every file of dir with its contents' hash-free bytes.
func snapshotDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Name() == "LOCK" {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		out = append(out, e.Name()+"="+string(b))
	}
	return out
}

var spaces = regexp.MustCompile(` {2,}`)

// squeeze collapses the padding of table columns to one space.
func squeeze(s string) string { return spaces.ReplaceAllString(s, " ") }
