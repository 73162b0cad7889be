//go:build unix

package engine_test

import "syscall"

// maxTestConns is how many connections a test may hold open at once: each
// takes two descriptors in this process (client and server side).
func maxTestConns() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 400
	}
	return max(100, int(r.Cur)/2-200)
}
