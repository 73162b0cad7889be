package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Launchers start and stop brokers for runs: a data directory wiped before
// every fresh start, a free loopback port, and a wait until the listener
// accepts.

// Launcher starts and stops one broker.
type Launcher interface {
	// Start starts the broker (on a wiped data directory if wipe) and
	// returns once its listener accepts connections.
	Start(ctx context.Context, wipe bool) (addr string, pid int, err error)
	// Stop stops it: gracefully (SIGTERM), or at once if kill.
	Stop(kill bool) error
	// Close stops it if running and removes its working directory.
	Close() error
}

// ProcLauncher runs a broker command through /bin/sh. The command may use
// the placeholders {addr} (host:port), {host}, {port}, {dir} (the data
// directory, wiped before every fresh start) and {work} (a working directory
// for the launcher's files, such as a generated configuration). The broker's
// output goes to {work}/broker.log. A simple command is exec'd by the shell;
// a compound one (with ; & | or a newline) should end with "exec BROKER ..."
// so that the pid measured is the broker's.
type ProcLauncher struct {
	Command string
	// Addr is the broker's address; empty means 127.0.0.1 and a free port
	// chosen at the first start and kept across restarts.
	Addr string
	// Prepare, if set, runs before every start (it writes a configuration
	// file, say).
	Prepare func(work, dir, addr string) error
	// StartTimeout bounds the wait for the listener (default 60s).
	StartTimeout time.Duration

	work   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// NewProcLauncher returns a launcher for command.
func NewProcLauncher(command string) *ProcLauncher { return &ProcLauncher{Command: command} }

// Start implements Launcher.
func (l *ProcLauncher) Start(ctx context.Context, wipe bool) (string, int, error) {
	if l.cmd != nil {
		return "", 0, errors.New("already running")
	}
	if l.work == "" {
		w, err := os.MkdirTemp("", "cairn-bench-")
		if err != nil {
			return "", 0, err
		}
		l.work = w
	}
	if l.Addr == "" {
		a, err := freePort()
		if err != nil {
			return "", 0, err
		}
		l.Addr = a
	}
	dir := filepath.Join(l.work, "data")
	if wipe {
		if err := os.RemoveAll(dir); err != nil {
			return "", 0, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, err
	}
	if l.Prepare != nil {
		if err := l.Prepare(l.work, dir, l.Addr); err != nil {
			return "", 0, err
		}
	}
	host, port, err := net.SplitHostPort(l.Addr)
	if err != nil {
		return "", 0, err
	}
	line := strings.NewReplacer("{addr}", l.Addr, "{host}", host, "{port}", port, "{dir}", dir, "{work}", l.work).Replace(l.Command)
	logf, err := os.OpenFile(l.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", 0, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s: %s\n", time.Now().Format(time.RFC3339Nano), line)
	if !strings.ContainsAny(line, ";&|\n") {
		line = "exec " + line // the pid is the broker's
	}
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	l.cmd, l.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(l.exited) }()
	timeout := l.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if err := waitListening(ctx, l.Addr, timeout, l.exited); err != nil {
		_ = l.Stop(true)
		return "", 0, fmt.Errorf("%s: %w%s", line, err, l.logTail())
	}
	return l.Addr, cmd.Process.Pid, nil
}

// Stop implements Launcher.
func (l *ProcLauncher) Stop(kill bool) error {
	if l.cmd == nil {
		return nil
	}
	defer func() { l.cmd = nil }()
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = l.cmd.Process.Signal(sig)
	select {
	case <-l.exited:
		return nil
	case <-time.After(30 * time.Second):
	}
	_ = l.cmd.Process.Kill()
	<-l.exited
	return fmt.Errorf("the broker did not stop within 30s of %v; killed", sig)
}

// Close implements Launcher.
func (l *ProcLauncher) Close() error {
	err := l.Stop(false)
	if l.work != "" {
		err = errors.Join(err, os.RemoveAll(l.work))
		l.work = ""
	}
	return err
}

func (l *ProcLauncher) logPath() string { return filepath.Join(l.work, "broker.log") }

// logTail is the end of the broker's log, for error messages.
func (l *ProcLauncher) logTail() string {
	f, err := os.Open(l.logPath())
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-2048, 0)
	b, _ := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if len(b) == 0 {
		return ""
	}
	return "\nbroker log (end):\n" + string(b)
}

// MosquittoConfig is a configuration that gives mosquitto its best
// throughput while still keeping persistent sessions (persistence true; it
// writes its database at shutdown and on autosave, never per message).
func MosquittoConfig(addr, dir string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# written by cairn bench\nlistener %s %s\n", port, host)
	b.WriteString("allow_anonymous true\n")
	b.WriteString("persistence true\n")
	fmt.Fprintf(&b, "persistence_location %s/\n", strings.TrimSuffix(dir, "/"))
	b.WriteString("max_queued_messages 0\n")
	b.WriteString("max_inflight_messages 1000\n")
	b.WriteString("log_dest stderr\nlog_type error\nlog_type warning\n")
	if os.Geteuid() == 0 {
		// Otherwise mosquitto drops to user "mosquitto", who cannot write
		// the temporary data directory.
		b.WriteString("user root\n")
	}
	return b.String(), nil
}

// NewMosquittoLauncher starts mosquitto (binary, e.g. /usr/sbin/mosquitto)
// with MosquittoConfig on a free port.
func NewMosquittoLauncher(binary string) *ProcLauncher {
	return &ProcLauncher{
		Command: binary + " -c {work}/mosquitto.conf",
		Prepare: func(work, dir, addr string) error {
			conf, err := MosquittoConfig(addr, dir)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(work, "mosquitto.conf"), []byte(conf), 0o644)
		},
	}
}

// freePort returns 127.0.0.1:P for a port nobody listens on right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// waitListening polls addr until it accepts a TCP connection, the process
// exits, or timeout passes.
func waitListening(ctx context.Context, addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("the broker exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v: %w", addr, timeout, err)
		}
		time.Sleep(time.Millisecond)
	}
}
