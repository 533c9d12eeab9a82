//go:build !linux

package sandbox

import "syscall"

// dieWithParent: only Linux has a parent-death signal; elsewhere a server
// left running is stopped by the next start (stopSurvivor).
func dieWithParent(*syscall.SysProcAttr, syscall.Signal) {}

// syncFS: without syncfs(2), sync(2) writes every file system's dirty data.
func syncFS(string) error {
	syscall.Sync()
	return nil
}
