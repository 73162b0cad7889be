package bench

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRenderProgress(t *testing.T) {
	for _, tc := range []struct {
		p    Progress
		want []string
	}{
		{Progress{Phase: "publishing", Unit: "msgs", Done: 157320, Elapsed: 4500 * time.Millisecond, Limit: 10 * time.Second, Rate: 35112},
			[]string{"publishing [##############................]  45%", "4.5s/10s", "157,320 msgs", "35,112 msgs/s"}},
		{Progress{Phase: "draining", Unit: "msgs", Done: 250, Total: 1000, Elapsed: 20 * time.Second, Limit: 10 * time.Second},
			[]string{"[########......................]  25%", "250/1,000 msgs"}}, // count beats time
		{Progress{Phase: "draining", Unit: "msgs", Done: 2000, Total: 1000},
			[]string{"[##############################] 100%"}}, // clamped
		{Progress{Phase: "x", Unit: "conns", Done: 5, Elapsed: 600 * time.Millisecond},
			[]string{"[...#..........................]   ?%"}}, // unknown end: a moving marker
	} {
		got := RenderProgress(tc.p, 30)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("RenderProgress(%+v) = %q, lacks %q", tc.p, got, w)
			}
		}
	}
}

func TestProgressBarRewritesOneLine(t *testing.T) {
	var b bytes.Buffer
	bar := ProgressBar(&b, 10)
	bar(Progress{Phase: "a", Unit: "msgs", Done: 1, Total: 2})
	bar(Progress{Phase: "a", Unit: "msgs", Done: 2, Total: 2, Final: true})
	out := b.String()
	if strings.Count(out, "\r") != 2 || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("bar output %q: want two carriage-return rewrites and one final newline", out)
	}
}

func TestStartProgressSamplesAndEnds(t *testing.T) {
	var n atomic.Int64
	var got []Progress
	done := make(chan struct{})
	reports := make(chan Progress, 100)
	cfg := Config{Progress: func(p Progress) { reports <- p }}
	stop := startProgress(cfg, "publishing", "msgs", 0, time.Second, n.Load)
	go func() {
		defer close(done)
		for p := range reports {
			got = append(got, p)
			if p.Final {
				return
			}
		}
	}()
	n.Store(100)
	time.Sleep(3 * progressEvery)
	n.Store(500)
	stop()
	stop() // idempotent
	<-done
	if len(got) < 2 {
		t.Fatalf("%d reports, want samples and a final one", len(got))
	}
	last := got[len(got)-1]
	if !last.Final || last.Done != 500 || last.Phase != "publishing" || last.Limit != time.Second {
		t.Fatalf("final report %+v", last)
	}
	for _, p := range got[:len(got)-1] {
		if p.Final {
			t.Fatalf("a final report before the end: %+v", got)
		}
	}
	// Without a Progress nothing runs.
	startProgress(Config{}, "x", "msgs", 0, 0, func() int64 { t.Fatal("sampled without Progress"); return 0 })()
}

func TestProbeFsync(t *testing.T) {
	r, err := probeFsync(t.TempDir(), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r <= 0 || r > 1e7 {
		t.Fatalf("fsync rate %v/s", r)
	}
	if _, err := probeFsync("/nonexistent/dir", time.Millisecond); err == nil {
		t.Fatal("probe in a missing directory did not fail")
	}
}
