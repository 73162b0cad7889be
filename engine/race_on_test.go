//go:build race

package engine_test

// raceEnabled scales down test workloads under the race detector (which also
// turns on Pebble's invariant checks), keeping the cut-point count.
const raceEnabled = true
