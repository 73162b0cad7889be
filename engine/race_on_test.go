//go:build race

package engine_test

// raceEnabled scales down test workloads under the race detector (which also
// turns on Pebble's invariant checks and slows the broker ten times over);
// CI runs them without it too.
const raceEnabled = true
