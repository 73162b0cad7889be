package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-mqtt/cairn/wire"
)

// Pebble files gone from a store (a table, the manifest) are damage, said
// as such by every tool with what to do, and a directory without a store
// is not turned into one by compact.
func TestToolsOnMissingStoreFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	lb := startLive(t, dir, nil)
	p := dialMQTT(t, lb.addr, &wire.Connect{ClientID: "mf-pub", Version: wire.V311, CleanStart: true})
	p.publish(&wire.Publish{Topic: "mf/r", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("kept")})
	p.disconnect()
	lb.stop()
	noManifest := filepath.Join(t.TempDir(), "no-manifest")
	copyDir(t, dir, noManifest)

	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatalf("no table in %s to delete", dir)
	}
	if err := os.Remove(tables[0]); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"recover", "--check"}, {"recover", "--repair", "--backup", filepath.Join(t.TempDir(), "b")}} {
		_, err := runCLI(t, append(args, "--data", dir)...)
		if err == nil || !strings.Contains(err.Error(), "is damaged: a file it needs is missing") || !strings.Contains(err.Error(), "restore a backup") {
			t.Fatalf("%v on a store without one of its tables: %v", args, err)
		}
	}
	if _, err := runCLI(t, "inspect", "sessions", "--data", dir); err == nil || !strings.Contains(err.Error(), "is damaged") ||
		!strings.Contains(err.Error(), "cairn recover --check --data "+dir) {
		t.Fatalf("inspect on a store without one of its tables: %v", err)
	}
	if err := damagedStoreErr(dir, os.ErrNotExist); err == nil || !strings.Contains(err.Error(), "will not start without its data") {
		t.Fatalf("serve's refusal of a store with a missing file: %v", err)
	}

	manifests, _ := filepath.Glob(filepath.Join(noManifest, "MANIFEST-*"))
	for _, m := range manifests {
		_ = os.Remove(m)
	}
	if _, err := runCLI(t, "recover", "--check", "--data", noManifest); err == nil || !strings.Contains(err.Error(), "has lost its Pebble manifest") {
		t.Fatalf("recover --check on a store without its manifest: %v", err)
	}

	empty := t.TempDir()
	if _, err := runCLI(t, "compact", "--data", empty); err == nil || !strings.Contains(err.Error(), "no store in "+empty) {
		t.Fatalf("compact on an empty directory: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(empty, "MANIFEST-*")); len(m) != 0 {
		t.Fatalf("compact created a store in an empty directory: %v", m)
	}
}
