package store

import (
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// damageFixture is a closed store built by a known sequence of commits,
// with its projections as they were before any damage.
type damageFixture struct {
	fs       vfs.FS
	before   []string
	beforeKV []kv // projection keys and values
}

// projectionKV is every projection key with its value (no log, no meta).
func projectionKV(t *testing.T, s *Store) []kv {
	var out []kv
	for _, e := range dump(t, s) {
		if e.k[0] != famEvent && !strings.HasPrefix(string(e.k), "meta/") {
			out = append(out, e)
		}
	}
	return out
}

func newDamageFixture(t *testing.T, truncate bool) *damageFixture {
	t.Helper()
	fs := vfs.NewMem()
	s := openTest(t, fs)
	commitWait(t, s, true,
		evOpen("c1"), evSub("c1", "t/#", 1), evOpen("c2"), evSub("c2", "t/#", 2),
		evPub("t/1", "one", "c1", "c2"), evPub("t/2", "two", "c1"), expiring(evPub("t/3", "three", "c2"), 9000),
		evRetain("r/a", "ra", 5000), evRetain("r/b", "rb", 0),
		evDelivered("c1", 1, 7),
	)
	if truncate {
		if err := s.TruncateLog(s.LastSeq() + 1); err != nil {
			t.Fatal(err)
		}
	}
	f := &damageFixture{fs: fs, before: projection(t, s), beforeKV: projectionKV(t, s)}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

// raw runs fn on the closed store's Pebble DB and closes it.
func (f *damageFixture) raw(t *testing.T, fn func(db *pebble.DB)) {
	t.Helper()
	db, err := openRaw("db", testOptions(f.fs), false)
	if err != nil {
		t.Fatal(err)
	}
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func (f *damageFixture) check(t *testing.T) *CheckReport {
	t.Helper()
	rep, err := CheckDir("db", testOptions(f.fs))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func (f *damageFixture) after(t *testing.T) ([]string, []kv) {
	t.Helper()
	s := openTest(t, f.fs)
	defer s.Close()
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	return projection(t, s), projectionKV(t, s)
}

func hasProblem(rep *CheckReport, kind ProblemKind, key string) bool {
	for _, p := range rep.Problems {
		if p.Kind == kind && (key == "" || p.Key == key) {
			return true
		}
	}
	return false
}

func TestCheckAndRepair(t *testing.T) {
	garbage := []byte{0xc1, 0xc1, 0xc1} // 0xc1 is never valid msgpack
	cases := []struct {
		name     string
		truncate bool // log truncated: repairs cannot use it
		damage   func(*pebble.DB)
		problems []string // kind key
		// restored: the projections equal the undamaged ones afterwards;
		// otherwise want lists the projection keys that change.
		restored bool
		// defaults: restored keys, but some values recreated with defaults
		defaults bool
		lost     []string // projection entries gone after repair
		created  []string // projection entries added by repair
	}{
		// m/5 is shared by c1 and c2; the other messages are inline in
		// their only queue entry.
		{name: "body deleted, log intact", damage: func(db *pebble.DB) { _ = db.Delete(msgKey(nil, 5), pebble.Sync) },
			problems: []string{"missing-body m/5"}, restored: true},
		{name: "body deleted, log truncated", truncate: true, damage: func(db *pebble.DB) { _ = db.Delete(msgKey(nil, 5), pebble.Sync) },
			problems: []string{"missing-body m/5"}, lost: []string{"m/5", "c/5=2", "q/c1/1", "q/c2/1", "n/c1=h1,n3,c2,b6", "n/c2=h1,n3,c2,b8"},
			created: []string{"n/c1=h2,n3,c1,b3", "n/c2=h2,n3,c1,b5"}},
		{name: "inline entry corrupt", damage: func(db *pebble.DB) { _ = db.Set(queueKey(nil, "c1", 2), garbage, pebble.Sync) },
			problems: []string{"undecodable q/c1/2"}, restored: true},
		{name: "inline entry corrupt, log truncated", truncate: true, damage: func(db *pebble.DB) { _ = db.Set(queueKey(nil, "c1", 2), garbage, pebble.Sync) },
			problems: []string{"undecodable q/c1/2"}, lost: []string{"q/c1/2+body", "n/c1=h1,n3,c2,b6"}, created: []string{"n/c1=h1,n3,c1,b3"}},
		{name: "queue expiry index entry lost", damage: func(db *pebble.DB) { _ = db.Delete(queueExpiryKey(nil, 9000, "c2", 2), pebble.Sync) },
			problems: []string{"queue-expiry q/c2/2"}, restored: true},
		{name: "queue expiry index entry forged", damage: func(db *pebble.DB) { _ = db.Set(queueExpiryKey(nil, 7, "c1", 1), nil, pebble.Sync) },
			problems: []string{"queue-expiry y/7/c1/1"}, restored: true},
		{name: "session record corrupt", damage: func(db *pebble.DB) { _ = db.Set(sessionKey(nil, "c2"), garbage, pebble.Sync) },
			problems: []string{"undecodable s/c2"}, restored: true},
		{name: "session record corrupt, log truncated", truncate: true, damage: func(db *pebble.DB) { _ = db.Set(sessionKey(nil, "c2"), garbage, pebble.Sync) },
			problems: []string{"undecodable s/c2"}, restored: true, defaults: true},
		{name: "queue entry corrupt", damage: func(db *pebble.DB) { _ = db.Set(queueKey(nil, "c1", 1), garbage, pebble.Sync) },
			problems: []string{"undecodable q/c1/1"}, restored: true},
		{name: "queue entry corrupt, log truncated", truncate: true, damage: func(db *pebble.DB) { _ = db.Set(queueKey(nil, "c1", 1), garbage, pebble.Sync) },
			problems: []string{"undecodable q/c1/1"}, lost: []string{"q/c1/1", "c/5=2", "n/c1=h1,n3,c2,b6"}, created: []string{"n/c1=h2,n3,c1,b3"}},
		{name: "retained corrupt", damage: func(db *pebble.DB) { _ = db.Set(retainedKey(nil, "r/a"), garbage, pebble.Sync) },
			problems: []string{"undecodable r/r/a"}, restored: true},
		{name: "subscription corrupt", damage: func(db *pebble.DB) { _ = db.Set(subKey(nil, "c2", "t/#"), garbage, pebble.Sync) },
			problems: []string{"undecodable u/c2/t/#"}, restored: true},
		{name: "event corrupt", damage: func(db *pebble.DB) { _ = db.Set(eventKey(nil, 3), []byte{1, 0xc1}, pebble.Sync) },
			problems: []string{"undecodable e/3"}, restored: true},
		{name: "orphan body, refcount, summary, index", damage: func(db *pebble.DB) {
			_ = db.Set(msgKey(nil, 99), []byte{0x80}, pebble.Sync)
			_ = db.Set(refKey(nil, 5), []byte{9}, pebble.Sync)
			_ = db.Set(qinfoKey(nil, "c2"), appendQueueInfo(nil, QueueInfo{Head: 1, Next: 2, Count: 7, Bytes: 1}), pebble.Sync)
			_ = db.Delete(expiryKey(nil, 5000, "r/a"), pebble.Sync)
		}, problems: []string{"orphan-body m/99", "refcount c/5", "queue-info n/c2", "expiry-index r/r/a"}, restored: true},
		{name: "session record deleted", damage: func(db *pebble.DB) { _ = db.Delete(sessionKey(nil, "c1"), pebble.Sync) },
			problems: []string{"no-session s/c1"}, restored: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newDamageFixture(t, tc.truncate)
			f.raw(t, tc.damage)
			rep := f.check(t)
			for _, want := range tc.problems {
				kind, key, _ := strings.Cut(want, " ")
				if !hasProblem(rep, ProblemKind(kind), key) {
					t.Errorf("check does not report %s; it reports %+v", want, rep.Problems)
				}
			}
			rr, err := RepairDir("db", testOptions(f.fs))
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range rr.Actions {
				t.Logf("%s %s: %s", a.Action, a.Key, a.Detail)
			}
			if len(rr.Unrepaired) > 0 || rr.After.Errors() > 0 {
				t.Fatalf("unrepaired: %+v", rr.Unrepaired)
			}
			if rep := f.check(t); rep.Errors() > 0 {
				t.Fatalf("check after repair: %+v", rep.Problems)
			}
			got, gotKV := f.after(t)
			if tc.restored && !tc.defaults {
				if len(gotKV) != len(f.beforeKV) {
					t.Fatalf("%d projection keys after repair, %d before", len(gotKV), len(f.beforeKV))
				}
				for i := range gotKV {
					if string(gotKV[i].k) != string(f.beforeKV[i].k) || string(gotKV[i].v) != string(f.beforeKV[i].v) {
						t.Fatalf("after repair %s = %x, before %s = %x", KeyString(gotKV[i].k), gotKV[i].v, KeyString(f.beforeKV[i].k), f.beforeKV[i].v)
					}
				}
			}
			want := f.before
			if !tc.restored {
				want = slices.DeleteFunc(slices.Clone(want), func(s string) bool { return slices.Contains(tc.lost, s) })
				want = append(want, tc.created...)
				slices.Sort(want)
				slices.Sort(got)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("projections after repair:\n%v\nwant\n%v", got, want)
			}
		})
	}
}

func expiring(ev *Event, at int64) *Event {
	ev.Msg.ExpiresAt = at
	return ev
}
