package store

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// The commit benchmarks run on a real directory (b.TempDir), not in memory:
// what they measure is how many commits share one fsync.
//
//	go test ./store -run '^$' -bench 'Commit|PebbleSync' -benchtime 3s

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// benchPublish is a QoS 1 publish of 100 bytes queued for one session.
func benchPublish(client string) []*Event {
	return []*Event{{Kind: EvPublished, Client: "pub", Msg: &Message{Topic: "bench/t", Payload: make([]byte, 100), QoS: 1},
		Targets: []Target{{Client: client, QoS: 1}}}}
}

func reportCommits(b *testing.B, s *Store, before CommitStats) {
	st := s.CommitStats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	if syncs := st.Syncs - before.Syncs; syncs > 0 {
		b.ReportMetric(float64(st.Commits-before.Commits)/float64(syncs), "commits/fsync")
		b.ReportMetric(float64((st.SyncTime-before.SyncTime).Microseconds())/float64(syncs), "µs/fsync")
		b.ReportMetric(100*(st.SyncTime-before.SyncTime).Seconds()/b.Elapsed().Seconds(), "%syncing")
	}
}

// BenchmarkCommitDurable: N goroutines, each committing durably and waiting
// for its completion before the next commit (one connection per goroutine).
func BenchmarkCommitDurable(b *testing.B) {
	for _, committers := range []int{1, 64} {
		b.Run(fmt.Sprintf("committers=%d", committers), func(b *testing.B) {
			s := benchStore(b)
			before := s.CommitStats()
			b.ResetTimer()
			if committers == 1 {
				evs := benchPublish("c")
				for i := 0; i < b.N; i++ {
					if err := commitWaitErr(s, true, evs...); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism((committers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) {
					evs := benchPublish("c")
					for pb.Next() {
						if err := commitWaitErr(s, true, evs...); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			reportCommits(b, s, before)
		})
	}
}

// BenchmarkCommitPipelined: one goroutine (one publisher) commits N durable
// messages without waiting, then waits for the last completion. Completions
// are ordered, so the last one implies all the others.
func BenchmarkCommitPipelined(b *testing.B) {
	s := benchStore(b)
	before := s.CommitStats()
	evs := benchPublish("c")
	last := make(chan error, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var done func(error)
		if i == b.N-1 {
			done = func(err error) { last <- err }
		}
		if err := s.Commit(evs, true, done); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-last; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportCommits(b, s, before)
}

// BenchmarkCommitNoSync: the cost of the commit path alone (batch build,
// apply, Pebble NoSync commit), which bounds the pipelined rate.
func BenchmarkCommitNoSync(b *testing.B) {
	s := benchStore(b)
	evs := benchPublish("c")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Commit(evs, false, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// BenchmarkPebbleSyncBaseline: plain db.Set with pebble.Sync, for comparison
// with what Pebble's own group commit gives on this disk.
func BenchmarkPebbleSyncBaseline(b *testing.B) {
	for _, committers := range []int{1, 64} {
		b.Run(fmt.Sprintf("committers=%d", committers), func(b *testing.B) {
			db, err := pebble.Open(b.TempDir(), &pebble.Options{MemTableSize: defaultMemTableSize, FormatMajorVersion: pebble.FormatNewest, Logger: pebbleLogger{quietLogger}})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			val := make([]byte, 150)
			b.SetParallelism((committers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key := make([]byte, 16)
				for i := uint64(0); pb.Next(); i++ {
					key = fmt.Appendf(key[:0], "%p%d", &key, i)
					if err := db.Set(key, val, pebble.Sync); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}
