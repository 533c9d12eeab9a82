//go:build !linux

package worker

import "time"

// threadCPU measures wall time where no per-thread CPU clock is at hand.
func threadCPU() func() time.Duration {
	start := time.Now()
	return func() time.Duration { return time.Since(start) }
}
