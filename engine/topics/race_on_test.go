//go:build race

package topics

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts are meaningless and those assertions are skipped.
const raceEnabled = true
