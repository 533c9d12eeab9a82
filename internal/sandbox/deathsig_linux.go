package sandbox

import "syscall"

// dieWithParent has the kernel send sig to the child when this process dies.
func dieWithParent(a *syscall.SysProcAttr, sig syscall.Signal) { a.Pdeathsig = sig }
