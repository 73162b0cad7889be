package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// ErrUnknownUser is returned by DeleteUser for a user the file does not
// hold.
var ErrUnknownUser = errors.New("no such user")

// maxLine bounds a line of a password or ACL file.
const maxLine = 64 * 1024

// Passwords is a loaded password file. It is safe for concurrent use;
// Reload replaces its contents atomically.
type Passwords struct {
	path string
	tab  atomic.Pointer[pwTable]
	sem  chan struct{} // bounds concurrent hash computations
}

// pwTable is one immutable generation of a password file.
type pwTable struct {
	users map[string]*hash
	dummy *hash // verified for unknown users
}

// LoadPasswords reads and checks the password file at path. Errors name the
// file and, for a bad line, its number ("file:3: ...").
func LoadPasswords(path string) (*Passwords, error) {
	p := &Passwords{path: path, sem: make(chan struct{}, max(runtime.GOMAXPROCS(0), 1))}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Path returns the file the passwords were loaded from.
func (p *Passwords) Path() string { return p.path }

// Len returns the number of users.
func (p *Passwords) Len() int { return len(p.tab.Load().users) }

// Reload reads the file again and, if it is valid, replaces the users
// atomically; on error the previous users stay in force. Checks in progress
// finish against the generation they started with.
func (p *Passwords) Reload() error {
	data, err := os.ReadFile(p.path)
	if err != nil {
		return fmt.Errorf("password file: %w", err)
	}
	lines, err := parsePasswordFile(p.path, data)
	if err != nil {
		return err
	}
	t := &pwTable{users: make(map[string]*hash, len(lines))}
	classes := make(map[string]int)
	var common *hash
	for _, l := range lines {
		if l.user == "" {
			continue
		}
		t.users[l.user] = l.hash
		c := l.hash.class()
		classes[c]++
		if common == nil || classes[c] > classes[common.class()] {
			common = l.hash
		}
	}
	if common == nil {
		common = &hash{kind: kindArgon2id, a: defaultArgon2, salt: make([]byte, defaultArgon2.saltLen), key: make([]byte, defaultArgon2.keyLen)}
	}
	t.dummy = dummyLike(common)
	p.tab.Store(t)
	return nil
}

// Check reports whether password is user's password. It takes the time of
// one hash verification whether or not user exists (an unknown user is
// verified against a dummy hash like the file's most common one) and
// compares in constant time. At most GOMAXPROCS checks compute at once;
// further calls wait, which bounds the memory argon2id takes.
func (p *Passwords) Check(user string, password []byte) bool {
	t := p.tab.Load()
	h, known := t.users[user]
	if !known {
		h = t.dummy
	}
	p.sem <- struct{}{}
	ok := h.verify(password)
	<-p.sem
	return ok && known
}

// pwLine is one line of a password file: a user and its hash, or (user "")
// a comment or blank line kept verbatim by AddUser and DeleteUser.
type pwLine struct {
	raw  string
	user string
	hash *hash
}

// parsePasswordFile splits and checks a password file; name is used in
// errors.
func parsePasswordFile(name string, data []byte) ([]pwLine, error) {
	var out []pwLine
	where := make(map[string]int)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxLine)
	n := 0
	for sc.Scan() {
		n++
		raw := strings.TrimSuffix(sc.Text(), "\r")
		s := strings.TrimSpace(raw)
		if s == "" || s[0] == '#' {
			out = append(out, pwLine{raw: raw})
			continue
		}
		user, enc, ok := strings.Cut(s, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"user:hash\"", name, n)
		}
		if err := ValidateUser(user); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		if prev, dup := where[user]; dup {
			return nil, fmt.Errorf("%s:%d: user %q already defined on line %d", name, n, user, prev)
		}
		h, err := parseHash(strings.TrimSpace(enc))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: %v", name, n, user, err)
		}
		where[user] = n
		out = append(out, pwLine{raw: raw, user: user, hash: h})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %v", name, n+1, err)
	}
	return out, nil
}

// ValidateUser returns an error if name cannot be stored in a password
// file: it is empty, not valid UTF-8, contains ':' or a control character,
// has leading or trailing white space, or starts with '#'.
func ValidateUser(name string) error {
	switch {
	case name == "":
		return errors.New("empty user name")
	case !utf8.ValidString(name):
		return errors.New("user name is not valid UTF-8")
	case strings.ContainsRune(name, ':'):
		return fmt.Errorf("user name %q contains ':'", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("user name %q contains a control character", name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("user name %q has leading or trailing white space", name)
	case name[0] == '#':
		return fmt.Errorf("user name %q starts with '#'", name)
	}
	return nil
}

// AddUser sets user's password in the password file at path, hashing it
// with HashPassword: it replaces the user's line if there is one and appends
// one otherwise, keeping every other line. A file that does not exist is
// created with mode 0600. The file is replaced atomically (a temporary file
// in the same directory, fsynced, renamed over it) keeping its mode and, as
// far as permitted, its owner. It reports whether the user already existed.
//
// Two AddUser or DeleteUser calls on one file at the same time may lose one
// of the changes; the file itself is never torn.
func AddUser(path, user string, password []byte) (replaced bool, err error) {
	if err := ValidateUser(user); err != nil {
		return false, err
	}
	enc, err := HashPassword(password)
	if err != nil {
		return false, err
	}
	target, lines, st, err := readForUpdate(path)
	if err != nil {
		return false, err
	}
	entry := user + ":" + enc
	for i, l := range lines {
		if l.user == user {
			lines[i].raw, replaced = entry, true
		}
	}
	if !replaced {
		lines = append(lines, pwLine{raw: entry, user: user})
	}
	return replaced, writeAtomic(target, joinLines(lines), st)
}

// DeleteUser removes user from the password file at path, atomically as
// AddUser does. It returns an error wrapping ErrUnknownUser if the file has
// no such user.
func DeleteUser(path, user string) error {
	target, lines, st, err := readForUpdate(path)
	if err != nil {
		return err
	}
	if st == nil {
		return fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	kept := lines[:0]
	found := false
	for _, l := range lines {
		if l.user == user {
			found = true
			continue
		}
		kept = append(kept, l)
	}
	if !found {
		return fmt.Errorf("%s: user %q: %w", path, user, ErrUnknownUser)
	}
	return writeAtomic(target, joinLines(kept), st)
}

// readForUpdate resolves symbolic links (so that the rename replaces the
// file, not the link) and reads and checks the file. A missing file gives no
// lines and a nil FileInfo.
func readForUpdate(path string) (target string, lines []pwLine, st fs.FileInfo, err error) {
	target = path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		target = r
	}
	data, err := os.ReadFile(target)
	if errors.Is(err, fs.ErrNotExist) {
		return target, nil, nil, nil
	}
	if err != nil {
		return "", nil, nil, err
	}
	if st, err = os.Stat(target); err != nil {
		return "", nil, nil, err
	}
	lines, err = parsePasswordFile(path, data)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w (fix the file by hand first)", err)
	}
	return target, lines, st, nil
}

func joinLines(lines []pwLine) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l.raw)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// writeAtomic replaces path with data: a temporary file in the same
// directory with the mode (and, where permitted, the owner) of old, or mode
// 0600 when old is nil, written, fsynced and renamed over path; then the
// directory is fsynced so the rename survives a crash.
func writeAtomic(path string, data []byte, old fs.FileInfo) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	mode := fs.FileMode(0o600)
	if old != nil {
		mode = old.Mode().Perm()
		keepOwner(f, old)
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync() // best effort: not every platform can sync a directory
		d.Close()
	}
	return nil
}
