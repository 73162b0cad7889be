package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramExactBelow1024(t *testing.T) {
	h := NewHistogram()
	for v := int64(0); v < 1024; v++ {
		h.Record(v)
	}
	if h.Count() != 1024 || h.Min() != 0 || h.Max() != 1023 {
		t.Fatalf("count %d min %d max %d", h.Count(), h.Min(), h.Max())
	}
	for _, q := range []float64{0.001, 0.25, 0.5, 0.9, 0.99, 1} {
		want := int64(math.Ceil(q*1024)) - 1
		if got := h.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %d, want %d", q, got, want)
		}
	}
	if got := h.Mean(); got != 511.5 {
		t.Errorf("Mean = %v, want 511.5", got)
	}
}

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	// Every bucket's upper bound maps to that bucket, and the next value to
	// the next one: the buckets tile the range with no gap or overlap.
	for i := 0; i < histBuckets-1; i++ {
		u := histUpper(i)
		if histIndex(u) != i {
			t.Fatalf("histIndex(histUpper(%d)=%d) = %d", i, u, histIndex(u))
		}
		if histIndex(u+1) != i+1 {
			t.Fatalf("histIndex(%d) = %d, want %d", u+1, histIndex(u+1), i+1)
		}
	}
}

func TestHistogramQuantilesWithinRelativeError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	var vals []int64
	for range 100_000 {
		// Log-uniform from 1 µs to 10 s.
		v := int64(math.Exp(r.Float64()*math.Log(1e10/1e3)) * 1e3)
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/500 {
			t.Errorf("Quantile(%v) = %d, exact %d: outside [exact, exact+0.2%%]", q, got, exact)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
}

func TestHistogramMergeAndEdges(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	if a.Quantile(0.5) != 0 || a.Max() != 0 || a.Mean() != 0 || a.Min() != 0 {
		t.Fatal("empty histogram is not all zero")
	}
	a.RecordDuration(time.Millisecond)
	b.RecordDuration(3 * time.Millisecond)
	b.Record(-5)               // counts as 0
	b.Record(int64(time.Hour)) // beyond the bucketed range
	a.Merge(b)
	a.Merge(nil)
	if a.Count() != 4 || a.Min() != 0 || a.Max() != int64(time.Hour) {
		t.Fatalf("after merge: count %d min %d max %d", a.Count(), a.Min(), a.Max())
	}
	if got := a.Quantile(1); got != int64(time.Hour) {
		t.Errorf("Quantile(1) = %d, want the exact max", got)
	}
	s := a.Summary()
	if s.Count != 4 || s.Max != float64(time.Hour)/1e6 || s.P50 < 0.999 || s.P50 > 1.002 {
		t.Errorf("summary %+v", s)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	for i := range b.N {
		h.Record(int64(i) * 7919)
	}
}

func TestSummaryCurve(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v <= 1000; v++ {
		h.Record(v * int64(time.Microsecond))
	}
	l := h.Summary()
	if len(l.Curve) == 0 || l.Curve[0].Q != 0 || l.Curve[len(l.Curve)-1].Q != 1 {
		t.Fatalf("curve ends: %+v", l.Curve)
	}
	for i, p := range l.Curve {
		if i > 0 && (p.Q <= l.Curve[i-1].Q || p.Ms < l.Curve[i-1].Ms) {
			t.Fatalf("curve not increasing at %d: %+v", i, l.Curve)
		}
		// 1000 values resolve quantiles down to 1-1/1000, not finer.
		if p.Q > 0.999 && p.Q < 1 {
			t.Fatalf("quantile %v beyond what 1000 values resolve", p.Q)
		}
	}
	if got := l.Curve[len(l.Curve)-1].Ms; got != 1 {
		t.Fatalf("curve max %v ms, want 1", got)
	}
	for _, p := range l.Curve {
		if p.Q == 0.5 && math.Abs(p.Ms-0.5) > 0.5*0.002 {
			t.Fatalf("p50 %v ms, want 0.5 within 0.2%%", p.Ms)
		}
	}
	if e := NewHistogram().Summary(); e.Curve != nil {
		t.Fatalf("empty histogram has a curve: %+v", e.Curve)
	}
}
