package pinreset

import "time"

// Recorded returns m with cmd's outcome in its history (Recent) and the
// next version, changing nothing else. It is how a decision that changes
// nothing (same PIN, CI mismatch, expired, locked) is still claimed on the
// member: two workers that decide the same command at once (a rebalance
// handed the partition over mid-command) then race for the same version,
// and the loser finds the winner's outcome in Recent and answers with it,
// so no outcome is ever recorded that contradicts the member's state (an
// "expired, nothing changed" beside a PIN that was in fact changed).
func (m Member) Recorded(cmd Command, code Code, rules Rules, now time.Time) Member {
	return m.next(cmd, code, rules, now)
}
