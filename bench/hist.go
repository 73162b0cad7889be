package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations (in nanoseconds) with a bounded relative
// error, HDR-style: values below 1024 ns are exact; above, each power of two
// is split into 512 linear buckets, so a recorded value is known to within
// 0.2%. Values up to 2^40 ns (about 18 minutes) are bucketed; larger ones
// land in the last bucket, and Max stays exact.
//
// A Histogram is not safe for concurrent use: give each goroutine its own and
// Merge them.
type Histogram struct {
	counts []uint64
	n      uint64
	min    int64
	max    int64
	sum    float64
}

const (
	histSubBits  = 10
	histSub      = 1 << histSubBits // exact values below this
	histHalf     = histSub / 2      // buckets per power of two above it
	histMaxShift = 40 - histSubBits
	histBuckets  = histSub + histMaxShift*histHalf
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, histBuckets), min: math.MaxInt64}
}

func histIndex(v int64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits
	if shift > histMaxShift {
		return histBuckets - 1
	}
	return histSub + (shift-1)*histHalf + int(uint64(v)>>shift) - histHalf
}

// histUpper returns the largest value that maps to bucket i.
func histUpper(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	j := i - histSub
	shift := j/histHalf + 1
	base := int64(j%histHalf + histHalf)
	return (base+1)<<shift - 1
}

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// RecordDuration adds d.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest value recorded (exact), 0 if none.
func (h *Histogram) Max() int64 {
	if h.n == 0 {
		return 0
	}
	return h.max
}

// Min is the smallest value recorded (exact), 0 if none.
func (h *Histogram) Min() int64 {
	if h.n == 0 {
		return 0
	}
	return h.min
}

// Mean is the exact mean of the values recorded, 0 if none.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value at quantile q (0..1): the upper bound of the
// bucket holding the ceil(q*n)-th smallest value, clamped to [Min, Max]. It
// is 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			if i == histBuckets-1 {
				return h.max // the overflow bucket
			}
			return min(max(histUpper(i), h.min), h.max)
		}
	}
	return h.max
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Latency is a histogram's summary in milliseconds, as results carry it.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	// Curve is the percentile distribution (the report's latency curves):
	// the value at each of CurveQuantiles that the count resolves (a
	// quantile finer than 1/Count is left out), and the maximum at Q = 1.
	Curve []CurvePoint `json:"curve,omitempty"`
}

// CurvePoint is one point of a percentile distribution.
type CurvePoint struct {
	Q  float64 `json:"q"`
	Ms float64 `json:"ms"`
}

// CurveQuantiles are the quantiles of Latency.Curve: dense where the tail
// is, as HDR percentile plots are.
var CurveQuantiles = []float64{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.9625, 0.975,
	0.98, 0.99, 0.9925, 0.995, 0.9975, 0.999, 0.99925, 0.9995, 0.99975, 0.9999, 0.99999, 1}

// Summary summarizes h in milliseconds.
func (h *Histogram) Summary() Latency {
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	l := Latency{
		Count: h.n,
		Mean:  h.Mean() / 1e6,
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
	if h.n > 0 {
		for _, q := range CurveQuantiles {
			if q > 0 && q < 1 && (1-q)*float64(h.n) < 1 {
				continue // beyond what n values resolve: the max says it
			}
			l.Curve = append(l.Curve, CurvePoint{Q: q, Ms: ms(h.Quantile(q))})
		}
	}
	return l
}
