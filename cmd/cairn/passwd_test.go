package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/cairn-mqtt/cairn/engine/auth"
)

// runPasswd runs `cairn passwd ARGS` with stdin a pipe carrying input.
func runPasswd(t *testing.T, input string, args ...string) (stdout string, err error) {
	t.Helper()
	r, w, perr := os.Pipe()
	if perr != nil {
		t.Fatal(perr)
	}
	defer r.Close()
	go func() {
		_, _ = io.WriteString(w, input)
		w.Close()
	}()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Reader, app.Writer, app.ErrWriter = r, &out, &errOut
	err = app.Run(append([]string{"cairn", "passwd"}, args...))
	if errOut.Len() > 0 && err == nil {
		t.Logf("stderr: %s", errOut.String())
	}
	return out.String(), err
}

func TestPasswdCommand(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	file := filepath.Join(t.TempDir(), "passwd")
	check := func(user, pw string, want bool) {
		t.Helper()
		p, err := auth.LoadPasswords(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Check(user, []byte(pw)); got != want {
			t.Fatalf("Check(%q, %q) = %v, want %v", user, pw, got, want)
		}
	}

	out, err := runPasswd(t, "s3cret\nnot read\n", "add", file, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `user "alice" added to`) {
		t.Fatalf("output %q", out)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", st, err)
	}
	check("alice", "s3cret", true)

	// Change the password; CRLF and a missing final newline are fine.
	if out, err = runPasswd(t, "new pass\r\n", "add", file, "alice"); err != nil || !strings.Contains(out, "changed in") {
		t.Fatalf("change: %q %v", out, err)
	}
	if _, err = runPasswd(t, "bobpw", "add", file, "bob"); err != nil {
		t.Fatal(err)
	}
	check("alice", "s3cret", false)
	check("alice", "new pass", true)

	if out, err = runPasswd(t, "", "delete", file, "alice"); err != nil || !strings.Contains(out, `user "alice" deleted`) {
		t.Fatalf("delete: %q %v", out, err)
	}
	check("alice", "new pass", false)
	check("bob", "bobpw", true)
	if _, err = runPasswd(t, "", "delete", file, "alice"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestPasswdCommandErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")
	for _, tc := range []struct {
		name, input string
		args        []string
		want        string
	}{
		{"no args", "pw\n", []string{"add"}, "want FILE USER, got 0 arguments"},
		{"one arg", "pw\n", []string{"add", file}, "want FILE USER, got 1 arguments"},
		{"empty password", "\n", []string{"add", file, "alice"}, "empty password"},
		{"no input", "", []string{"add", file, "alice"}, "empty password"},
		{"bad user", "pw\n", []string{"add", file, "a:b"}, `contains ':'`},
		{"too long", strings.Repeat("x", maxPassword+1) + "\n", []string{"add", file, "alice"}, "longer than 65535"},
		{"delete missing file", "", []string{"delete", file, "alice"}, "file does not exist"},
		{"missing directory", "pw\n", []string{"add", filepath.Join(dir, "no", "passwd"), "alice"}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runPasswd(t, tc.input, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed command created the file")
	}
}

func TestReadPasswordLongest(t *testing.T) {
	pw, err := readPassword(strings.NewReader(strings.Repeat("y", maxPassword)), io.Discard)
	if err != nil || len(pw) != maxPassword {
		t.Fatalf("%d %v", len(pw), err)
	}
}
