package store

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// CompareProjections finds nothing between a store and its replay, and
// each kind of difference once a projection key is changed.
func TestCompareProjections(t *testing.T) {
	src := openTest(t, vfs.NewMem())
	defer src.Close()
	w := newWorkload(src, 7)
	for i := 0; i < 300; i++ {
		commitWait(t, src, false, w.commit(4)...)
	}
	commitWait(t, src, true, evOpen("z"), evPub("t/z", "zz", "z"))
	dst := openTest(t, vfs.NewMem())
	defer dst.Close()
	if err := src.Events(0, dst.ReplayEvent); err != nil {
		t.Fatal(err)
	}
	diffs := func() []Difference {
		var out []Difference
		if err := CompareProjections(src, dst, func(d Difference) error { out = append(out, d); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if d := diffs(); len(d) != 0 {
		t.Fatalf("replay differs: %+v", d)
	}
	if first, truncated, err := src.LogStart(); err != nil || first != 1 || truncated {
		t.Fatalf("LogStart = %d, %v, %v", first, truncated, err)
	}
	_ = src.db.Set(sessionKey(nil, "extra"), []byte{0x80}, pebble.Sync)
	_ = dst.db.Set(sessionKey(nil, "missing"), []byte{0x80}, pebble.Sync)
	_ = dst.db.Set(sessionKey(nil, "z"), []byte{0x80}, pebble.Sync)
	d := diffs()
	// Key order: the client id is length-prefixed.
	if len(d) != 3 || d[0].Key != "s/z" || d[0].What != "differs" || d[1].Key != "s/extra" || d[1].What != "extra" ||
		d[2].Key != "s/missing" || d[2].What != "missing" {
		t.Fatalf("differences %+v", d)
	}
	t.Logf("%+v", d)
	if err := src.TruncateLog(5); err != nil {
		t.Fatal(err)
	}
	if first, truncated, err := src.LogStart(); err != nil || first != 5 || !truncated {
		t.Fatalf("LogStart after truncation = %d, %v, %v", first, truncated, err)
	}
}
