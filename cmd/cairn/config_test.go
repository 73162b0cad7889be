package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// runServeConfig runs `cairn serve ARGS` with the broker replaced by a probe
// that captures the merged configuration.
func runServeConfig(t *testing.T, args ...string) (serveConfig, error) {
	t.Helper()
	app := newApp()
	var got serveConfig
	for _, cmd := range app.Commands {
		if cmd.Name == "serve" {
			cmd.Action = func(c *cli.Context) error {
				var err error
				got, err = loadServeConfig(c)
				return err
			}
		}
	}
	app.Writer, app.ErrWriter = os.Stderr, os.Stderr
	err := app.Run(append([]string{"cairn", "serve"}, args...))
	return got, err
}

func TestServeConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cairn.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:2001\ndata: /from/file\nmax-inflight: 7\nconnect-timeout: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("defaults", func(t *testing.T) {
		cfg, err := runServeConfig(t)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Listen != "127.0.0.1:1883" || cfg.Data != "./cairn-data" || cfg.Engine.MaxInflight != 64 {
			t.Fatalf("defaults: %+v", cfg)
		}
	})
	t.Run("file", func(t *testing.T) {
		cfg, err := runServeConfig(t, "--config", file)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Listen != "127.0.0.1:2001" || cfg.Data != "/from/file" || cfg.Engine.MaxInflight != 7 || cfg.Engine.ConnectTimeout != 3*time.Second {
			t.Fatalf("from file: %+v", cfg)
		}
	})
	t.Run("env beats file", func(t *testing.T) {
		t.Setenv("CAIRN_MAX_INFLIGHT", "9")
		cfg, err := runServeConfig(t, "--config", file)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Engine.MaxInflight != 9 || cfg.Data != "/from/file" {
			t.Fatalf("env over file: %+v", cfg)
		}
	})
	t.Run("flag beats env and file", func(t *testing.T) {
		t.Setenv("CAIRN_MAX_INFLIGHT", "9")
		cfg, err := runServeConfig(t, "--config", file, "--max-inflight", "11", "--data", "/from/flag")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Engine.MaxInflight != 11 || cfg.Data != "/from/flag" || cfg.Listen != "127.0.0.1:2001" {
			t.Fatalf("flag over env and file: %+v", cfg)
		}
	})
	t.Run("config file from env", func(t *testing.T) {
		t.Setenv("CAIRN_CONFIG", file)
		cfg, err := runServeConfig(t)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Data != "/from/file" {
			t.Fatalf("CAIRN_CONFIG not read: %+v", cfg)
		}
	})
}

func TestServeConfigErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--max-inflight", "0"}, "max-inflight"},
		{[]string{"--max-inflight", "70000"}, "max-inflight"},
		{[]string{"--max-packet-size", "10"}, "max-packet-size"},
		{[]string{"--connect-timeout", "-1s"}, "connect-timeout"},
		{[]string{"--config", "/does/not/exist.yaml"}, "exist.yaml"},
		{[]string{"--listen", ""}, "listen"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := runServeConfig(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// A value the file gave that is found bad only when it is put to use (a
// size, a TTL, a range) is reported with the file and line it came from; the
// same value from a flag is reported as the flag's.
func TestServeConfigBadValueLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cairn.yaml")
	yml := "compact-interval: 1m\nqueue-limit-bytes: lots\nretained-ttl: soon\n"
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runServeConfig(t, "--config", file)
	if want := "config " + file + " line 3: retained-ttl:"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v, want %q", err, want)
	}
	_, err = runServeConfig(t, "--config", file, "--retained-ttl", "1h")
	if want := "config " + file + " line 2: queue-limit-bytes: \"lots\" is not a size"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v, want %q", err, want)
	}
	_, err = runServeConfig(t, "--config", file, "--retained-ttl", "1h", "--queue-limit-bytes", "zz")
	if err == nil || strings.HasPrefix(err.Error(), "config ") || !strings.Contains(err.Error(), `queue-limit-bytes: "zz"`) {
		t.Fatalf("a bad flag value: err %v, want it reported as the flag's", err)
	}
}
