package topics

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

// The benchmark topology: a fleet of sites with devices publishing metrics
// on "site/<s>/dev/<d>/<metric>", and 1,000 clients with 10 subscriptions
// each (10,000 in all): mostly exact device metrics, plus per-device '+',
// per-metric '+' across a site, per-site '#', and a shared worker group.
const (
	benchSites   = 10
	benchDevices = 1000 // per site
	benchClients = 1000
	benchPerSub  = 10
)

var benchMetrics = []string{"temp", "hum", "pres", "co2"}

func benchTopic(rng *rand.Rand) string {
	return fmt.Sprintf("site/%d/dev/%d/%s", rng.IntN(benchSites), rng.IntN(benchDevices), benchMetrics[rng.IntN(len(benchMetrics))])
}

func benchTrie(b *testing.B) *Trie {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	tr := New()
	for c := range benchClients {
		client := "client-" + strconv.Itoa(c)
		for i := range benchPerSub {
			var f string
			switch {
			case i < 6:
				f = benchTopic(rng)
			case i < 8:
				f = fmt.Sprintf("site/%d/dev/%d/+", rng.IntN(benchSites), rng.IntN(benchDevices))
			case i == 8 && c%10 == 0:
				f = fmt.Sprintf("site/%d/dev/+/%s", rng.IntN(benchSites), benchMetrics[rng.IntN(len(benchMetrics))])
			case i == 8 && c%10 == 1:
				f = fmt.Sprintf("site/%d/#", rng.IntN(benchSites))
			case i == 9 && c%20 == 0:
				f = "$share/workers/site/+/dev/+/" + benchMetrics[rng.IntN(len(benchMetrics))]
			default:
				f = benchTopic(rng)
			}
			tr.Subscribe(client, f, Sub{QoS: byte(rng.IntN(3)), SubID: uint32(rng.IntN(2) * (i + 1))})
		}
	}
	if tr.Count() < benchClients*benchPerSub*95/100 {
		b.Fatalf("only %d subscriptions", tr.Count())
	}
	return tr
}

func BenchmarkMatch(b *testing.B) {
	tr := benchTrie(b)
	rng := rand.New(rand.NewPCG(3, 4))
	topics := make([]string, 4096)
	for i := range topics {
		topics[i] = benchTopic(rng)
	}
	var dst []Match
	matched := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dst = tr.Match(topics[i%len(topics)], "client-1", nil, dst[:0])
		matched += len(dst)
	}
	b.ReportMetric(float64(matched)/float64(b.N), "matches/op")
}

func BenchmarkMatchParallel(b *testing.B) {
	tr := benchTrie(b)
	rng := rand.New(rand.NewPCG(3, 4))
	topics := make([]string, 4096)
	for i := range topics {
		topics[i] = benchTopic(rng)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var dst []Match
		for i := 0; pb.Next(); i++ {
			dst = tr.Match(topics[i%len(topics)], "", nil, dst[:0])
		}
	})
}

// BenchmarkMatchFanOut routes one topic matched by 1,000 clients (through two
// overlapping filters each), the indexed-merge path.
func BenchmarkMatchFanOut(b *testing.B) {
	tr := New()
	for c := range 1000 {
		client := "client-" + strconv.Itoa(c)
		tr.Subscribe(client, "alerts/#", Sub{QoS: 1, SubID: 1})
		tr.Subscribe(client, "alerts/+/fire", Sub{QoS: 2})
	}
	var dst []Match
	b.ReportAllocs()
	for b.Loop() {
		dst = tr.Match("alerts/b1/fire", "", nil, dst[:0])
	}
	if len(dst) != 1000 {
		b.Fatalf("%d matches", len(dst))
	}
}

// BenchmarkSubscribe adds a new subscription per iteration to a trie that
// already holds the 10,000 of BenchmarkMatch.
func BenchmarkSubscribe(b *testing.B) {
	tr := benchTrie(b)
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 1 << 16
	filters := make([]string, n)
	for i := range filters {
		filters[i] = benchTopic(rng) + "/" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c := "client-" + strconv.Itoa(i%benchClients)
		if i%n == 0 && i > 0 {
			b.StopTimer()
			tr = benchTrie(b) // bound the growth: start over with fresh filters
			b.StartTimer()
		}
		tr.Subscribe(c, filters[i%n], Sub{QoS: 1})
	}
}

// BenchmarkSubscribeUnsubscribe measures the steady state of sessions coming
// and going: create the path, then prune it again.
func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	tr := benchTrie(b)
	rng := rand.New(rand.NewPCG(5, 6))
	filters := make([]string, 1024)
	for i := range filters {
		filters[i] = benchTopic(rng) + "/x"
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		f := filters[i%len(filters)]
		tr.Subscribe("client-1", f, Sub{QoS: 1})
		tr.Unsubscribe("client-1", f)
	}
}

func BenchmarkRetainedMatch(b *testing.B) {
	r := NewRetained[int]()
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 100_000 {
		r.Set(benchTopic(rng), i)
	}
	for _, filter := range []string{"site/3/dev/42/temp", "site/3/dev/42/+", "site/+/dev/42/temp", "site/3/#"} {
		b.Run(filter, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				r.Match(filter, func(string, int) bool { n++; return true })
			}
			b.ReportMetric(float64(n)/float64(b.N), "hits/op")
		})
	}
}
