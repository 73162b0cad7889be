package bench

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// Latency percentile curves for the HTML report, HDR style: the x axis is
// the percentile on a "nines" scale (0%, 90%, 99%, 99.9%, ... equally
// spaced: x = -log10(1-q)), the y axis the latency on a log scale, one line
// per run, coloured by broker. A tail that is worse shows as a line that
// rises earlier; the maximum is the last point of each line, placed where
// one sample in Count sits.

// curveSeries is one run's curve.
type curveSeries struct {
	broker int // index into reportColors
	label  string
	count  uint64
	points []CurvePoint
}

const (
	curveW, curveH   = 720, 300
	curveL, curveR   = 64, 40 // plot margins
	curveT, curveB   = 12, 40
	curveMinMs       = 0.001 // 1 µs: the floor of the log axis
	curveMaxNines    = 5.0   // 99.999%
	curveDefaultTail = 4.0   // where the max goes when Count is unknown
)

// nines maps a quantile to the x scale.
func nines(q float64, count uint64) float64 {
	if q >= 1 {
		if count > 1 {
			return min(math.Log10(float64(count)), curveMaxNines)
		}
		return curveDefaultTail
	}
	return min(-math.Log10(1-q), curveMaxNines)
}

// svgCurves draws the series on one chart; "" if there is nothing to draw.
func svgCurves(series []curveSeries) string {
	lo, hi := math.Inf(1), 0.0
	xmax := 1.0
	for _, s := range series {
		for _, p := range s.points {
			v := max(p.Ms, curveMinMs)
			lo, hi = min(lo, v), max(hi, v)
			xmax = max(xmax, nines(p.Q, s.count))
		}
	}
	if hi == 0 {
		return ""
	}
	ylo := math.Floor(math.Log10(lo))
	yhi := math.Ceil(math.Log10(hi))
	if yhi <= ylo {
		yhi = ylo + 1
	}
	xmax = math.Ceil(xmax)
	pw, ph := float64(curveW-curveL-curveR), float64(curveH-curveT-curveB)
	px := func(x float64) float64 { return curveL + pw*x/xmax }
	py := func(ms float64) float64 {
		return curveT + ph*(1-(math.Log10(max(ms, curveMinMs))-ylo)/(yhi-ylo))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" font-family=\"system-ui,sans-serif\" font-size=\"12\">\n",
		curveW, curveH, curveW, curveH)
	// Grid: a vertical line per nine, a horizontal line per decade.
	for x := 0.0; x <= xmax; x++ {
		label := strconv.FormatFloat(100*(1-math.Pow(10, -x)), 'f', int(max(x-2, 0)), 64) + "%"
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e2e8f0\"/>\n", px(x), curveT, px(x), curveT+ph)
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", px(x), curveT+ph+16, label)
	}
	fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">percentile</text>\n", curveL+pw/2, curveH-4)
	for d := ylo; d <= yhi; d++ {
		v := math.Pow(10, d)
		y := py(v)
		fmt.Fprintf(&b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e2e8f0\"/>\n", curveL, y, curveL+pw, y)
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">%s ms</text>\n", curveL-6, y, strconv.FormatFloat(v, 'g', -1, 64))
	}
	for _, s := range series {
		if len(s.points) == 0 {
			continue
		}
		var pts []string
		for _, p := range s.points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(nines(p.Q, s.count)), py(p.Ms)))
		}
		color := reportColors[s.broker%len(reportColors)]
		fmt.Fprintf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-opacity=\"0.75\" points=\"%s\"><title>%s</title></polyline>\n",
			color, strings.Join(pts, " "), html.EscapeString(s.label))
		last := s.points[len(s.points)-1]
		fmt.Fprintf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%s max %s ms</title></circle>\n",
			px(nines(last.Q, s.count)), py(last.Ms), color, html.EscapeString(s.label), formatValue(last.Ms))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// latencyCurves returns the report's curve charts: end-to-end, PUBACK and
// CONNACK latency, each with one line per run and broker.
func latencyCurves(c *Comparison) string {
	kinds := []struct {
		title string
		get   func(*Result) *Latency
	}{
		{"End-to-end latency", func(r *Result) *Latency { return r.Latency }},
		{"PUBACK latency", func(r *Result) *Latency { return r.Puback }},
		{"CONNACK latency", func(r *Result) *Latency { return r.Connect }},
	}
	var b strings.Builder
	for _, k := range kinds {
		var series []curveSeries
		for i, run := range c.Runs {
			for bi, res := range []*Result{run.A, run.B} {
				if res == nil {
					continue
				}
				l := k.get(res)
				if l == nil || len(l.Curve) == 0 {
					continue
				}
				series = append(series, curveSeries{broker: bi, label: fmt.Sprintf("%s, run %d", res.Broker, i+1), count: l.Count, points: l.Curve})
			}
		}
		if svg := svgCurves(series); svg != "" {
			fmt.Fprintf(&b, "<h3>%s by percentile</h3>\n%s", k.title, svg)
		}
	}
	return b.String()
}
