package main

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes cmd die with the test binary: when a test times out,
// its panic would otherwise leave the workers, ingress and infrastructure it
// started running, holding ports and CPU (seen on CI, 2026-12-01).
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
