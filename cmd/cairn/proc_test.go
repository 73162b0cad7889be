package main

// End-to-end test helpers: build the cairn binary once per test run, run it
// as a child process over a data directory, and stop it the hard way
// (SIGKILL) or the polite way (SIGTERM). The broker's stderr (JSON logs) is
// kept across restarts and printed when a test fails.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	killRounds = flag.Int("cairn.kill-rounds", 4, "kill -9 rounds of TestKillNineLosesNothingAcknowledged")
	killSeed   = flag.Uint64("cairn.seed", 0, "seed of TestKillNineLosesNothingAcknowledged's random kill delays (0: time-based)")
)

// Time limits of the process helpers.
const (
	buildTimeout  = 3 * time.Minute
	listenTimeout = 60 * time.Second // start → "listening": recovery included
	stopTimeout   = 20 * time.Second // SIGTERM/SIGKILL → exit
	logTail       = 64 << 10         // broker log bytes printed on failure
)

var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	took time.Duration
	by   string // the test that built it, until it logged so
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// cairnBinary builds the broker (without -race, whatever the test process
// was built with) once per test run and returns its path.
func cairnBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			built.err = fmt.Errorf("the go tool is not in PATH: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "cairn-e2e-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		bin := filepath.Join(dir, "cairn")
		start := time.Now()
		cmd := exec.Command(goTool, "build", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "GOFLAGS=") // no inherited -race
		out, err := runWithTimeout(cmd, buildTimeout)
		if err != nil {
			built.err = fmt.Errorf("go build -o %s .: %v\n%s", bin, err, out)
			return
		}
		built.bin = bin
		built.took = time.Since(start)
		built.by = t.Name()
	})
	if built.by == t.Name() && built.bin != "" {
		t.Logf("built %s in %v", built.bin, built.took.Round(time.Millisecond))
		built.by = ""
	}
	if built.err != nil {
		t.Fatalf("building cairn: %v", built.err)
	}
	return built.bin
}

// runWithTimeout runs cmd, killing it after d, and returns its combined output.
func runWithTimeout(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second // a killed go tool's children may hold the pipe
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("killed after %v", d)
	}
}

// broker is a cairn child process over one data directory, restartable.
type broker struct {
	t    testing.TB
	bin  string
	dir  string
	args []string
	logs *logSink

	addr    string        // of the running process
	startup time.Duration // of the running process: start → "listening"
	starts  int
	p       *proc // nil when not running
}

// proc is one run of the binary.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's, valid once exited is closed
}

// startBroker starts `cairn serve --listen 127.0.0.1:0 --data <tempdir>`
// plus extra flags, and waits until it listens. The process is killed at the
// end of the test; its log is printed if the test failed.
func startBroker(t testing.TB, extra ...string) *broker {
	t.Helper()
	b := &broker{t: t, bin: cairnBinary(t), dir: t.TempDir(), args: extra, logs: &logSink{}}
	t.Cleanup(func() {
		if b.p != nil {
			_ = b.p.cmd.Process.Kill()
			select {
			case <-b.p.exited:
			case <-time.After(stopTimeout):
				t.Errorf("broker pid %d did not exit after SIGKILL", b.p.cmd.Process.Pid)
			}
			b.p = nil
		}
		if t.Failed() {
			t.Logf("broker log (data %s, last %d KiB):\n%s", b.dir, logTail>>10, b.logs.tail(logTail))
		}
	})
	b.start()
	return b
}

// start runs the binary and waits for its "listening" log line.
func (b *broker) start() {
	b.t.Helper()
	if b.p != nil {
		b.t.Fatalf("broker already running (pid %d)", b.p.cmd.Process.Pid)
	}
	b.starts++
	lw := &procLog{sink: b.logs, prefix: runPrefix(b.starts), listening: make(chan listenEvent, 1)}
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--listen-ws", "127.0.0.1:0", "--data", b.dir}, b.args...)
	cmd := exec.Command(b.bin, args...)
	level := "info"
	if l := os.Getenv("CAIRN_E2E_LOG_LEVEL"); l != "" {
		level = l // debug: every connection's story in the failure dump
	}
	cmd.Env = append(os.Environ(), "CAIRN_LOG_FORMAT=json", "CAIRN_LOG_LEVEL="+level)
	cmd.Stderr = lw
	cmd.SysProcAttr = childProcAttr()
	began := time.Now()
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("starting %s: %v", b.bin, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	b.p = p
	b.waitListening(lw, began)
}

// waitListening waits for the process to log that it accepts connections
// and records the address and the startup time.
func (b *broker) waitListening(lw *procLog, began time.Time) {
	b.t.Helper()
	select {
	case ev := <-lw.listening:
		b.addr, b.startup = ev.addr, ev.at.Sub(began)
	case <-b.p.exited:
		err := b.p.err
		b.p = nil
		b.t.Fatalf("broker (run %d) exited before listening: %v", b.starts, err)
	case <-time.After(listenTimeout):
		b.t.Fatalf("broker (run %d) did not log \"listening\" within %v", b.starts, listenTimeout)
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (b *broker) kill9() {
	b.t.Helper()
	b.signalAndWait(syscall.SIGKILL)
}

// terminate sends SIGTERM and returns the exit code and how long the
// process took to exit.
func (b *broker) terminate() (code int, took time.Duration) {
	b.t.Helper()
	start := time.Now()
	st := b.signalAndWait(syscall.SIGTERM)
	return st, time.Since(start)
}

// restart starts the binary again over the same data directory (after kill9
// or terminate); the new address is in b.addr.
func (b *broker) restart() {
	b.t.Helper()
	b.start()
}

// signalAndWait signals the process and returns its exit code (-1 when it
// died from a signal).
func (b *broker) signalAndWait(sig syscall.Signal) int {
	b.t.Helper()
	p := b.p
	if p == nil {
		b.t.Fatalf("broker not running")
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		b.t.Fatalf("signal %v to broker pid %d: %v", sig, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		b.t.Fatalf("broker pid %d still running %v after %v", p.cmd.Process.Pid, stopTimeout, sig)
	}
	b.p, b.addr = nil, ""
	return p.cmd.ProcessState.ExitCode()
}

// logSink keeps every line the broker processes wrote, in order.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) add(prefix string, line []byte) {
	s.mu.Lock()
	s.buf.WriteString(prefix)
	s.buf.Write(line)
	s.buf.WriteByte('\n')
	s.mu.Unlock()
}

// tail returns the last n bytes of the log.
func (s *logSink) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		return "...\n" + string(b)
	}
	return string(b)
}

// lastJSON returns the fields of the last JSON log line of run (1 is the
// first start of the broker) whose msg is msg, or nil.
func (s *logSink) lastJSON(run int, msg string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := bytes.Split(s.buf.Bytes(), []byte("\n"))
	prefix := []byte(runPrefix(run))
	needle := []byte(fmt.Sprintf("%q", msg))
	for i := len(lines) - 1; i >= 0; i-- {
		l, ok := bytes.CutPrefix(lines[i], prefix)
		if !ok {
			continue
		}
		j := bytes.IndexByte(l, '{')
		if j < 0 || !bytes.Contains(l, needle) {
			continue
		}
		var rec map[string]any
		if json.Unmarshal(l[j:], &rec) == nil && rec["msg"] == msg {
			return rec
		}
	}
	return nil
}

func runPrefix(run int) string { return fmt.Sprintf("[run %d] ", run) }

type listenEvent struct {
	addr string
	at   time.Time
}

// procLog is the stderr of one process: it splits lines into the sink and
// reports the "listening" line.
type procLog struct {
	sink      *logSink
	prefix    string
	partial   []byte
	listening chan listenEvent
}

// Write is called by os/exec's copying goroutine only.
func (w *procLog) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(w.partial[:i])
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) == 0 {
		w.partial = nil
	}
	return len(p), nil
}

func (w *procLog) line(l []byte) {
	w.sink.add(w.prefix, l)
	if !bytes.Contains(l, []byte(`"listening"`)) {
		return
	}
	var rec struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal(l, &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
		select {
		case w.listening <- listenEvent{addr: rec.Addr, at: time.Now()}:
		default:
		}
	}
}
