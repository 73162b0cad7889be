package bench

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// The fsync probe: the disk's single-writer synced-write rate, the yardstick
// of a durable broker's pipelining. One writer appends 64 bytes to a file
// and fdatasyncs it (File.Sync is fsync; fdatasync is what a WAL uses, see
// fdatasync_linux.go), again and again for the probe's duration. A broker
// that acknowledges only synced messages and handles one message per fsync
// delivers that many messages per second; pipelining is every message above
// it (the one-publisher window-100 target is 5× this rate).

// probeFsync measures writes+fdatasync per second in dir for d (at most
// 100,000 of them).
func probeFsync(dir string, d time.Duration) (float64, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "cairn-bench-fsync-")
	if err != nil {
		return 0, fmt.Errorf("fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	rec := make([]byte, 64)
	n := 0
	t0 := time.Now()
	for n < 100_000 && (n == 0 || time.Since(t0) < d) {
		if _, err := f.Write(rec); err != nil {
			return 0, fmt.Errorf("fsync probe: %w", err)
		}
		if err := fdatasync(f); err != nil {
			return 0, fmt.Errorf("fsync probe: %w", err)
		}
		n++
	}
	secs := time.Since(t0).Seconds()
	if secs <= 0 {
		return 0, errors.New("fsync probe: no time passed")
	}
	return float64(n) / secs, nil
}
