package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// BenchmarkCompactPause measures what a compaction pass over a large expiry
// backlog (20 000 retained messages and 20 000 queued messages, all expired)
// costs the broker: the commit-mutex hold time of each of the pass's
// commits, and the latency of a publisher's commits running at the same
// time compared with the same publisher alone.
//
//	go test ./store -run '^$' -bench CompactPause -benchtime 3x
func BenchmarkCompactPause(b *testing.B) {
	for _, batch := range []int{32, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			var pauses, alone, during []time.Duration
			var took time.Duration
			for range b.N {
				b.StopTimer()
				c := newClock()
				o := testOptions(vfs.NewMem())
				o.MemTableSize, o.Now = 0, c.Now // the production default (64 MiB), not the tests' tiny one
				s, err := Open("db", o)
				if err != nil {
					b.Fatal(err)
				}
				fillExpired(b, s, c, 20000)
				c.Add(time.Hour)
				alone = append(alone, publishFor(s, 200*time.Millisecond, nil)...)
				b.StartTimer()
				stop := make(chan struct{})
				var lat []time.Duration
				var wg sync.WaitGroup
				wg.Add(1)
				go func() { defer wg.Done(); lat = publishFor(s, time.Hour, stop) }()
				rep, err := s.Compact(context.Background(), CompactOptions{Batch: batch})
				close(stop)
				wg.Wait()
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if rep.RetainedExpired != 20000 || rep.QueuedExpired != 20000 {
					b.Fatalf("expired %d retained, %d queued", rep.RetainedExpired, rep.QueuedExpired)
				}
				pauses = append(pauses, rep.Pauses...)
				during = append(during, lat...)
				took += rep.Took
				_ = s.Close()
			}
			report := func(name string, d []time.Duration) {
				slices.Sort(d)
				b.ReportMetric(float64(d[len(d)/2].Microseconds()), name+"-p50-µs")
				b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), name+"-p99-µs")
				b.ReportMetric(float64(d[len(d)-1].Microseconds()), name+"-max-µs")
			}
			report("pause", pauses)
			report("commit-alone", alone)
			report("commit-during", during)
			b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "pass-ms")
		})
	}
}

// fillExpired commits n retained messages and n queue entries (over 10
// clients) that expire within a second of now.
func fillExpired(b *testing.B, s *Store, c *clock, n int) {
	at := c.Now().Add(time.Second).UnixNano()
	for i := 0; i < n; i += 100 {
		evs := make([]*Event, 0, 200)
		for j := i; j < i+100 && j < n; j++ {
			r := evRetain(fmt.Sprintf("r/%d", j), "payload", at)
			q := evPub("q", "payload", fmt.Sprintf("c%d", j%10))
			q.Msg.ExpiresAt = at
			evs = append(evs, r, q)
		}
		if err := commitWaitErr(s, false, evs...); err != nil {
			b.Fatal(err)
		}
	}
}

// publishFor commits single-target publishes, about one every 100µs (a
// busy connection; as its pipeline would, without waiting for the sync),
// until stop is closed or d has passed, and returns each Commit call's
// latency.
func publishFor(s *Store, d time.Duration, stop chan struct{}) []time.Duration {
	var lat []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		select {
		case <-stop:
			return lat
		default:
		}
		ev := evPub("live", "payload", "live")
		start := time.Now()
		if err := s.Commit([]*Event{ev}, false, nil); err != nil {
			return lat
		}
		lat = append(lat, time.Since(start))
		// Acknowledge at once, so the live queue stays short.
		_ = s.Commit([]*Event{evAck("live", ev.Targets[0].Seq)}, false, nil)
		time.Sleep(100 * time.Microsecond)
	}
	return lat
}
