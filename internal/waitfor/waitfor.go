// Package waitfor lets tests wait for a condition, with a deadline, instead
// of sleeping for a guessed while: a test goes on as soon as what it waits
// for holds, and says what did not happen when it never does.
package waitfor

import "time"

// Interval is how often Until checks its condition: 50 ms.
const Interval = 50 * time.Millisecond

// Until checks cond at once and then Interval after each check until it
// holds or d has passed, and reports whether it held (checked once more at
// the deadline). cond runs on the caller's goroutine, so it may call
// t.Fatal.
func Until(d time.Duration, cond func() bool) bool {
	return Every(Interval, d, cond)
}

// Every is Until pausing interval between checks: for a condition that
// costs something to check (reading a whole topic, a request to a
// process), or that is a client's own polling pace. The pause follows each
// check, however long the check took, so a slow condition is not asked
// again at once.
func Every(interval, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(interval, left))
	}
}
