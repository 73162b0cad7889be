package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Result is one run of one scenario against one broker.
type Result struct {
	Scenario string    `json:"scenario"`
	Broker   string    `json:"broker"`
	Addr     string    `json:"addr"`
	Started  time.Time `json:"started"`
	Config   Config    `json:"config"`
	// Seconds is the measured interval: from the first publish to the last
	// delivery (flows), or the scenario's own phase.
	Seconds float64 `json:"seconds"`
	Counts  Counts  `json:"counts"`
	// Latency is end to end (stamp in the payload to arrival); Puback from a
	// publish to its PUBACK (PUBCOMP for QoS 2); Connect from dial to CONNACK.
	Latency    *Latency   `json:"latency,omitempty"`
	Puback     *Latency   `json:"puback_latency,omitempty"`
	Connect    *Latency   `json:"connect_latency,omitempty"`
	BrokerProc *ProcStats `json:"broker_process,omitempty"`
	BenchProc  *ProcStats `json:"bench_process,omitempty"`
	// Metrics are the numbers to compare, headline first.
	Metrics []Metric `json:"metrics"`
	// ErrorSamples are the first few errors, verbatim.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Summary is the scenario's verdict in one line (crash).
	Summary string `json:"summary,omitempty"`
}

// Counts are a run's message accounting. Expected is what subscribers had
// to receive: for QoS 1/2 every acknowledged publish (an ack is a promise),
// for QoS 0 every publish sent. Lost is expected but never received;
// Received counts distinct messages, Duplicates the extra copies.
type Counts struct {
	Sent       int64 `json:"sent"`
	Acked      int64 `json:"acked"`
	Expected   int64 `json:"expected"`
	Received   int64 `json:"received"`
	Duplicates int64 `json:"duplicates"`
	Lost       int64 `json:"lost"`
	Errors     int64 `json:"errors"`
}

// Metric is one named number of a result.
type Metric struct {
	Key   string  `json:"key"`
	Label string  `json:"label"`
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
	// Better is "higher", "lower" or "" (informational).
	Better string `json:"better,omitempty"`
}

func (r *Result) add(key, label, unit, better string, v float64) {
	r.Metrics = append(r.Metrics, Metric{Key: key, Label: label, Unit: unit, Value: v, Better: better})
}

// Metric returns the metric with key k.
func (r *Result) Metric(k string) (Metric, bool) {
	for _, m := range r.Metrics {
		if m.Key == k {
			return m, true
		}
	}
	return Metric{}, false
}

func (r *Result) noteErr(format string, args ...any) {
	r.Counts.Errors++
	if len(r.ErrorSamples) < 10 {
		r.ErrorSamples = append(r.ErrorSamples, fmt.Sprintf(format, args...))
	}
}

// addLatency adds the percentiles of l under prefix.
func (r *Result) addLatency(prefix, label string, l *Latency) {
	if l == nil || l.Count == 0 {
		return
	}
	r.add(prefix+"_p50_ms", label+" p50", "ms", "lower", l.P50)
	r.add(prefix+"_p90_ms", label+" p90", "ms", "lower", l.P90)
	r.add(prefix+"_p99_ms", label+" p99", "ms", "lower", l.P99)
	r.add(prefix+"_max_ms", label+" max", "ms", "lower", l.Max)
}

// addProc adds the process metrics, last.
func (r *Result) addProc() {
	if p := r.BrokerProc; p != nil {
		r.add("broker_cpu_pct", "broker CPU", "% core", "", p.CPUPercent)
		r.add("broker_rss_max_mib", "broker RSS max", "MiB", "", float64(p.RSSMax)/(1<<20))
	}
	if p := r.BenchProc; p != nil {
		r.add("bench_cpu_pct", "load generator CPU", "% core", "", p.CPUPercent)
	}
}

// WriteJSON writes v (a Result, a Comparison, ...) as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Describe is a one-line summary of the configuration.
func (r *Result) Describe() string {
	return describe(r.Scenario, r.Config)
}

func describe(scenario string, c Config) string {
	sess := "persistent"
	if c.Clean {
		sess = "clean"
	}
	s := fmt.Sprintf("%s clients=%d qos=%d payload=%dB window=%d %s", scenario, c.Clients, c.QoS, c.Payload, c.Window, sess)
	switch scenario {
	case "offline", "restart":
		s += fmt.Sprintf(" count=%d", c.Count)
	case "crash":
		s = fmt.Sprintf("%s publishers=%d window=%d payload=%dB kills=%d kill-interval=%v", scenario, c.Clients, c.Window, c.Payload, c.Kills, c.KillInterval)
	case "connect":
		s = fmt.Sprintf("%s connections=%d parallel=%d %s", scenario, c.Clients, c.Parallel, sess)
	default:
		if c.Count > 0 {
			s += fmt.Sprintf(" count=%d", c.Count)
		}
		s += fmt.Sprintf(" duration=%v", c.Duration)
	}
	if c.Rate > 0 {
		s += fmt.Sprintf(" rate=%g/s", c.Rate)
	}
	if c.Kill {
		s += " kill"
	}
	return s
}

// WriteTable prints r for a terminal.
func WriteTable(w io.Writer, r *Result) error {
	fmt.Fprintf(w, "%s — %s (%s), %s\n", r.Describe(), r.Broker, r.Addr, r.Started.Format(time.DateTime))
	var rows [][]string
	for _, m := range r.Metrics {
		rows = append(rows, []string{m.Label, formatValue(m.Value), m.Unit})
	}
	if err := writeColumns(w, rows, 1); err != nil {
		return err
	}
	c := r.Counts
	fmt.Fprintf(w, "  sent %d, acked %d, expected %d, received %d, lost %d, duplicates %d, errors %d\n",
		c.Sent, c.Acked, c.Expected, c.Received, c.Lost, c.Duplicates, c.Errors)
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	return nil
}

// formatValue prints a number with sensible precision for a table.
func formatValue(v float64) string {
	switch a := abs(v); {
	case v == 0:
		return "0"
	case a >= 1000:
		return withThousands(fmt.Sprintf("%.0f", v))
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func withThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// writeColumns prints rows as aligned columns, indented by two spaces: the
// first left columns aligned left, the rest right, the last one left.
func writeColumns(w io.Writer, rows [][]string, left int) error {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(" ")
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			b.WriteString(" ")
			switch {
			case i < left:
				b.WriteString(c + pad)
			case i == len(r)-1 && i == len(width)-1 && len(r) > 2 && !numeric(c):
				b.WriteString(c)
			default:
				b.WriteString(pad + c)
			}
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func numeric(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' && r != ',' && r != '-' {
			return false
		}
	}
	return s != ""
}
