package main

import "syscall"

// childProcAttr makes the kernel kill the broker if the test process dies
// (a test timeout panic, say) so that no broker outlives its test.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
