package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argon2Params are the cost parameters of an argon2id hash.
type argon2Params struct {
	memory  uint32 // KiB
	time    uint32 // passes
	threads uint8
	saltLen int
	keyLen  int
}

// defaultArgon2 are the parameters of new hashes: OWASP's recommendation for
// argon2id (19 MiB, 2 passes, 1 lane), a compromise between resistance to
// guessing and the memory a connect storm costs the broker. Tests lower them.
var defaultArgon2 = argon2Params{memory: 19 * 1024, time: 2, threads: 1, saltLen: 16, keyLen: 32}

// Bounds on the parameters accepted from a file, so that a hash cannot make
// one check take minutes or gigabytes.
const (
	maxArgon2Memory = 256 * 1024 // KiB
	maxArgon2Time   = 64
	minSaltLen      = 8
	minKeyLen       = 16
	maxKeyLen       = 128
	maxBcryptCost   = 16
	bcryptMaxPw     = 72 // bcrypt ignores bytes beyond this; longer passwords never match
)

// hashKind tells the algorithms apart.
type hashKind uint8

const (
	kindArgon2id hashKind = iota + 1
	kindBcrypt
)

// hash is a parsed password hash, ready to verify.
type hash struct {
	kind   hashKind
	a      argon2Params // kindArgon2id
	salt   []byte       // kindArgon2id
	key    []byte       // kindArgon2id
	bcrypt []byte       // kindBcrypt: the whole encoded hash
	cost   int          // kindBcrypt
}

// class identifies the cost parameters of h: hashes of one class take the
// same time to verify.
func (h *hash) class() string {
	if h.kind == kindBcrypt {
		return "bcrypt/" + strconv.Itoa(h.cost)
	}
	return fmt.Sprintf("argon2id/%d/%d/%d/%d", h.a.memory, h.a.time, h.a.threads, len(h.key))
}

// verify reports whether pw is the password of h. It does the full work
// whatever the answer and compares in constant time.
func (h *hash) verify(pw []byte) bool {
	switch h.kind {
	case kindArgon2id:
		k := argon2.IDKey(pw, h.salt, h.a.time, h.a.memory, h.a.threads, uint32(len(h.key)))
		return subtle.ConstantTimeCompare(k, h.key) == 1
	case kindBcrypt:
		if len(pw) > bcryptMaxPw {
			// bcrypt would silently check only the first 72 bytes. Do the
			// work anyway so the answer takes the usual time.
			_ = bcrypt.CompareHashAndPassword(h.bcrypt, pw[:bcryptMaxPw])
			return false
		}
		return bcrypt.CompareHashAndPassword(h.bcrypt, pw) == nil
	}
	return false
}

// dummyLike returns a hash of the same class as h that no password matches
// (a random key, or a random bcrypt digest): verifying against it costs what
// verifying against h costs.
func dummyLike(h *hash) *hash {
	if h.kind == kindBcrypt {
		const alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		b := []byte(fmt.Sprintf("$2a$%02d$", h.cost))
		r := randomBytes(53)
		for _, c := range r {
			b = append(b, alphabet[int(c)%len(alphabet)])
		}
		return &hash{kind: kindBcrypt, bcrypt: b, cost: h.cost}
	}
	return &hash{kind: kindArgon2id, a: h.a, salt: randomBytes(len(h.salt)), key: randomBytes(len(h.key))}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return b
}

// HashPassword returns a new argon2id hash of pw as a PHC string, with a
// random salt. pw must not be empty.
func HashPassword(pw []byte) (string, error) {
	if len(pw) == 0 {
		return "", errors.New("auth: empty password")
	}
	p := defaultArgon2
	salt := randomBytes(p.saltLen)
	key := argon2.IDKey(pw, salt, p.time, p.memory, p.threads, uint32(p.keyLen))
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// parseHash parses an encoded hash, checking that its parameters are within
// the bounds above. Errors do not repeat the hash.
func parseHash(s string) (*hash, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("malformed bcrypt hash: %v", err)
		}
		if len(s) != 60 {
			return nil, errors.New("malformed bcrypt hash: not 60 characters")
		}
		if cost > maxBcryptCost {
			return nil, fmt.Errorf("bcrypt cost %d above the maximum %d", cost, maxBcryptCost)
		}
		return &hash{kind: kindBcrypt, bcrypt: []byte(s), cost: cost}, nil
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return nil, errors.New("unsupported hash: only argon2id among the argon2 variants")
	}
	return nil, errors.New("unsupported hash: want argon2id (\"$argon2id$...\") or bcrypt (\"$2a$\", \"$2b$\", \"$2y$\")")
}

// parseArgon2id parses "$argon2id$v=19$m=M,t=T,p=P$SALT$KEY".
func parseArgon2id(s string) (*hash, error) {
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return nil, errors.New("malformed argon2id hash: want $argon2id$v=19$m=M,t=T,p=P$SALT$KEY")
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, fmt.Errorf("unsupported argon2id version %q (want v=%d)", f[2], argon2.Version)
	}
	var p argon2Params
	seen := 0
	for _, kv := range strings.Split(f[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("malformed argon2id parameter %q", kv)
		}
		switch k {
		case "m":
			p.memory, seen = uint32(n), seen|1
		case "t":
			p.time, seen = uint32(n), seen|2
		case "p":
			if n == 0 || n > 255 {
				return nil, fmt.Errorf("argon2id parallelism %d out of range 1..255", n)
			}
			p.threads, seen = uint8(n), seen|4
		default:
			return nil, fmt.Errorf("unsupported argon2id parameter %q", k)
		}
	}
	switch {
	case seen != 7:
		return nil, errors.New("malformed argon2id hash: want parameters m, t and p")
	case p.time < 1 || p.time > maxArgon2Time:
		return nil, fmt.Errorf("argon2id time %d out of range 1..%d", p.time, maxArgon2Time)
	case p.memory < 8*uint32(p.threads) || p.memory > maxArgon2Memory:
		return nil, fmt.Errorf("argon2id memory %d KiB out of range %d..%d", p.memory, 8*uint32(p.threads), maxArgon2Memory)
	}
	salt, err := base64.RawStdEncoding.DecodeString(f[4])
	if err != nil || len(salt) < minSaltLen {
		return nil, fmt.Errorf("malformed argon2id salt (want unpadded base64 of at least %d bytes)", minSaltLen)
	}
	key, err := base64.RawStdEncoding.DecodeString(f[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return nil, fmt.Errorf("malformed argon2id key (want unpadded base64 of %d..%d bytes)", minKeyLen, maxKeyLen)
	}
	p.saltLen, p.keyLen = len(salt), len(key)
	return &hash{kind: kindArgon2id, a: p, salt: salt, key: key}, nil
}
