package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

func fakeResult(broker string, rate, p50 float64) *Result {
	r := &Result{Scenario: "fanin", Broker: broker, Addr: "127.0.0.1:1", Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Config: Defaults("fanin", Config{}), Counts: Counts{Sent: 10, Acked: 10, Expected: 10, Received: 10}}
	r.add("msgs_per_s", "messages/s delivered", "msg/s", "higher", rate)
	h := NewHistogram()
	for i := range int64(1000) {
		h.Record(int64(p50*1e6) * (1 + i*i/100_000)) // a tail up to ~11× p50
	}
	l := h.Summary()
	r.Latency = &l
	r.addLatency("latency", "end-to-end latency", &Latency{Count: 10, P50: p50, P90: 2 * p50, P99: 3 * p50, Max: 4 * p50})
	r.add("lost", "lost", "msgs", "lower", 0)
	return r
}

// fakeCompare builds what Compare would from these runs.
func fakeCompare() *Comparison {
	c := &Comparison{Scenario: "fanin", Config: Defaults("fanin", Config{}), A: "cairn", B: "mosquitto <&>"}
	for i, ab := range [][2]float64{{100, 50}, {90, 60}, {120, 40}} {
		c.Runs = append(c.Runs, ComparedRun{A: fakeResult("cairn", ab[0], 1+float64(i)), B: fakeResult("mosquitto <&>", ab[1], 2)})
	}
	c.summarize()
	return c
}

func TestComparisonMedians(t *testing.T) {
	c := fakeCompare()
	m := c.Metrics[0]
	if m.Key != "msgs_per_s" || m.MedianA != 100 || m.MedianB != 50 {
		t.Fatalf("medians %+v", m)
	}
	// Ratios 2, 1.5, 3: median 2.
	if len(m.Ratios) != 3 || m.MedianRatio != 2 {
		t.Fatalf("ratios %v median %v", m.Ratios, m.MedianRatio)
	}
	// A zero in B gives ratio 0, not Inf.
	c.Runs[0].B.Metrics[len(c.Runs[0].B.Metrics)-1].Value = 0
	c.summarize()
	for _, m := range c.Metrics {
		for _, r := range m.Ratios {
			if r != r || r > 1e300 {
				t.Fatalf("%s: ratio %v", m.Key, r)
			}
		}
	}
	if median([]float64{4, 1, 3, 2}) != 2.5 || median(nil) != 0 {
		t.Fatal("median")
	}
}

func TestWriteHTMLIsSelfContained(t *testing.T) {
	for _, c := range []*Comparison{fakeCompare(), FromResults(fakeResult("cairn", 10, 1))} {
		var b bytes.Buffer
		if err := WriteHTML(&b, c); err != nil {
			t.Fatal(err)
		}
		page := b.String()
		for _, bad := range []string{"<script", "src=", "href=", "@import", "url("} {
			if strings.Contains(page, bad) {
				t.Errorf("report contains %q: not self-contained", bad)
			}
		}
		if strings.Contains(page, "<&>") {
			t.Error("broker name not escaped")
		}
		svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1)
		if len(svgs) < 2 {
			t.Fatalf("%d charts, want throughput and latency at least", len(svgs))
		}
		for _, s := range svgs {
			d := xml.NewDecoder(strings.NewReader(s))
			rects, lines := 0, 0
			for {
				tok, err := d.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("chart is not well-formed XML: %v\n%s", err, s)
				}
				if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
					rects++
				}
				if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
					lines++
				}
			}
			if rects == 0 && lines == 0 {
				t.Error("a chart without bars or curves")
			}
		}
		// One latency curve per run and broker.
		want := 0
		for _, r := range c.Runs {
			for _, res := range []*Result{r.A, r.B} {
				if res != nil {
					want++
				}
			}
		}
		if got := strings.Count(page, "<polyline"); got != want {
			t.Errorf("%d latency curves, want %d (one per run and broker)", got, want)
		}
		if !strings.Contains(page, "End-to-end latency by percentile") || !strings.Contains(page, ">99.9%<") {
			t.Error("curve chart title or percentile axis missing")
		}
		if !strings.Contains(page, "messages/s delivered") || !strings.Contains(page, "end-to-end latency p99") {
			t.Error("metric labels missing")
		}
		if c.B != "" && !strings.Contains(page, "2.00") {
			t.Error("median ratio missing")
		}
	}
}

func TestWriteTableAndJSON(t *testing.T) {
	var b bytes.Buffer
	r := fakeResult("cairn", 123456, 1.5)
	r.noteErr("boom %d", 1)
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"fanin clients=8 qos=0", "123,456", "msg/s", "error: boom 1", "errors 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := WriteComparison(&b, fakeCompare()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "median ratio") || !strings.Contains(b.String(), "2.00") {
		t.Errorf("comparison:\n%s", b.String())
	}
	b.Reset()
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if m, ok := back.Metric("msgs_per_s"); !ok || m.Value != 123456 || back.Counts.Errors != 1 {
		t.Fatalf("JSON round trip: %+v", back)
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1234567: "1,234,567", -1234: "-1,234", 123.456: "123.5", 1.234: "1.23", 0.01234: "0.012"} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}
