package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// Process sampling from /proc: CPU time (utime+stime of /proc/PID/stat, in
// clock ticks) and resident memory (VmRSS of /proc/PID/status). A procWatch
// samples one process in the background so that a run reports its CPU use
// over the measured interval and its peak memory.

// clockTick is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTick = 100

// procSample is one reading of a process.
type procSample struct {
	cpu time.Duration // user + system time so far
	rss int64         // bytes
}

// readProc reads pid's CPU time and resident memory.
func readProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := bytes.Fields(stat[i+1:])
	// After ')': field 3 is f[0], so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	s.cpu = time.Duration(ut+st) * time.Second / clockTick
	s.rss, err = readRSS(pid)
	return s, err
}

// readRSS reads VmRSS from /proc/PID/status, in bytes.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmRSS: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// ProcStats is what a run reports about one process.
type ProcStats struct {
	PID        int     `json:"pid"`
	CPUPercent float64 `json:"cpu_percent"` // of one core, over the measured interval
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSStart   int64   `json:"rss_start_bytes"`
	RSSMax     int64   `json:"rss_max_bytes"`
	RSSEnd     int64   `json:"rss_end_bytes"`
}

// procWatch samples a process every interval between start and stop.
type procWatch struct {
	pid   int
	first procSample
	t0    time.Time
	stopc chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	maxRSS int64
	err    error
}

// watchProc starts sampling pid; it returns nil if pid is 0 or unreadable.
func watchProc(pid int, every time.Duration) *procWatch {
	if pid <= 0 {
		return nil
	}
	s, err := readProc(pid)
	if err != nil {
		return nil
	}
	w := &procWatch{pid: pid, first: s, t0: time.Now(), stopc: make(chan struct{}), maxRSS: s.rss}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-w.stopc:
				return
			case <-t.C:
				s, err := readProc(pid)
				w.mu.Lock()
				if err != nil {
					w.err = err
				} else {
					w.maxRSS = max(w.maxRSS, s.rss)
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// stop ends the sampling and returns the stats (nil for a nil watch, or if
// the process went away).
func (w *procWatch) stop() *ProcStats {
	if w == nil {
		return nil
	}
	close(w.stopc)
	w.wg.Wait()
	end, err := readProc(w.pid)
	if err != nil {
		return nil
	}
	wall := time.Since(w.t0)
	cpu := end.cpu - w.first.cpu
	return &ProcStats{
		PID:        w.pid,
		CPUPercent: 100 * cpu.Seconds() / wall.Seconds(),
		CPUSeconds: cpu.Seconds(),
		RSSStart:   w.first.rss,
		RSSMax:     max(w.maxRSS, end.rss),
		RSSEnd:     end.rss,
	}
}

// pidSelf is this process.
var pidSelf = os.Getpid()
