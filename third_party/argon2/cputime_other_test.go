//go:build !unix

package argon2

import "time"

func cpuTime() (time.Duration, bool) { return 0, false }
