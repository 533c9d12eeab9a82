package worker

import (
	"runtime"
	"syscall"
	"time"
)

// rusageThread is Linux's RUSAGE_THREAD: the calling thread's usage.
const rusageThread = 1

// threadCPU locks the goroutine to its thread and returns a func that
// unlocks it and returns the CPU time (user and system) the thread used
// since: the hash's own CPU, whatever else the machine runs. argon2id with
// one lane runs on the calling goroutine, so that thread is where it runs.
func threadCPU() func() time.Duration {
	runtime.LockOSThread()
	start, ok := rusage()
	return func() time.Duration {
		defer runtime.UnlockOSThread()
		end, ok2 := rusage()
		if !ok || !ok2 {
			return 0
		}
		return end - start
	}
}

func rusage() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
