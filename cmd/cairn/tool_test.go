package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestInterspersed(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"cairn inspect queue c1 --limit 5 --json", "cairn inspect queue --limit 5 --json -- c1"},
		{"cairn --log-level debug inspect session c1 --admin 127.0.0.1:1", "cairn --log-level debug inspect session --admin 127.0.0.1:1 -- c1"},
		{"cairn backup /tmp/x --data=./d", "cairn backup --data=./d -- /tmp/x"},
		{"cairn inspect retained -- -odd/topic --json", "cairn inspect retained -- -odd/topic --json"},
		{"cairn recover --check --data d", "cairn recover --check --data d"},
		{"cairn serve --listen a b", "cairn serve --listen a b"},
		{"cairn inspect", "cairn inspect"},
		// The global flags also work after the command.
		{"cairn serve --log-level debug --listen a", "cairn --log-level debug serve --listen a"},
		{"cairn --log-format json serve --log-level=warn", "cairn --log-format json --log-level=warn serve"},
		{"cairn inspect queue c1 --log-format text --json", "cairn --log-format text inspect queue --json -- c1"},
		{"cairn serve -- --log-level x", "cairn serve -- --log-level x"},
	} {
		if got := strings.Join(interspersed(strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("interspersed(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestCompactDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 59 * time.Second: "59s", 90 * time.Second: "1m30s", time.Hour: "1h00m",
		26*time.Hour + 5*time.Minute: "1d02h", -time.Second: "0s",
	} {
		if got := compactDuration(d); got != want {
			t.Errorf("compactDuration(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	p := &progressBar{w: &out, label: "replaying", start: time.Now()}
	p.update(50, 100)
	p.update(51, 100) // throttled
	p.update(100, 100)
	p.finish()
	lines := strings.Split(out.String(), "\r")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "replaying [===============>              ]  50% 50/100 events") ||
		!strings.HasPrefix(lines[2], "replaying [==============================] 100% 100/100 events") || !strings.HasSuffix(out.String(), "\n") {
		t.Fatalf("progress output %q", out.String())
	}
	var nilBar *progressBar // not a terminal: no output, no panic
	nilBar.update(1, 2)
	nilBar.finish()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Fatal("a pipe is taken for a terminal")
	}
}

// An unknown command word, and arguments to a command that takes none, are
// errors saying so: urfave/cli alone prints "No help topic" (exit status 3)
// for the first and, as it stops reading flags at the first argument,
// runs `serve extra --data DIR` on the default store.
func TestUnknownCommandsAndStrayArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuch"}, `unknown command "nosuch": cairn takes one of serve, inspect`},
		{[]string{"inspect", "nosuch"}, `unknown command "nosuch": cairn inspect takes one of sessions, session, queue`},
		{[]string{"bench", "fanout2"}, `unknown command "fanout2": cairn bench takes one of fanin, fanout`},
		{[]string{"passwd", "remove"}, `cairn passwd takes one of add, delete`},
		{[]string{"serve", "extra", "--data", t.TempDir()}, `cairn serve takes no arguments, got ["extra" "--data"`},
		{[]string{"compact", "now"}, `cairn compact takes no arguments`},
		{[]string{"config", "example", "x"}, `cairn config example takes no arguments`},
		{[]string{"inspect", "stats", "x", "--data", t.TempDir()}, `cairn inspect stats takes no arguments, got ["x"]`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := runCLI(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// Help and real commands still work.
	for _, args := range [][]string{{"help"}, {"inspect", "help"}, {"bench", "help", "fanin"}, {"version"}, {"config", "example"}} {
		if _, err := runCLI(t, args...); err != nil {
			t.Errorf("cairn %s: %v", strings.Join(args, " "), err)
		}
	}
}
