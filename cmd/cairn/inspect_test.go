package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/store/storetest"
	"github.com/cairn-mqtt/cairn/wire"
)

// t0 is the broker's clock in the inspect tests; the CLI renders at t0+90s.
var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// knownStore builds, through a real broker and real TCP clients, a store
// whose contents the inspect tests know exactly:
//
//	sub-a    persistent 3.1.1, offline, subscribed to sensors/# (QoS 1) and
//	         alerts/+ (QoS 2), holding three queued messages
//	sub-b    persistent 5.0 (expiry 1h), connected with a will, subscribed to
//	         sensors/temp, holding one message it has not acknowledged
//	watcher  clean 3.1.1, connected, subscribed to # at QoS 0
//	pub      clean 5.0, connected, the publisher
//	pub-q2   persistent 3.1.1, connected, with a QoS 2 publish awaiting PUBREL
//
// and two retained messages, one expiring 10 minutes after t0. The clients
// stay connected until the test ends (or the broker stops).
func knownStore(t *testing.T, lb *liveBroker) {
	t.Helper()
	a := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "sub-a", Version: wire.V311})
	a.subscribe(wire.Subscription{Filter: "sensors/#", QoS: 1}, wire.Subscription{Filter: "alerts/+", QoS: 2})
	a.disconnect()
	// The session-closed event is committed as the connection ends, which
	// may be after the socket closes: wait for it, so that the seqs of the
	// events that follow are known.
	if !waitFor(5*time.Second, func() bool {
		d, err := lb.st.SessionDetail("sub-a")
		return err == nil && !d.Connected
	}) {
		t.Fatal("sub-a's session was never closed")
	}
	b := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "sub-b", Version: wire.V5, Props: &wire.Properties{SessionExpiry: u32p(3600)},
		Will: &wire.Will{Topic: "status/sub-b", Payload: []byte("gone"), QoS: 1, Retain: true}})
	b.subscribe(wire.Subscription{Filter: "sensors/temp", QoS: 1})
	w := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "watcher", Version: wire.V311, CleanStart: true})
	w.subscribe(wire.Subscription{Filter: "#", QoS: 0})
	p := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "pub", Version: wire.V5, CleanStart: true})
	p.publish(&wire.Publish{Topic: "sensors/temp", QoS: 1, PacketID: 1, Payload: []byte("21.5")})
	// sub-b receives it and does not acknowledge: it stays in flight.
	if pk := b.c.Expect(t, ioTimeout); pk.Type() != wire.PUBLISH {
		t.Fatalf("sub-b: expected PUBLISH, got %s", pk.Type())
	}
	p.publish(&wire.Publish{Topic: "sensors/bin", QoS: 1, PacketID: 2, Payload: []byte{0x00, 0xff, 0x10, 0x80}})
	p.publish(&wire.Publish{Topic: "alerts/fire", QoS: 2, PacketID: 3, Payload: []byte("smoke")})
	p.publish(&wire.Publish{Topic: "status/pub", QoS: 1, PacketID: 4, Retain: true, Payload: []byte("online")})
	p.publish(&wire.Publish{Topic: "status/lease", QoS: 1, PacketID: 5, Retain: true, Payload: []byte("held"),
		Props: &wire.Properties{MessageExpiry: u32p(600)}})
	// A persistent publisher's QoS 2 packet id stays stored until PUBREL,
	// which pub-q2 never sends.
	q2 := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "pub-q2", Version: wire.V311})
	q2.c.Send(&wire.Publish{Topic: "alerts/smoke", QoS: 2, PacketID: 42, Payload: []byte("hot")})
	q2.expectAck(wire.PUBREC, 42)
	// The watcher gets all six at QoS 0; its queue in memory is empty only
	// once they are written (the deliveries follow the acknowledgements).
	for i := range 6 {
		if pk := w.c.Expect(t, ioTimeout); pk.Type() != wire.PUBLISH {
			t.Fatalf("watcher: message %d: expected PUBLISH, got %s", i, pk.Type())
		}
	}
}

var goldenSessionsLive = `
CLIENT   CLEAN  PROTO  STATE          EXPIRY  SUBS  QUEUED  BYTES  INFLIGHT  QOS2-IN  WILL
pub      yes    5.0    online 1m30s   -       0     0       0 B    0         0        no
pub-q2   no     3.1.1  online 1m30s   never   0     0       0 B    0         1        no
sub-a    no     3.1.1  offline 1m30s  never   2     4       16 B   0         0        no
sub-b    no     5.0    online 1m30s   1h00m   1     1       4 B    1         0        yes
watcher  yes    3.1.1  online 1m30s   -       1     0       0 B    0         0        no
5 sessions
`

// A stopped store has no clean sessions, no live connections and nothing
// in flight but stored QoS 2 PUBREC states: sub-b's message is resent on
// its next connection.
var goldenSessionsOffline = `
CLIENT  CLEAN  PROTO  STATE                 EXPIRY  SUBS  QUEUED  BYTES  INFLIGHT  QOS2-IN  WILL
pub-q2  no     3.1.1  cut (broker stopped)  never   0     0       0 B    0         1        no
sub-a   no     3.1.1  offline 1m30s         never   2     4       16 B   0         0        no
sub-b   no     5.0    cut (broker stopped)  1h00m   1     1       4 B    0         0        yes
3 sessions
`

var goldenSessionA = `
client:                        sub-a
clean:                         no
protocol:                      3.1.1
state:                         offline 1m30s
connected at:                  2025-01-02T03:04:05Z
disconnected at:               2025-01-02T03:04:05Z
expiry:                        never
will:                          none
queue:                         4 messages, 16 B, seqs [1, 5)
inbound qos2 awaiting PUBREL:  none

SUBSCRIPTION  QOS  NO-LOCAL  RETAIN-AS-PUBLISHED  RETAIN-HANDLING  SUB-ID
alerts/+      2    no        no                   0                -
sensors/#     1    no        no                   0                -

IN FLIGHT  PACKET-ID  STATE  QOS  TOPIC
`

var goldenSessionB = `
client:                        sub-b
clean:                         no
protocol:                      5.0
state:                         online 1m30s
connected at:                  2025-01-02T03:04:05Z
expiry:                        1h00m after disconnect
will:                          status/sub-b qos 1 retain yes, 4 bytes: gone
queue:                         1 message, 4 B, seqs [1, 2)
inbound qos2 awaiting PUBREL:  none

SUBSCRIPTION  QOS  NO-LOCAL  RETAIN-AS-PUBLISHED  RETAIN-HANDLING  SUB-ID
sensors/temp  1    no        no                   0                -

IN FLIGHT  PACKET-ID  STATE  QOS  TOPIC
1          1          sent   1    sensors/temp
`

var goldenSessionBOffline = `
client:                        sub-b
clean:                         no
protocol:                      5.0
state:                         cut (broker stopped)
connected at:                  2025-01-02T03:04:05Z
expiry:                        1h00m after disconnect
will:                          status/sub-b qos 1 retain yes, 4 bytes: gone
queue:                         1 message, 4 B, seqs [1, 2)
inbound qos2 awaiting PUBREL:  none

SUBSCRIPTION  QOS  NO-LOCAL  RETAIN-AS-PUBLISHED  RETAIN-HANDLING  SUB-ID
sensors/temp  1    no        no                   0                -

IN FLIGHT  PACKET-ID  STATE  QOS  TOPIC
`

var goldenSessionQ2 = `
client:                        pub-q2
clean:                         no
protocol:                      3.1.1
state:                         online 1m30s
connected at:                  2025-01-02T03:04:05Z
expiry:                        never
will:                          none
queue:                         0 messages, 0 B, seqs [1, 1)
inbound qos2 awaiting PUBREL:  42

SUBSCRIPTION  QOS  NO-LOCAL  RETAIN-AS-PUBLISHED  RETAIN-HANDLING  SUB-ID

IN FLIGHT  PACKET-ID  STATE  QOS  TOPIC
`

var goldenQueueA = `
SEQ  MSG  TOPIC         QOS  STATE   PACKET-ID  SIZE  AGE    EXPIRES  PAYLOAD
1    7    sensors/temp  1    queued  -          4     1m30s  never    21.5
2    8    sensors/bin   1    queued  -          4     1m30s  never    hex:00ff1080
3    9    alerts/fire   2    queued  -          5     1m30s  never    smoke
4    13   alerts/smoke  2    queued  -          3     1m30s  never    hot
4 messages
`

var goldenRetained = `
TOPIC         QOS  SIZE  AGE    EXPIRES   FROM  PAYLOAD
status/lease  1    4     1m30s  in 8m30s  pub   held
status/pub    1    6     1m30s  never     pub   online
2 retained messages
`

var goldenEventsA = `
SEQ      TIME                     KIND             CLIENT           DETAIL
1        2025-01-02T03:04:05.000Z session-opened   sub-a            connected=yes expiry=never
2        2025-01-02T03:04:05.000Z subscribed       sub-a            filter=sensors/# qos=1
3        2025-01-02T03:04:05.000Z subscribed       sub-a            filter=alerts/+ qos=2
4        2025-01-02T03:04:05.000Z session-closed   sub-a            connected=no expiry=never
7        2025-01-02T03:04:05.000Z published        pub              topic=sensors/temp qos=1 size=4 to=sub-a#1,sub-b#1
8        2025-01-02T03:04:05.000Z published        pub              topic=sensors/bin qos=1 size=4 to=sub-a#2
9        2025-01-02T03:04:05.000Z published        pub              topic=alerts/fire qos=2 size=5 to=sub-a#3
13       2025-01-02T03:04:05.000Z published        pub-q2           topic=alerts/smoke qos=2 size=3 to=sub-a#4 inbound-pid=42
8 events
`

func golden(s string) string { return strings.TrimPrefix(s, "\n") }

func sameText(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n--- got\n%s--- want\n%s", what, got, want)
	}
}

// Every inspect command on a running broker (--admin) and on a stopped
// store (--data) prints the known contents, identically: tables and JSON.
func TestInspectLiveAndOffline(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	lb := startLive(t, dir, func() time.Time { return t0 })
	knownStore(t, lb)
	pinClock(t, t0.Add(90*time.Second))

	live := func(args ...string) string { return mustCLI(t, append(args, "--admin", lb.admin)...) }
	sameText(t, "sessions (live)", live("inspect", "sessions"), golden(goldenSessionsLive))
	sameText(t, "session sub-a (live)", live("inspect", "session", "sub-a"), golden(goldenSessionA))
	sameText(t, "session sub-b (live)", live("inspect", "session", "sub-b"), golden(goldenSessionB))
	sameText(t, "session pub-q2 (live)", live("inspect", "session", "pub-q2"), golden(goldenSessionQ2))
	sameText(t, "queue sub-a (live)", live("inspect", "queue", "sub-a"), golden(goldenQueueA))
	// A full page says that more may follow, and from where.
	if out := live("inspect", "queue", "sub-a", "--limit", "2"); !strings.Contains(out, "2 messages shown (--limit 2); the queue may hold more: --from ") {
		t.Errorf("a full page of the queue does not say so:\n%s", out)
	}
	sameText(t, "retained (live)", live("inspect", "retained"), golden(goldenRetained))
	sameText(t, "events --client sub-a (live)", live("inspect", "events", "--client", "sub-a"), golden(goldenEventsA))

	// The same store, stopped: a checkpoint taken through the admin
	// endpoint, opened read-only. Only what a stopped store cannot know
	// differs: clean sessions (never stored) and whether a connection is up.
	cp := filepath.Join(t.TempDir(), "cp")
	mustCLI(t, "backup", cp, "--admin", lb.admin)
	off := func(args ...string) string { return mustCLI(t, append(args, "--data", cp)...) }
	sameText(t, "sessions (offline)", off("inspect", "sessions"), golden(goldenSessionsOffline))
	sameText(t, "session sub-a (offline)", off("inspect", "session", "sub-a"), golden(goldenSessionA))
	sameText(t, "session sub-b (offline)", off("inspect", "session", "sub-b"), golden(goldenSessionBOffline))
	// sub-b's message is in flight on its connection: live shows it sent
	// with its packet id, a stopped store shows it queued (it is resent).
	liveB, offB := live("inspect", "queue", "sub-b"), off("inspect", "queue", "sub-b")
	if !strings.Contains(squeeze(liveB), "1 7 sensors/temp 1 sent 1 4 1m30s never 21.5") ||
		!strings.Contains(squeeze(offB), "1 7 sensors/temp 1 queued - 4 1m30s never 21.5") {
		t.Errorf("queue sub-b live:\n%s\noffline:\n%s", liveB, offB)
	}
	for _, args := range [][]string{
		{"inspect", "queue", "sub-a"}, {"inspect", "queue", "sub-a", "--from", "2", "--limit", "1"},
		{"inspect", "retained"}, {"inspect", "retained", "status/+"}, {"inspect", "retained", "#"},
		{"inspect", "events"}, {"inspect", "events", "--type", "published,released", "--from", "8"},
		{"inspect", "events", "--client", "sub-b"},
	} {
		name := strings.Join(args, " ")
		sameText(t, name+" (offline vs live)", off(args...), live(args...))
		sameText(t, name+" --json (offline vs live)", off(append(args, "--json")...), live(append(args, "--json")...))
	}
	// JSON: one object per line, the same rows either way but for the clean
	// sessions (they exist only live) and what is
	// in flight (which only the running broker knows).
	persistent := func(out string) string {
		var keep []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("sessions --json line %q: %v", l, err)
			}
			if m["clean"] == false {
				keep = append(keep, strings.Replace(l, `"inflight":1,`, `"inflight":0,`, 1))
			}
		}
		return strings.Join(keep, "\n")
	}
	liveJSON := live("inspect", "sessions", "--json")
	sameText(t, "sessions --json, persistent rows (offline vs live)", persistent(off("inspect", "sessions", "--json")), persistent(liveJSON))
	for _, want := range []string{
		`{"client":"pub","clean":true,"version":5,"connected":true,"connected_at":"2025-01-02T03:04:05Z","expiry":0,"subscriptions":0,"queued":0,"queued_bytes":0,"inflight":0,"inbound_qos2":0,"will":false}`,
		`{"client":"sub-b","clean":false,"version":5,"connected":true,"connected_at":"2025-01-02T03:04:05Z","expiry":3600,"subscriptions":1,"queued":1,"queued_bytes":4,"inflight":1,"inbound_qos2":0,"will":true}`,
	} {
		if !strings.Contains(liveJSON, want+"\n") {
			t.Errorf("sessions --json lacks %s:\n%s", want, liveJSON)
		}
	}

	stats := live("inspect", "stats")
	for _, want := range []string{"sessions         s/      3 ", "subscriptions    u/      3 ", "queue-entries    q/      5 ",
		"message-bodies   m/      1 ", "refcounts        c/      1 ", "queue-expiry     y/      0 ", "inbound-qos2     i/      1 ", "retained         r/      2 ",
		"retained-expiry  x/      1 ", "events           e/      13 ", "event log:  seqs 1..13, last seq 13", "fsync:"} {
		if !strings.Contains(stats, want) {
			t.Errorf("stats lack %q:\n%s", want, stats)
		}
	}
	offStats := off("inspect", "stats")
	if !strings.Contains(offStats, "queue-entries    q/      5 ") || !strings.Contains(offStats, "fsync:       - (not running)") {
		t.Errorf("offline stats:\n%s", offStats)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(live("inspect", "stats", "--json")), &st); err != nil || st["last_seq"] != float64(13) {
		t.Errorf("stats --json: %v %v", st, err)
	}

	// The real data directory, after a graceful stop: sub-b is offline now,
	// its will still armed (the broker, not the client, ended it).
	lb.stop()
	got := mustCLI(t, "inspect", "sessions", "--data", dir)
	if !strings.Contains(got, "sub-b   no     5.0    offline 1m30s  1h00m   1     1       4 B    0         0        yes") {
		t.Errorf("sessions after stop:\n%s", got)
	}
}

// A store held by a running broker: inspect says so and names the admin
// endpoint to ask instead; and the errors a user can make get sentences.
func TestInspectLockedStoreAndErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	lb := startLive(t, dir, nil)
	knownStore(t, lb)
	_, err := runCLI(t, "inspect", "queue", "sub-a", "--data", dir)
	want := "the store in " + dir + " is in use by a running broker (Pebble allows one process per store, even for reading).\n" +
		"Ask the running broker instead: cairn inspect queue sub-a --admin " + lb.admin
	if err == nil || err.Error() != want {
		t.Fatalf("inspect of a locked store: %v\nwant: %s", err, want)
	}
	if _, err := runCLI(t, "recover", "--check", "--data", dir); err == nil || !strings.Contains(err.Error(), "cairn recover --check --admin "+lb.admin) {
		t.Fatalf("recover --check of a locked store: %v", err)
	}
	// The hint keeps the command's mode flags, so that it works as typed.
	if _, err := runCLI(t, "replay", "--verify", "--data", dir); err == nil || !strings.Contains(err.Error(), "cairn replay --verify --admin "+lb.admin) {
		t.Fatalf("replay --verify of a locked store: %v", err)
	}
	if _, err := runCLI(t, "recover", "--repair", "--data", dir); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("recover --repair of a locked store: %v", err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", "session", "nobody", "--admin", lb.admin}, `store: not found: no session "nobody"`},
		{[]string{"inspect", "retained", "a/#/b", "--admin", lb.admin}, `topic filter "a/#/b"`},
		{[]string{"inspect", "events", "--type", "bogus", "--admin", lb.admin}, `unknown event type "bogus"`},
		{[]string{"inspect", "queue", "--admin", lb.admin}, "want one client id"},
		{[]string{"inspect", "queue", "nobody", "--admin", lb.admin}, `no session "nobody"`},
		{[]string{"replay", "--into", filepath.Join(t.TempDir(), "r"), "--from", "10", "--to", "5", "--data", dir}, "--from 10 is after --to 5"},
		{[]string{"inspect", "sessions", "--admin", lb.admin, "--data", dir}, "exclude each other"},
		{[]string{"inspect", "sessions", "--data", filepath.Join(t.TempDir(), "none")}, "no store in"},
		{[]string{"inspect", "sessions", "--admin", "127.0.0.1:1"}, "is the broker running with --admin 127.0.0.1:1?"},
	} {
		if _, err := runCLI(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("cairn %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	// Offline, the same errors (the broker stopped).
	lb.stop()
	if _, err := runCLI(t, "inspect", "session", "nobody", "--data", dir); err == nil || !strings.Contains(err.Error(), `no session "nobody"`) {
		t.Errorf("offline session nobody: %v", err)
	}
	if _, err := runCLI(t, "inspect", "events", "--follow", "--data", dir); err == nil || !strings.Contains(err.Error(), "use --admin") {
		t.Errorf("offline events --follow: %v", err)
	}
}

// events --follow prints events as the running broker commits them, and
// ends cleanly when interrupted.
func TestInspectEventsFollow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	lb := startLive(t, dir, nil)
	out := &storetest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		app := newApp()
		app.Writer, app.ErrWriter = out, out
		done <- app.RunContext(ctx, []string{"cairn", "inspect", "events", "--follow", "--type", "published", "--admin", lb.admin})
	}()
	p := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "p", Version: wire.V311})
	for i, topic := range []string{"a/1", "a/2"} {
		p.publish(&wire.Publish{Topic: topic, QoS: 1, PacketID: uint16(i + 1), Retain: true, Payload: []byte("x")})
		if !waitFor(5*time.Second, func() bool { return strings.Contains(out.String(), "topic="+topic) }) {
			t.Fatalf("followed events lack %s:\n%s", topic, out.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("events --follow ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("events --follow did not end when interrupted")
	}
	if strings.Contains(out.String(), "session-opened") {
		t.Errorf("--type published printed other kinds:\n%s", out.String())
	}
}
