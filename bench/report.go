package bench

import (
	"fmt"
	"html"
	"io"
	"strings"
	"time"
)

// The HTML report: one self-contained page (inline CSS and SVG, no script,
// no external asset) per comparison or run: bar charts of the throughput
// metrics, latency percentile curves of every run (curves.go) and bars of
// the latency percentiles (each metric's bars scaled to its own larger
// value), the headline metric run by run (on one scale), and a table of
// every metric with the ratios.

var reportColors = [2]string{"#2b6cb0", "#dd6b20"}

// barGroup is one labelled group of bars, one value per broker.
type barGroup struct {
	label  string
	unit   string
	values []float64
}

// WriteHTML writes the report of c.
func WriteHTML(w io.Writer, c *Comparison) error {
	var b strings.Builder
	title := "cairn bench: " + c.Scenario
	names := []string{c.A}
	if c.B != "" {
		names = append(names, c.B)
		title += " — " + c.A + " vs " + c.B
	}
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>\n", html.EscapeString(title))
	b.WriteString(`<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#1a202c}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.25em .7em;border-bottom:1px solid #e2e8f0;text-align:right}
td:first-child,th:first-child{text-align:left}.key{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:-.1em}
.note{color:#4a5568}.err{color:#c53030}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>%s</h1>\n", html.EscapeString(title))
	fmt.Fprintf(&b, "<p>%s</p>\n", html.EscapeString(describe(c.Scenario, c.Config)))
	if len(c.Runs) > 0 && c.Runs[0].A != nil {
		fmt.Fprintf(&b, "<p class=\"note\">%d run(s), started %s.", len(c.Runs), c.Runs[0].A.Started.Format(time.DateTime))
		if c.B != "" {
			b.WriteString(" Brokers alternate (A B, B A, …); values are medians over the runs, ratios are A/B.")
		}
		b.WriteString("</p>\n<p>")
		for i, n := range names {
			fmt.Fprintf(&b, "<span class=\"key\" style=\"background:%s\"></span>%s", reportColors[i], html.EscapeString(n))
		}
		b.WriteString("</p>\n")
	}

	var thr, lat []barGroup
	for _, m := range c.Metrics {
		g := barGroup{label: m.Label, unit: m.Unit, values: []float64{m.MedianA}}
		if c.B != "" {
			g.values = append(g.values, m.MedianB)
		}
		switch {
		case m.Better == "higher":
			thr = append(thr, g)
		case m.Unit == "ms":
			lat = append(lat, g)
		}
	}
	if len(thr) > 0 {
		b.WriteString("<h2>Throughput</h2>\n")
		b.WriteString(svgBars(thr, false))
	}
	curves := latencyCurves(c) // curves.go
	if len(lat) > 0 || curves != "" {
		b.WriteString("<h2>Latency</h2>\n")
		b.WriteString(curves)
		if len(lat) > 0 {
			b.WriteString("<h3>Latency percentiles, medians over the runs</h3>\n")
			b.WriteString(svgBars(lat, false))
		}
	}
	if len(c.Metrics) > 0 && len(c.Runs) > 1 {
		head := c.Metrics[0]
		var runs []barGroup
		for i := range head.A {
			g := barGroup{label: fmt.Sprintf("run %d", i+1), unit: head.Unit, values: []float64{head.A[i]}}
			if c.B != "" && i < len(head.B) {
				g.values = append(g.values, head.B[i])
			}
			runs = append(runs, g)
		}
		fmt.Fprintf(&b, "<h2>%s, run by run</h2>\n", html.EscapeString(head.Label))
		b.WriteString(svgBars(runs, true))
	}

	b.WriteString("<h2>All metrics</h2>\n<table><tr><th>metric</th><th>unit</th>")
	for _, n := range names {
		fmt.Fprintf(&b, "<th>%s</th>", html.EscapeString(n))
	}
	if c.B != "" {
		b.WriteString("<th>ratio per run</th><th>median ratio</th>")
	}
	b.WriteString("</tr>\n")
	for _, m := range c.Metrics {
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td>", html.EscapeString(m.Label), html.EscapeString(m.Unit), formatValue(m.MedianA))
		if c.B != "" {
			var rs []string
			for i := range m.Ratios {
				rs = append(rs, ratioText(m, i))
			}
			mb, mr := "-", "-"
			if len(m.B) > 0 {
				mb = formatValue(m.MedianB)
			}
			if m.MedianRatio != 0 {
				mr = fmt.Sprintf("%.2f", m.MedianRatio)
			}
			fmt.Fprintf(&b, "<td>%s</td><td>%s</td><td>%s</td>", mb, strings.Join(rs, " · "), mr)
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n")

	b.WriteString("<h2>Message accounting</h2>\n<table><tr><th>run</th><th>broker</th><th>sent</th><th>acked</th><th>received</th><th>lost</th><th>duplicates</th><th>errors</th></tr>\n")
	for i, r := range c.Runs {
		for _, res := range []*Result{r.A, r.B} {
			if res == nil {
				continue
			}
			k := res.Counts
			fmt.Fprintf(&b, "<tr><td>%d</td><td>%s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td></tr>\n",
				i+1, html.EscapeString(res.Broker), k.Sent, k.Acked, k.Received, k.Lost, k.Duplicates, k.Errors)
		}
	}
	b.WriteString("</table>\n")
	for _, r := range c.Runs {
		for _, res := range []*Result{r.A, r.B} {
			if res == nil {
				continue
			}
			for _, e := range res.ErrorSamples {
				fmt.Fprintf(&b, "<p class=\"err\">%s: %s</p>\n", html.EscapeString(res.Broker), html.EscapeString(e))
			}
		}
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// svgBars draws horizontal bar groups labelled with their values; each
// group's bars are scaled to the group's largest value, or, if shared, all
// to the largest value of all groups.
func svgBars(groups []barGroup, shared bool) string {
	const (
		width   = 720
		labelW  = 230
		valueW  = 110
		barH    = 16
		gap     = 4
		groupGp = 12
	)
	n := 1
	for _, g := range groups {
		n = max(n, len(g.values))
	}
	groupH := n*(barH+gap) - gap + groupGp
	height := len(groups)*groupH + groupGp
	var b strings.Builder
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" font-family=\"system-ui,sans-serif\" font-size=\"12\">\n", width, height, width, height)
	span := float64(width - labelW - valueW)
	for gi, g := range groups {
		y0 := groupGp/2 + gi*groupH
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" dominant-baseline=\"middle\">%s</text>\n",
			labelW-8, y0+(n*(barH+gap)-gap)/2, html.EscapeString(g.label))
		top := 0.0
		for _, o := range groups {
			if shared || o.label == g.label {
				for _, v := range o.values {
					top = max(top, v)
				}
			}
		}
		for i, v := range g.values {
			w := 0.0
			if top > 0 && v > 0 {
				w = max(1, span*v/top)
			}
			y := y0 + i*(barH+gap)
			fmt.Fprintf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>%s %s</title></rect>\n",
				labelW, y, w, barH, reportColors[i%len(reportColors)], html.EscapeString(formatValue(v)), html.EscapeString(g.unit))
			fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" dominant-baseline=\"middle\">%s %s</text>\n",
				float64(labelW)+w+6, y+barH/2, html.EscapeString(formatValue(v)), html.EscapeString(g.unit))
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}
