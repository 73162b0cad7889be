//go:build race

package engine_test

// raceEnabled shortens the heaviest tests: the race detector slows the
// broker and Pebble ten times over, and CI also runs them without it.
const raceEnabled = true
