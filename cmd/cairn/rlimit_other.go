//go:build !unix

package main

import "log/slog"

// checkFileLimit has nothing to check on this platform.
func checkFileLimit(*slog.Logger, int) {}
