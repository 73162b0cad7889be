package main

import "syscall"

// childProcAttr makes the kernel kill the broker if the test process dies
// (a test timeout panic, say) so that no broker outlives its test.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// groupProcAttr is childProcAttr in a process group of its own, so that a
// program that forks helpers (Chromium) can be killed whole.
func groupProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup kills the process group of pid (started with groupProcAttr).
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
