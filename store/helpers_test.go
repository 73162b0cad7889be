package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// quietLogger discards logs unless STORE_TEST_LOG is set.
var quietLogger = func() *slog.Logger {
	if os.Getenv("STORE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}()

// testOptions are small and quiet: a 256 KiB memtable makes flushes and WAL
// rotations happen within a test's few thousand events.
func testOptions(fs vfs.FS) Options {
	return Options{FS: fs, MemTableSize: 256 << 10, Logger: quietLogger}
}

func openTest(t testing.TB, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open("db", testOptions(fs))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// commitWait commits evs and waits for the completion callback.
func commitWait(t testing.TB, s *Store, durable bool, evs ...*Event) {
	t.Helper()
	if err := commitWaitErr(s, durable, evs...); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func commitWaitErr(s *Store, durable bool, evs ...*Event) error {
	ch := make(chan error, 1)
	if err := s.Commit(evs, durable, func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

type kv struct{ k, v []byte }

// dump returns every key/value pair of the store in key order.
func dump(t testing.TB, s *Store) []kv {
	t.Helper()
	var out []kv
	if err := s.scan("dump", nil, nil, func(k, v []byte) error {
		out = append(out, kv{bytes.Clone(k), bytes.Clone(v)})
		return nil
	}); err != nil {
		t.Fatalf("dump: %v", err)
	}
	return out
}

// sameState fails unless a and b hold identical keys and values and the
// same in-memory queue summaries.
func sameState(t testing.TB, what string, a, b *Store) {
	t.Helper()
	da, db := dump(t, a), dump(t, b)
	i, j, diffs := 0, 0, 0
	report := func(format string, args ...any) {
		if diffs < 10 {
			t.Errorf("%s: "+format, append([]any{what}, args...)...)
		}
		diffs++
	}
	for i < len(da) || j < len(db) {
		switch {
		case j >= len(db) || (i < len(da) && bytes.Compare(da[i].k, db[j].k) < 0):
			report("only in first: %s", renderKey(da[i].k, da[i].v))
			i++
		case i >= len(da) || bytes.Compare(da[i].k, db[j].k) > 0:
			report("only in second: %s", renderKey(db[j].k, db[j].v))
			j++
		default:
			if !bytes.Equal(da[i].v, db[j].v) {
				report("value differs at %s: %x vs %x", renderKey(da[i].k, nil), da[i].v, db[j].v)
			}
			i++
			j++
		}
	}
	if diffs > 0 {
		t.Fatalf("%s: %d differences", what, diffs)
	}
	qa, qb := a.copyQueues(), b.copyQueues()
	if fmt.Sprint(sortedQueues(qa)) != fmt.Sprint(sortedQueues(qb)) {
		t.Fatalf("%s: queue infos differ:\n%v\n%v", what, sortedQueues(qa), sortedQueues(qb))
	}
}

func sortedQueues(m map[string]QueueInfo) []string {
	var out []string
	for c, qi := range m {
		out = append(out, fmt.Sprintf("%s=%+v", c, qi))
	}
	sort.Strings(out)
	return out
}

// projection renders the projections (everything but the log and meta) as
// readable strings, for table tests.
func projection(t testing.TB, s *Store) []string {
	t.Helper()
	var out []string
	for _, e := range dump(t, s) {
		if e.k[0] == famEvent || bytes.HasPrefix(e.k, []byte("meta/")) {
			continue
		}
		out = append(out, renderKey(e.k, e.v))
	}
	return out
}

// renderKey formats a key (and, for small records, its value) readably:
// s/c1, u/c1/a/b, m/5, c/5=3, q/c1/1 (q/c1/1+body: inline message), n/c1=h1,n2,c1,b5, i/c1/7, r/t, x/100/t,
// y/100/c1/1.
func renderKey(k, v []byte) string {
	if len(k) < 2 || k[1] != '/' {
		return string(k)
	}
	switch k[0] {
	case famSession, famQInfo, famSub, famQueue, famInbound:
		client, rest, err := splitClient(k)
		if err != nil {
			return fmt.Sprintf("%q", k)
		}
		s := fmt.Sprintf("%c/%s", k[0], client)
		switch k[0] {
		case famSub:
			s += "/" + string(rest)
		case famQueue:
			s += fmt.Sprintf("/%d", binary.BigEndian.Uint64(rest))
			var e QueueEntry
			if decode(k, v, &e) == nil && e.Body != nil {
				s += "+body" // the message inline: its only reference
			}
		case famInbound:
			s += fmt.Sprintf("/%d", binary.BigEndian.Uint16(rest))
		case famQInfo:
			if qi, err := decodeQueueInfo(v); err == nil {
				s += fmt.Sprintf("=h%d,n%d,c%d,b%d", qi.Head, qi.Next, qi.Count, qi.Bytes)
			}
		}
		return s
	case famMsg, famEvent:
		id, _, _ := splitU64(k)
		return fmt.Sprintf("%c/%d", k[0], id)
	case famRef:
		id, _, _ := splitU64(k)
		n, _ := decodeUvarint(v)
		return fmt.Sprintf("c/%d=%d", id, n)
	case famRetained:
		return "r/" + string(k[2:])
	case famExpiry:
		at, topic, _ := splitU64(k)
		return fmt.Sprintf("x/%d/%s", at, topic)
	case famQExpiry:
		at, client, seq, err := splitQueueExpiry(k)
		if err != nil {
			return fmt.Sprintf("%q", k)
		}
		return fmt.Sprintf("y/%d/%s/%d", at, client, seq)
	}
	return fmt.Sprintf("%q", k)
}

// setVersion overwrites meta/version of the (closed) store in dir.
func setVersion(t *testing.T, fs vfs.FS, v uint64) {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: pebbleLogger{quietLogger}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(keyVersion, binary.BigEndian.AppendUint64(nil, v), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
