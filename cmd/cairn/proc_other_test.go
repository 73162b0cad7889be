//go:build !linux

package main

import "syscall"

// childProcAttr: only Linux can tie the broker's life to the test process.
func childProcAttr() *syscall.SysProcAttr { return nil }

func groupProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(int) {}
