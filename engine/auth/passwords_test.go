package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func bcryptHash(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := HashPassword([]byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDefaultArgon2Parameters(t *testing.T) {
	p := productionArgon2
	if p.memory != 19*1024 || p.time != 2 || p.threads != 1 || p.saltLen != 16 || p.keyLen != 32 {
		t.Fatalf("production argon2id parameters changed: %+v", p)
	}
	if p.memory > maxArgon2Memory || p.time > maxArgon2Time {
		t.Fatal("production parameters exceed what a file may hold")
	}
}

func TestHashPassword(t *testing.T) {
	h1 := mustHash(t, "secret")
	h2 := mustHash(t, "secret")
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(h1) {
		t.Fatalf("hash %q is not an argon2id PHC string", h1)
	}
	if h1 == h2 {
		t.Fatal("two hashes of one password are equal: no random salt")
	}
	p, err := parseHash(h1)
	if err != nil {
		t.Fatal(err)
	}
	if !p.verify([]byte("secret")) || p.verify([]byte("Secret")) || p.verify(nil) {
		t.Fatal("verify gives wrong answers")
	}
	if _, err := HashPassword(nil); err == nil {
		t.Fatal("empty password hashed")
	}
}

func TestPasswordsCheck(t *testing.T) {
	b := bcryptHash(t, "bpass", bcrypt.MinCost)
	long := strings.Repeat("x", 72)
	file := fmt.Sprintf("# users\n\nalice:%s\nbob:%s\ncarol:%s\r\ndave:%s\n  erin:%s  \nfrank:%s\n",
		mustHash(t, "apass"), b, "$2b$"+b[4:], "$2y$"+b[4:], mustHash(t, "e:pass"),
		bcryptHash(t, long, bcrypt.MinCost))
	p, err := LoadPasswords(writeFile(t, "pw", file))
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 6 {
		t.Fatalf("Len = %d, want 6", p.Len())
	}
	for _, tc := range []struct {
		user, pw string
		want     bool
	}{
		{"alice", "apass", true},
		{"alice", "apass ", false},
		{"alice", "Apass", false},
		{"alice", "", false},
		{"Alice", "apass", false},
		{"bob", "bpass", true}, // $2a$
		{"bob", "bpas", false},
		{"carol", "bpass", true}, // $2b$, CRLF line
		{"dave", "bpass", true},  // $2y$
		{"erin", "e:pass", true}, // surrounding white space, ':' in the password
		{"frank", long, true},
		{"frank", long + "y", false}, // bcrypt would ignore the 73rd byte
		{"mallory", "apass", false},
		{"mallory", "", false},
		{"", "", false},
		{"alice:apass", "", false},
	} {
		if got := p.Check(tc.user, []byte(tc.pw)); got != tc.want {
			t.Errorf("Check(%q, %q) = %v, want %v", tc.user, tc.pw, got, tc.want)
		}
	}
}

// TestUnknownUserDoesTheWork checks the code path that makes an unknown user
// cost what a known one costs: the dummy hash has the class (algorithm and
// cost parameters) of the file's most common hash and is fully verified.
func TestUnknownUserDoesTheWork(t *testing.T) {
	a1, a2 := mustHash(t, "x"), mustHash(t, "y")
	b1 := bcryptHash(t, "x", bcrypt.MinCost)
	b2, b3 := bcryptHash(t, "y", bcrypt.MinCost+1), bcryptHash(t, "z", bcrypt.MinCost+1)
	for _, tc := range []struct {
		name, file, class string
	}{
		{"empty file", "# nobody\n", "argon2id/64/1/1/32"},
		{"argon2id", "a:" + a1 + "\nb:" + a2 + "\nc:" + b1 + "\n", "argon2id/64/1/1/32"},
		{"bcrypt", "a:" + a1 + "\nb:" + b2 + "\nc:" + b3 + "\n", "bcrypt/5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := LoadPasswords(writeFile(t, "pw", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			d := p.tab.Load().dummy
			if d.class() != tc.class {
				t.Fatalf("dummy class %s, want %s", d.class(), tc.class)
			}
			if d.kind == kindBcrypt {
				// A mismatch, not a parse error: the full bcrypt ran.
				if err := bcrypt.CompareHashAndPassword(d.bcrypt, []byte("x")); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
					t.Fatalf("dummy bcrypt hash: %v", err)
				}
			}
			if d.verify([]byte("x")) || d.verify(nil) {
				t.Fatal("a password matches the dummy hash")
			}
		})
	}
}

func TestLoadPasswordsErrors(t *testing.T) {
	good := mustHash(t, "x")
	b := bcryptHash(t, "x", bcrypt.MinCost)
	for _, tc := range []struct {
		name, file, want string
	}{
		{"no colon", "# c\nalice " + good + "\n", ":2: want \"user:hash\""},
		{"empty user", "\n\n:" + good + "\n", ":3: empty user name"},
		{"dup user", "a:" + good + "\nb:" + good + "\na:" + good + "\n", `:3: user "a" already defined on line 1`},
		{"space in name", "alice :" + good + "\n", `:1: user name "alice " has leading or trailing white space`},
		{"control", "al\x01ice:" + good + "\n", ":1: user name"},
		{"bad utf8", "al\xffice:" + good + "\n", ":1: user name is not valid UTF-8"},
		{"unknown hash", "a:plaintext\n", `:1: user "a": unsupported hash`},
		{"empty hash", "a:\n", `:1: user "a": unsupported hash`},
		{"argon2i", "a:$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5aw\n", "only argon2id"},
		{"version", "a:" + strings.Replace(good, "v=19", "v=16", 1) + "\n", "unsupported argon2id version"},
		{"huge memory", "a:" + strings.Replace(good, "m=64,", "m=4194304,", 1) + "\n", "argon2id memory 4194304 KiB out of range"},
		{"huge time", "a:" + strings.Replace(good, "t=1,", "t=1000,", 1) + "\n", "argon2id time 1000 out of range"},
		{"no lanes", "a:" + strings.Replace(good, "p=1", "p=0", 1) + "\n", "parallelism 0"},
		{"missing param", "a:" + strings.Replace(good, ",p=1", "", 1) + "\n", "want parameters m, t and p"},
		{"extra param", "a:" + strings.Replace(good, "p=1", "p=1,k=2", 1) + "\n", `unsupported argon2id parameter "k"`},
		{"bad salt", "a:" + strings.Replace(good, "$m=64,t=1,p=1$", "$m=64,t=1,p=1$!!", 1) + "\n", "malformed argon2id salt"},
		{"short key", "a:$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5\n", "malformed argon2id key"},
		{"fields", "a:$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ\n", "malformed argon2id hash"},
		{"bcrypt short", "a:" + b[:50] + "\n", "malformed bcrypt hash"},
		{"bcrypt cost", "a:" + "$2a$17$" + b[7:] + "\n", "bcrypt cost 17 above the maximum 16"},
		{"long line", "a:" + strings.Repeat("x", maxLine+10) + "\n", ":1: bufio.Scanner: token too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "pw", tc.file)
			_, err := LoadPasswords(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), path+":") {
				t.Fatalf("error %v, want %q prefixed with the path", err, tc.want)
			}
			if strings.Contains(err.Error(), good) {
				t.Fatal("error repeats the hash")
			}
		})
	}
	if _, err := LoadPasswords(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestAddDeleteUser(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	check := func(user, pw string, want bool) {
		t.Helper()
		p, err := LoadPasswords(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Check(user, []byte(pw)); got != want {
			t.Fatalf("Check(%q, %q) = %v, want %v", user, pw, got, want)
		}
	}
	if replaced, err := AddUser(path, "alice", []byte("one")); err != nil || replaced {
		t.Fatalf("AddUser new file: %v %v", replaced, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("new file mode %v, want 0600", st.Mode().Perm())
	}
	check("alice", "one", true)

	// Comments and other users survive; the mode of an existing file is kept.
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append([]byte("# keep me\n"), data...), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := AddUser(path, "bob", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if replaced, err := AddUser(path, "alice", []byte("three")); err != nil || !replaced {
		t.Fatalf("AddUser replace: %v %v", replaced, err)
	}
	check("alice", "one", false)
	check("alice", "three", true)
	check("bob", "two", true)
	data, _ = os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 || lines[0] != "# keep me" || !strings.HasPrefix(lines[1], "alice:$argon2id$") || !strings.HasPrefix(lines[2], "bob:") {
		t.Fatalf("file after replace:\n%s", data)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode after rewrite %v, want 0640", st.Mode().Perm())
	}

	if err := DeleteUser(path, "alice"); err != nil {
		t.Fatal(err)
	}
	check("alice", "three", false)
	check("bob", "two", true)
	if err := DeleteUser(path, "alice"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("delete twice: %v", err)
	}
	if err := DeleteUser(filepath.Join(dir, "nope"), "bob"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("delete from a missing file: %v", err)
	}

	// No temporary file is left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %v", ents)
	}
}

func TestAddUserRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	for _, user := range []string{"", "a:b", "a\nb", " a", "#a", "a\x00"} {
		if _, err := AddUser(path, user, []byte("x")); err == nil {
			t.Errorf("AddUser(%q) accepted", user)
		}
	}
	if _, err := AddUser(path, "a", nil); err == nil {
		t.Error("empty password accepted")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a refused AddUser created the file")
	}
	// A malformed file is not rewritten.
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := AddUser(path, "a", []byte("x")); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("AddUser on a malformed file: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "garbage\n" {
		t.Fatal("malformed file changed")
	}
}

func TestAddUserThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	link := filepath.Join(dir, "link")
	if _, err := AddUser(real, "a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Skip("no symlinks:", err)
	}
	if _, err := AddUser(link, "b", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatal("the link was replaced by a file")
	}
	p, err := LoadPasswords(real)
	if err != nil || !p.Check("b", []byte("y")) {
		t.Fatalf("user not added to the link's target: %v", err)
	}
}

func TestPasswordsReload(t *testing.T) {
	path := writeFile(t, "pw", "alice:"+mustHash(t, "one")+"\n")
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	// A bad file keeps the old users.
	if err := os.WriteFile(path, []byte("alice:"+mustHash(t, "two")+"\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if !p.Check("alice", []byte("one")) {
		t.Fatal("old password lost after a failed reload")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); err == nil || !p.Check("alice", []byte("one")) {
		t.Fatal("a missing file replaced the users")
	}
	if err := os.WriteFile(path, []byte("bob:"+mustHash(t, "two")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if p.Check("alice", []byte("one")) || !p.Check("bob", []byte("two")) {
		t.Fatal("reload did not take effect")
	}
}

func TestPasswordsConcurrent(t *testing.T) {
	path := writeFile(t, "pw", "alice:"+mustHash(t, "one")+"\n")
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if !p.Check("alice", []byte("one")) || p.Check("alice", []byte("two")) {
					t.Error("wrong answer during reloads")
					return
				}
				if i == 0 {
					if err := p.Reload(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
