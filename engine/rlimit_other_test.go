//go:build !unix

package engine_test

// maxTestConns is how many connections a test may hold open at once.
func maxTestConns() int { return 400 }
