package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// waitUntil polls cond every 20 ms for at most d.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOffline waits until the store records the session as offline (the
// broker detaches a closed connection asynchronously).
func waitOffline(t *testing.T, tb *testBroker, id string) {
	t.Helper()
	if !waitUntil(5*time.Second, func() bool { rec := storedSession(t, tb, id); return rec != nil && !rec.Connected }) {
		t.Fatalf("session %s not recorded offline", id)
	}
}

// expired checks that a session is gone everywhere: record, queue, the
// subscription trie (a publish to its filter matches nobody), and that the
// store logged its expiry.
func checkExpired(t *testing.T, tb *testBroker, id, filter string) {
	t.Helper()
	if rec := storedSession(t, tb, id); rec != nil {
		t.Fatalf("session %s still stored: %+v", id, rec)
	}
	if n := tb.st.QueueInfo(id).Count; n != 0 {
		t.Fatalf("session %s still has %d queued messages", id, n)
	}
	if n := eventKinds(t, tb, id)[store.EvSessionExpired]; n != 1 {
		t.Fatalf("%d session-expired events for %s, want 1", n, id)
	}
	if filter != "" {
		p, _ := mustConnect5(t, tb.addr, session5("probe-"+id, true, 0))
		if a := p.publishQoS1(t, 1, filter, "probe", nil); a.ReasonCode != wire.NoMatchingSubscribers {
			t.Fatalf("publish to the expired session's filter: PUBACK 0x%02X, want 0x10 (subscription still routed)", byte(a.ReasonCode))
		}
	}
}

// A session expires while the broker runs: its record, subscriptions and
// queued messages go, durably (EvSessionExpired), and the client then finds
// no session.
func TestSessionExpiryWhileRunning(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	conn := session5("se-run", false, 1)
	r, _ := mustConnect5(t, tb.addr, conn)
	r.subscribe5(t, 1, nil, sub5("se/run", 1))
	r.Send(&wire.Disconnect{})
	r.expectClosed(t, 5*time.Second)
	start := time.Now()
	pub, _ := mustConnect5(t, tb.addr, session5("se-run-pub", true, 0))
	if a := pub.publishQoS1(t, 1, "se/run", "queued", nil); a.ReasonCode != wire.Success {
		t.Fatalf("PUBACK 0x%02X, want 0x00 while the session lives", byte(a.ReasonCode))
	}
	waitOffline(t, tb, "se-run")
	if rec := storedSession(t, tb, "se-run"); rec == nil || rec.ExpiresAt == 0 || rec.Connected {
		t.Fatalf("offline record %+v: want an absolute ExpiresAt", rec)
	}
	if !waitUntil(5*time.Second, func() bool { return storedSession(t, tb, "se-run") == nil }) {
		t.Fatal("session not expired 5 s after a 1 s expiry")
	}
	if el := time.Since(start); el < 800*time.Millisecond {
		t.Fatalf("expired after %v, before its 1 s interval", el)
	}
	checkExpired(t, tb, "se-run", "se/run")
	if tb.b.Stats().SessionsExpired.Load() != 1 {
		t.Fatalf("SessionsExpired = %d", tb.b.Stats().SessionsExpired.Load())
	}
	_, ack := mustConnect5(t, tb.addr, conn)
	if ack.SessionPresent {
		t.Fatal("session present after expiry")
	}
}

// Reconnecting before the expiry keeps the session; the deadline that
// passes while it is connected does nothing, and the next disconnect starts
// a new interval.
func TestSessionExpiryReconnectInTime(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	conn := session5("se-back", false, 1)
	r, _ := mustConnect5(t, tb.addr, conn)
	r.subscribe5(t, 1, nil, sub5("se/back", 1))
	r.Send(&wire.Disconnect{})
	r.expectClosed(t, 5*time.Second)
	time.Sleep(400 * time.Millisecond)
	r, ack := mustConnect5(t, tb.addr, conn)
	if !ack.SessionPresent {
		t.Fatal("session lost before its expiry")
	}
	time.Sleep(900 * time.Millisecond) // the first deadline passes while connected
	if storedSession(t, tb, "se-back") == nil {
		t.Fatal("connected session expired")
	}
	r.Send(&wire.Disconnect{})
	r.expectClosed(t, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if storedSession(t, tb, "se-back") == nil {
		t.Fatal("session expired before its new interval")
	}
	if !waitUntil(5*time.Second, func() bool { return storedSession(t, tb, "se-back") == nil }) {
		t.Fatal("session not expired after its new interval")
	}
	checkExpired(t, tb, "se-back", "se/back")
}

// DISCONNECT may change the session expiry: to 0 it ends the session at
// once; to more it outlives the CONNECT's interval.
func TestSessionExpiryChangedByDisconnect(t *testing.T) {
	t.Parallel()
	clk := &testClock{}
	tb := startBroker(t, engine.Options{Now: clk.now})
	r, _ := mustConnect5(t, tb.addr, session5("sd-zero", false, 3600))
	r.Send(&wire.Disconnect{Props: &wire.Properties{SessionExpiry: ptrU32(0)}})
	r.expectClosed(t, 5*time.Second)
	if !waitUntil(2*time.Second, func() bool { return storedSession(t, tb, "sd-zero") == nil }) {
		t.Fatal("DISCONNECT with expiry 0: session kept")
	}
	r, _ = mustConnect5(t, tb.addr, session5("sd-more", false, 1))
	r.Send(&wire.Disconnect{Props: &wire.Properties{SessionExpiry: ptrU32(3600)}})
	r.expectClosed(t, 5*time.Second)
	waitStoredOffline(t, tb, "sd-more")
	clk.advance(10 * time.Second)
	if n, err := tb.b.ExpireSessions(clk.now()); err != nil || n != 0 {
		t.Fatalf("ExpireSessions = %d, %v: the longer interval was not applied", n, err)
	}
	if rec := storedSession(t, tb, "sd-more"); rec == nil || rec.ExpiryInterval != 3600 {
		t.Fatalf("record %+v, want expiry 3600", rec)
	}
	_, ack := mustConnect5(t, tb.addr, session5("sd-more", false, 1))
	if !ack.SessionPresent {
		t.Fatal("session not present")
	}
}

// Deadlines are absolute: a session whose expiry passed while the broker was
// down (a crash) is gone when the broker is back, before any client can
// connect; one whose expiry is still ahead is restored and expires on time;
// a session the crash cut starts its interval at the restart; a 3.1.1
// persistent session and a 5.0 session with interval 0xFFFFFFFF never
// expire.
func TestSessionExpiryAcrossCrash(t *testing.T) {
	t.Parallel()
	clk := &testClock{}
	tb := startBroker(t, engine.Options{Now: clk.now})
	offline := map[string]uint32{"sx-down": 10, "sx-up": 100, "sx-never": 0xFFFFFFFF}
	for id, e := range offline {
		r, _ := mustConnect5(t, tb.addr, session5(id, false, e))
		r.subscribe5(t, 1, nil, sub5("sx/"+id, 1))
		r.Send(&wire.Disconnect{})
		r.expectClosed(t, 5*time.Second)
	}
	old := dialRaw(t, tb.addr)
	old.connect(t, "sx-311", false, 60, nil)
	old.Close()
	cut, _ := mustConnect5(t, tb.addr, session5("sx-cut", false, 5)) // connected when the broker dies
	cut.subscribe5(t, 1, nil, sub5("sx/sx-cut", 1))
	time.Sleep(100 * time.Millisecond)

	tb.crashFor(clk, 20*time.Second)
	if storedSession(t, tb, "sx-down") != nil {
		t.Fatal("a session whose expiry passed while the broker was down was restored")
	}
	checkExpired(t, tb, "sx-down", "sx/sx-down")
	for _, id := range []string{"sx-up", "sx-never", "sx-311", "sx-cut"} {
		if storedSession(t, tb, id) == nil {
			t.Fatalf("session %s lost in the restart", id)
		}
	}
	if rec := storedSession(t, tb, "sx-cut"); rec.Connected || rec.ExpiresAt == 0 {
		t.Fatalf("session cut by the crash: record %+v, want offline with an expiry", rec)
	}
	clk.advance(6 * time.Second) // past the cut session's restart + 5 s
	if n, err := tb.b.ExpireSessions(clk.now()); err != nil || n != 1 {
		t.Fatalf("ExpireSessions = %d, %v, want the cut session", n, err)
	}
	checkExpired(t, tb, "sx-cut", "sx/sx-cut")
	clk.advance(100 * time.Second)
	if n, err := tb.b.ExpireSessions(clk.now()); err != nil || n != 1 {
		t.Fatalf("ExpireSessions = %d, %v, want sx-up", n, err)
	}
	checkExpired(t, tb, "sx-up", "sx/sx-up")
	for _, id := range []string{"sx-never", "sx-311"} {
		if storedSession(t, tb, id) == nil {
			t.Fatalf("session %s (never expires) expired", id)
		}
	}
}

// After a restart the timer is armed from the stored deadline: a session
// expires while the broker runs again, without anybody calling
// ExpireSessions.
func TestSessionExpiryTimerAfterRestart(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	r, _ := mustConnect5(t, tb.addr, session5("se-restart", false, 1))
	r.Send(&wire.Disconnect{})
	r.expectClosed(t, 5*time.Second)
	tb.restart()
	if storedSession(t, tb, "se-restart") == nil {
		t.Fatal("session gone at restart, before its expiry")
	}
	if !waitUntil(5*time.Second, func() bool { return storedSession(t, tb, "se-restart") == nil }) {
		t.Fatal("session not expired by the timer after the restart")
	}
	checkExpired(t, tb, "se-restart", "")
}

// ExpireSessions (for the compaction task) settles many sessions in few
// commits and removes all their subscriptions.
func TestExpireSessionsMany(t *testing.T) {
	t.Parallel()
	clk := &testClock{}
	tb := startBroker(t, engine.Options{Now: clk.now})
	const n = 300 // more than one settle batch
	for i := range n {
		r, _ := mustConnect5(t, tb.addr, session5(fmt.Sprintf("many-%03d", i), false, 60))
		r.subscribe5(t, 1, nil, sub5("many/t", 1))
		r.Send(&wire.Disconnect{})
		r.expectClosed(t, 5*time.Second)
	}
	for i := range n {
		waitOffline(t, tb, fmt.Sprintf("many-%03d", i))
	}
	clk.advance(61 * time.Second)
	before := tb.st.CommitStats().Commits
	got, err := tb.b.ExpireSessions(clk.now())
	if err != nil || got != n {
		t.Fatalf("ExpireSessions = %d, %v, want %d", got, err, n)
	}
	if c := tb.st.CommitStats().Commits - before; c > 4 {
		t.Fatalf("%d commits for %d expiries: not batched", c, n)
	}
	if got, _ := tb.b.ExpireSessions(clk.now()); got != 0 {
		t.Fatalf("second sweep expired %d", got)
	}
	checkExpired(t, tb, "many-042", "many/t")
}

// watcher is a persistent 5.0 subscriber to a will topic filter.
func watcher(t *testing.T, tb *testBroker, id, filter string) *rawConn {
	t.Helper()
	w, _ := mustConnect5(t, tb.addr, session5(id, false, 3600))
	w.subscribe5(t, 1, nil, sub5(filter, 1))
	return w
}

func willConnect(id string, expiry, delay uint32, topic string) *wire.Connect {
	c := session5(id, false, expiry)
	c.Will = &wire.Will{Topic: topic, QoS: 1, Payload: []byte(id + " gone")}
	if delay > 0 {
		c.Will.Props = &wire.Properties{WillDelay: ptrU32(delay)}
	}
	return c
}

// The will delay interval: the will comes when it has passed, not before,
// with its properties; a reconnect before then cancels it.
func TestWillDelay(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	w := watcher(t, tb, "wd-watch", "wd/#")
	c := willConnect("wd-late", 60, 1, "wd/late")
	c.Will.Props.ContentType = new("text/plain")
	c.Will.Props.PayloadFormat = ptrByte(1)
	c.Will.Props.ResponseTopic = "wd/ack"
	c.Will.Props.CorrelationData = []byte("cd")
	c.Will.Props.MessageExpiry = ptrU32(30)
	c.Will.Props.User = []wire.UserProperty{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}}
	r, _ := mustConnect5(t, tb.addr, c)
	start := time.Now()
	r.Close() // no DISCONNECT
	w.expectSilence(t, 700*time.Millisecond)
	if rec := storedSession(t, tb, "wd-late"); rec == nil || rec.WillAt == 0 || rec.Will == nil {
		t.Fatalf("pending will not stored with its absolute time: %+v", rec)
	}
	p := w.expectPublish(t, 5*time.Second)
	if el := time.Since(start); el < time.Second {
		t.Fatalf("will after %v, before its 1 s delay", el)
	}
	if p.Topic != "wd/late" || p.Props == nil || deref(p.Props.ContentType) != "text/plain" || deref(p.Props.PayloadFormat) != byte(1) ||
		p.Props.ResponseTopic != "wd/ack" || string(p.Props.CorrelationData) != "cd" || deref(p.Props.MessageExpiry) == nil ||
		*p.Props.MessageExpiry > 30 || fmt.Sprint(p.Props.User) != "[{k v1} {k v2}]" {
		t.Fatalf("will %s with properties %+v", p.Topic, p.Props)
	}
	w.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
	if rec := storedSession(t, tb, "wd-late"); rec == nil || rec.Will != nil || rec.WillAt != 0 {
		t.Fatalf("after the will: record %+v, want the session without its will", rec)
	}
	if n := eventKinds(t, tb, "wd-late")[store.EvWillFired]; n != 1 {
		t.Fatalf("%d will-fired events", n)
	}

	// Reconnecting within the delay cancels the will.
	c = willConnect("wd-back", 60, 1, "wd/back")
	r, _ = mustConnect5(t, tb.addr, c)
	r.Close()
	time.Sleep(200 * time.Millisecond)
	_, ack := mustConnect5(t, tb.addr, session5("wd-back", false, 60))
	if !ack.SessionPresent {
		t.Fatal("session not present")
	}
	w.expectSilence(t, 1500*time.Millisecond)
	if rec := storedSession(t, tb, "wd-back"); rec == nil || rec.WillAt != 0 || rec.Will != nil {
		t.Fatalf("record after reconnecting %+v: want no pending will", rec)
	}
}

// The will is published at session end if that comes before the delay:
// session expiry shorter than the delay, or no session expiry at all.
func TestWillAtSessionEnd(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	w := watcher(t, tb, "we-watch", "we/#")
	r, _ := mustConnect5(t, tb.addr, willConnect("we-expiry", 1, 60, "we/expiry"))
	start := time.Now()
	r.Close()
	p := w.expectPublish(t, 5*time.Second)
	if el := time.Since(start); p.Topic != "we/expiry" || el < 800*time.Millisecond {
		t.Fatalf("will %s after %v, want we/expiry at the 1 s session end", p.Topic, el)
	}
	w.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
	checkExpired(t, tb, "we-expiry", "")

	r, _ = mustConnect5(t, tb.addr, willConnect("we-clean", 0, 60, "we/clean"))
	start = time.Now()
	r.Close()
	p = w.expectPublish(t, 5*time.Second)
	if el := time.Since(start); p.Topic != "we/clean" || el > 500*time.Millisecond {
		t.Fatalf("will %s after %v, want we/clean at once (the session ends with the connection)", p.Topic, el)
	}
}

// DISCONNECT reason codes: 0x00 discards the will, 0x04 and error codes
// publish it (after its delay).
func TestWillOnDisconnectReason(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	w := watcher(t, tb, "wr-watch", "wr/#")
	for _, tc := range []struct {
		code  wire.ReasonCode
		delay uint32
		want  bool
	}{
		{wire.Success, 0, false},
		{wire.DisconnectWithWill, 0, true},
		{wire.UnspecifiedError, 0, true},
		{wire.DisconnectWithWill, 1, true},
	} {
		id := fmt.Sprintf("wr-%02x-%d", byte(tc.code), tc.delay)
		r, _ := mustConnect5(t, tb.addr, willConnect(id, 60, tc.delay, "wr/"+id))
		start := time.Now()
		r.Send(&wire.Disconnect{ReasonCode: tc.code})
		r.expectClosed(t, 5*time.Second)
		if !tc.want {
			w.expectSilence(t, 300*time.Millisecond)
			continue
		}
		p := w.expectPublish(t, 5*time.Second)
		w.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
		if el := time.Since(start); p.Topic != "wr/"+id || el < time.Duration(tc.delay)*time.Second-100*time.Millisecond {
			t.Fatalf("DISCONNECT 0x%02X: will %s after %v", byte(tc.code), p.Topic, el)
		}
	}
}

// A take-over resuming the session (Clean Start 0) cancels a delayed will;
// one with Clean Start 1 ends the old session, so its will goes at once.
func TestWillDelayOnTakeover(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	w := watcher(t, tb, "wt-watch", "wt/#")
	old, _ := mustConnect5(t, tb.addr, willConnect("wt-resume", 60, 1, "wt/resume"))
	mustConnect5(t, tb.addr, session5("wt-resume", false, 60))
	old.expectDisconnect(t, wire.SessionTakenOver)
	w.expectSilence(t, 1500*time.Millisecond)

	old, _ = mustConnect5(t, tb.addr, willConnect("wt-clean", 60, 30, "wt/clean"))
	start := time.Now()
	mustConnect5(t, tb.addr, session5("wt-clean", true, 60))
	old.expectDisconnect(t, wire.SessionTakenOver)
	p := w.expectPublish(t, 5*time.Second)
	if el := time.Since(start); p.Topic != "wt/clean" || el > time.Second {
		t.Fatalf("will %s after %v, want wt/clean at once", p.Topic, el)
	}
}

// Will delays are absolute deadlines in the store: one that passed while
// the broker was down is published at restart; one still ahead is published
// when it comes; a connection the crash cut starts its delay at the
// restart (so the client can still reconnect and cancel it).
func TestWillDelayAcrossCrash(t *testing.T) {
	t.Parallel()
	clk := &testClock{}
	tb := startBroker(t, engine.Options{Now: clk.now})
	w := watcher(t, tb, "wc-watch", "wc/#")
	w.Close()
	for id, delay := range map[string]uint32{"wc-passed": 5, "wc-ahead": 60} {
		r, _ := mustConnect5(t, tb.addr, willConnect(id, 3600, delay, "wc/"+id))
		r.Close()
	}
	cut, _ := mustConnect5(t, tb.addr, willConnect("wc-cut", 3600, 1, "wc/wc-cut"))
	defer cut.Close()
	time.Sleep(200 * time.Millisecond)
	if rec := storedSession(t, tb, "wc-ahead"); rec == nil || rec.WillAt == 0 {
		t.Fatalf("pending will not stored: %+v", rec)
	}

	tb.crashFor(clk, 30*time.Second)
	w, _ = mustConnect5(t, tb.addr, session5("wc-watch", false, 3600))
	got := func(d time.Duration) []string {
		var topics []string
		for {
			p, err := w.Recv(d)
			if err != nil {
				return topics
			}
			if pub, ok := p.(*wire.Publish); ok {
				w.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: pub.PacketID})
				topics = append(topics, pub.Topic)
			}
		}
	}
	if g := got(300 * time.Millisecond); fmt.Sprint(g) != "[wc/wc-passed]" {
		t.Fatalf("wills at restart: %v, want only the one whose delay passed while down", g)
	}
	// The cut connection's delay (1 s) runs from the restart, on the timer.
	if g := got(3 * time.Second); fmt.Sprint(g) != "[wc/wc-cut]" {
		t.Fatalf("after the restart: %v, want wc/wc-cut", g)
	}
	clk.advance(40 * time.Second)
	if _, err := tb.b.ExpireSessions(clk.now()); err != nil {
		t.Fatal(err)
	}
	if g := got(300 * time.Millisecond); fmt.Sprint(g) != "[wc/wc-ahead]" {
		t.Fatalf("after its deadline: %v, want wc/wc-ahead", g)
	}
}
