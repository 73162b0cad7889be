package bench

import "testing"

// eachMissing visits, in order, what want has and s lacks.
func TestEachMissing(t *testing.T) {
	var want, got seqSet
	for _, q := range []uint64{0, 1, 5, 63, 64, 65, 200} {
		want.add(q)
	}
	for _, q := range []uint64{1, 64, 300} {
		got.add(q)
	}
	var seen []uint64
	got.eachMissing(&want, func(q uint64) { seen = append(seen, q) })
	if w := []uint64{0, 5, 63, 65, 200}; len(seen) != len(w) || seen[0] != 0 || seen[1] != 5 || seen[2] != 63 || seen[3] != 65 || seen[4] != 200 {
		t.Fatalf("eachMissing = %v, want %v", seen, w)
	}
	if int64(len(seen)) != got.missing(&want) {
		t.Fatalf("eachMissing saw %d, missing counts %d", len(seen), got.missing(&want))
	}
}

// A restart loss names the sessions it hit: publisher i's message seq went
// to session i + (seq mod its topics) × publishers.
func TestLostBySession(t *testing.T) {
	pubs := []*publisher{{topics: []string{"t0", "t2"}}, {topics: []string{"t1", "t3"}}}
	tal := &tally{got: make([]seqSet, 2)}
	for q := range uint64(6) {
		pubs[0].ackedSet.add(q)
		pubs[1].ackedSet.add(q)
		if q%2 == 0 {
			tal.got[0].add(q) // publisher 0: session 0 (even seqs) got all, session 2 (odd) none
		}
	}
	tal.got[1].add(0) // publisher 1: session 1 (even) got only seq 0, session 3 (odd) none
	got := lostBySession(pubs, tal, 2, &env{scenario: "restart"})
	if want := "bench-restart-s2: 3, bench-restart-s3: 3, bench-restart-s1: 2"; got != want {
		t.Fatalf("lostBySession = %q, want %q", got, want)
	}
}
