package main

import (
	"os"
	"testing"
)

// requireToolsEnv, when set (.ci/run sets it after installing Chromium,
// Paho Python and the mosquitto clients), turns a missing external tool
// from a skip into a failure: CI must run the browser and interop tests,
// not report them skipped.
const requireToolsEnv = "CAIRN_REQUIRE_TOOLS"

// missingTool skips t for want of an external tool, or fails it under
// CAIRN_REQUIRE_TOOLS.
func missingTool(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(requireToolsEnv) != "" {
		t.Fatalf(format+" ("+requireToolsEnv+" is set: the tool is required)", args...)
	}
	t.Skipf(format, args...)
}
