package engine_test

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/store/storetest"
	"github.com/cairn-mqtt/cairn/wire"
)

// syncFailer fails every WAL fsync once armed, without syncing: the data
// of the failed syncs is lost by the next power cut.
type syncFailer struct{ armed atomic.Bool }

func (f *syncFailer) MaybeError(op errorfs.Op) error {
	if f.armed.Load() && strings.HasSuffix(op.Path, ".log") &&
		(op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
		return errors.New("injected fsync error (EIO)")
	}
	return nil
}

func (f *syncFailer) String() string { return "syncFailer" }

// When an fsync fails, the broker acknowledges nothing more: the publish
// waiting for it gets no PUBACK, every connection is ended (5.0 DISCONNECT
// 0x80), every listener closed, and Serve returns the store's error. A
// restart over what a power cut leaves brings back exactly what was
// acknowledged before the failure, and nothing of what was not.
func TestFsyncFailureStopsTheBroker(t *testing.T) {
	crash := storetest.NewCrashFS()
	var inj syncFailer
	opts := engine.Options{Logger: quietLogger()}
	fb := startFaultBroker(t, opts, store.Options{FS: errorfs.Wrap(crash, &inj)})

	sub := dialRaw(t, fb.addr)
	sub.connect(t, "sub", false, 60, nil)
	sub.subscribe(t, 1, "t/#", 1)
	sub.Send(&wire.Disconnect{})
	sub.expectClosed(t, 5*time.Second)
	idle, _ := mustConnect5(t, fb.addr, session5("idle", true, 0))
	pub, _ := mustConnect5(t, fb.addr, session5("pub", true, 3600))
	var acked []string
	for i := 1; i <= 5; i++ {
		m := fmt.Sprintf("m%d", i)
		expectCode(t, m, pub.publishQoS1(t, uint16(i), "t/x", m, nil).ReasonCode, wire.Success)
		acked = append(acked, m)
	}

	inj.armed.Store(true)
	pub.Send(&wire.Publish{QoS: 1, PacketID: 6, Topic: "t/x", Payload: []byte("m6")})
	for _, p := range pub.ExpectClosed(t, 10*time.Second) {
		if a, ok := p.(*wire.Ack); ok {
			t.Fatalf("%s %d after the failed fsync: an acknowledgement of what is not on disk", a.Kind, a.PacketID)
		}
		if d, ok := p.(*wire.Disconnect); ok && d.ReasonCode != wire.UnspecifiedError {
			t.Fatalf("publisher's DISCONNECT 0x%02X, want 0x80", byte(d.ReasonCode))
		}
	}
	idle.expectDisconnect(t, wire.UnspecifiedError)
	select {
	case <-fb.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running after the store failed")
	}
	if !errors.Is(fb.st.Err(), store.ErrFailed) {
		t.Fatalf("store error %v, want ErrFailed", fb.st.Err())
	}
	if nc, err := net.DialTimeout("tcp", fb.addr, time.Second); err == nil {
		nc.Close()
		t.Fatal("the listener still accepts after the store failed")
	}
	if n := fb.b.Stats().CommitFailures.Load(); n == 0 {
		t.Fatal("no commit failure counted")
	}

	cut := crash.Clone() // the power goes too: only what was synced remains
	fb.stop()
	if !errors.Is(fb.closeErr, store.ErrFailed) {
		t.Fatalf("closing the failed store: %v, want ErrFailed", fb.closeErr)
	}
	st, err := store.Open("/cairn", store.Options{FS: cut, Logger: opts.Logger})
	if err != nil {
		t.Fatalf("reopen after the failure: %v", err)
	}
	defer st.Close()
	if err := st.Verify(); err != nil {
		t.Fatal(err)
	}
	q, err := st.ReadQueue("sub", 0, math.MaxUint64, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range q {
		got = append(got, string(e.Msg.Payload))
	}
	if strings.Join(got, ",") != strings.Join(acked, ",") {
		t.Fatalf("recovered queue %v, want exactly the acknowledged %v", got, acked)
	}
}
