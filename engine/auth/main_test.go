package auth

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// productionArgon2 keeps the real defaults; tests hash with cheap ones.
var productionArgon2 = defaultArgon2

func TestMain(m *testing.M) {
	defaultArgon2 = argon2Params{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32}
	goleak.VerifyTestMain(m)
}

// writeFile writes a file in a fresh temporary directory and returns its
// path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
