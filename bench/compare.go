package bench

import (
	"context"
	"fmt"
	"io"
)

// Compare runs one scenario against two brokers in alternation, A B, B A,
// A B, ... (so that neither always runs first), each launched broker fresh
// for every run, and reports every metric's per-run ratio A/B and the
// median of those ratios.

// Comparison is the outcome of Compare; with one broker (FromResults) it
// holds runs of A only.
type Comparison struct {
	Scenario string             `json:"scenario"`
	Config   Config             `json:"config"`
	A        string             `json:"a"`
	B        string             `json:"b,omitempty"`
	Runs     []ComparedRun      `json:"runs"`
	Metrics  []MetricComparison `json:"metrics"`
}

// ComparedRun is one round: a run of each broker.
type ComparedRun struct {
	A *Result `json:"a"`
	B *Result `json:"b,omitempty"`
}

// MetricComparison is one metric across the runs.
type MetricComparison struct {
	Key    string    `json:"key"`
	Label  string    `json:"label"`
	Unit   string    `json:"unit"`
	Better string    `json:"better,omitempty"`
	A      []float64 `json:"a"`
	B      []float64 `json:"b,omitempty"`
	// Ratios are A/B per run where both have the metric; 0 where B is 0
	// (undefined), and left out of MedianRatio.
	Ratios      []float64 `json:"ratios,omitempty"`
	MedianA     float64   `json:"median_a"`
	MedianB     float64   `json:"median_b,omitempty"`
	MedianRatio float64   `json:"median_ratio,omitempty"` // 0: undefined`
}

// Compare runs scenario runs times against a and b in alternation.
func Compare(ctx context.Context, scenario string, cfg Config, a, b Target, runs int) (*Comparison, error) {
	runs = max(runs, 1)
	cmp := &Comparison{Scenario: scenario, Config: Defaults(scenario, cfg), A: a.Name, B: b.Name}
	for i := range runs {
		var r ComparedRun
		first := true // A first in even rounds, B first in odd ones
		if i%2 == 1 {
			first = false
		}
		for _, isA := range []bool{first, !first} {
			t := b
			if isA {
				t = a
			}
			cfg.logf("compare: run %d of %d, %s", i+1, runs, t.Name)
			res, err := Run(ctx, scenario, cfg, t)
			if err != nil {
				cmp.summarize()
				return cmp, fmt.Errorf("run %d against %s: %w", i+1, t.Name, err)
			}
			if isA {
				r.A = res
			} else {
				r.B = res
			}
		}
		cmp.Runs = append(cmp.Runs, r)
	}
	cmp.summarize()
	return cmp, nil
}

// FromResults wraps runs of a single broker, for the table and the report.
func FromResults(rs ...*Result) *Comparison {
	if len(rs) == 0 {
		return &Comparison{}
	}
	cmp := &Comparison{Scenario: rs[0].Scenario, Config: rs[0].Config, A: rs[0].Broker}
	for _, r := range rs {
		cmp.Runs = append(cmp.Runs, ComparedRun{A: r})
	}
	cmp.summarize()
	return cmp
}

// summarize computes Metrics from Runs, in the order of the first run's
// metrics.
func (c *Comparison) summarize() {
	c.Metrics = nil
	if len(c.Runs) == 0 || c.Runs[0].A == nil {
		return
	}
	for _, m := range c.Runs[0].A.Metrics {
		mc := MetricComparison{Key: m.Key, Label: m.Label, Unit: m.Unit, Better: m.Better}
		var defined []float64 // ratios whose B is not 0
		for _, r := range c.Runs {
			va, okA := r.A.Metric(m.Key)
			if !okA {
				continue
			}
			mc.A = append(mc.A, va.Value)
			if r.B == nil {
				continue
			}
			vb, okB := r.B.Metric(m.Key)
			if !okB {
				continue
			}
			mc.B = append(mc.B, vb.Value)
			ratio := 0.0
			if vb.Value != 0 {
				ratio = va.Value / vb.Value
				defined = append(defined, ratio)
			}
			mc.Ratios = append(mc.Ratios, ratio)
		}
		mc.MedianA, mc.MedianB, mc.MedianRatio = median(mc.A), median(mc.B), median(defined)
		c.Metrics = append(c.Metrics, mc)
	}
}

// WriteComparison prints c for a terminal: the medians of each broker, the
// ratio A/B of every run and their median.
func WriteComparison(w io.Writer, c *Comparison) error {
	if c.B == "" {
		for _, r := range c.Runs {
			if err := WriteTable(w, r.A); err != nil {
				return err
			}
		}
		return nil
	}
	fmt.Fprintf(w, "%s — %s vs %s, %d runs alternating; ratio = %s/%s\n", describe(c.Scenario, c.Config), c.A, c.B, len(c.Runs), c.A, c.B)
	head := []string{"metric", "unit", c.A, c.B}
	for i := range c.Runs {
		head = append(head, fmt.Sprintf("run %d", i+1))
	}
	head = append(head, "median ratio")
	rows := [][]string{head}
	for _, m := range c.Metrics {
		row := []string{m.Label, m.Unit, formatValue(m.MedianA), "-"}
		if len(m.B) > 0 {
			row[3] = formatValue(m.MedianB)
		}
		for i := range c.Runs {
			row = append(row, ratioText(m, i))
		}
		if m.MedianRatio != 0 {
			row = append(row, fmt.Sprintf("%.2f", m.MedianRatio))
		} else {
			row = append(row, "-")
		}
		rows = append(rows, row)
	}
	if err := writeColumns(w, rows, 2); err != nil {
		return err
	}
	for i, r := range c.Runs {
		for _, res := range []*Result{r.A, r.B} {
			if res == nil {
				continue
			}
			k := res.Counts
			fmt.Fprintf(w, "  run %d %s: sent %d, acked %d, received %d, lost %d, duplicates %d, errors %d\n",
				i+1, res.Broker, k.Sent, k.Acked, k.Received, k.Lost, k.Duplicates, k.Errors)
			for _, e := range res.ErrorSamples {
				fmt.Fprintf(w, "    error: %s\n", e)
			}
		}
	}
	return nil
}

// ratioText is run i's ratio of m for a table: "-" when undefined.
func ratioText(m MetricComparison, i int) string {
	if i >= len(m.Ratios) || i >= len(m.B) || m.B[i] == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", m.Ratios[i])
}
