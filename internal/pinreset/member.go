package pinreset

import (
	"crypto/subtle"
	"fmt"
	"slices"
	"time"
)

// Member is a wallet member's PIN state, the document the worker owns.
type Member struct {
	ID             string
	ASPID          string
	LoginID        string
	CI             string
	PINHash        string // argon2id PHC string, never a PIN
	Version        int64  // incremented by every change; the compare-and-set guard
	FailedAttempts int    // consecutive wrong currentPassword attempts
	// WrongPINs holds the AttemptKeys of the distinct wrong PINs counted in
	// FailedAttempts, so that the same wrong PIN sent again is not counted
	// again: replaying a captured request cannot lock a member out.
	WrongPINs   []string
	LockedUntil time.Time
	// Recent is the bounded history of the commands that changed this
	// document, newest last. A redelivered command finds itself here and is
	// answered from it instead of being applied twice.
	Recent    []Applied
	UpdatedAt time.Time
}

// Applied records that a command changed a member, and with which outcome.
type Applied struct {
	CorrelationID string
	Code          Code
	At            time.Time
}

// PINHasher is what the rules need of PIN hashing.
type PINHasher interface {
	Hash(pin string) (string, error)
	Verify(pin, encoded string) (ok bool, needsRehash bool, err error)
}

// AheadHasher is a PINHasher that can start hashing a PIN on a core that
// would otherwise be idle. decide uses it to hash the new PIN while the
// current one is verified: with cores to spare, a PIN set then takes one
// hash time instead of two. HashAhead returns nil when no core is idle
// (under load a guess must not take a core from work that is certain); else
// a func that returns the hash once it is done. A hash started and not
// needed (the check failed) is dropped when it ends.
type AheadHasher interface {
	HashAhead(pin string) func() (string, error)
}

// Rules are the tunable member rules.
type Rules struct {
	// LockAfter is the number of consecutive wrong currentPassword attempts
	// that lock the PIN. Zero disables locking. Default 5.
	LockAfter int
	// LockFor is how long a locked PIN stays locked. Default 15 minutes.
	LockFor time.Duration
	// RecentLimit bounds Member.Recent. Default 32.
	RecentLimit int
}

// DefaultRules returns the defaults documented on Rules.
func DefaultRules() Rules { return Rules{LockAfter: 5, LockFor: 15 * time.Minute, RecentLimit: 32} }

// Decision is what deciding a command against a member concluded.
type Decision struct {
	Code Code
	// Changed is true when Member holds a new state that must be stored
	// (a new PIN, a failed attempt counted, a lock).
	Changed bool
	Member  Member
	// Replayed is true when the command had already been applied and its
	// recorded outcome is returned without applying anything.
	Replayed bool
	// Events are the domain events of the change, to be published if and
	// only if Member is stored. Empty unless Changed.
	Events []Event
}

// Find returns the recorded outcome of a command in the member's history.
func (m *Member) Find(correlationID string) (Applied, bool) {
	for _, a := range m.Recent {
		if a.CorrelationID == correlationID {
			return a, true
		}
	}
	return Applied{}, false
}

// Decide applies the rules of SPEC sections 2 and 4 to cmd against m and
// returns the outcome and, when Changed, the member's next state (Version
// already incremented). m itself is not modified. Errors are infrastructure
// failures of the hasher, never rule outcomes.
func (m *Member) Decide(cmd Command, h PINHasher, rules Rules, now time.Time) (Decision, error) {
	if a, ok := m.Find(cmd.CorrelationID); ok {
		return Decision{Code: a.Code, Member: *m, Replayed: true}, nil
	}
	if cmd.Expired(now) {
		return Decision{Code: CodeExpired, Member: *m}, nil
	}
	if cmd.CI != "" && subtle.ConstantTimeCompare([]byte(cmd.CI), []byte(m.CI)) != 1 {
		return Decision{Code: CodeInvalidUserInfo, Member: *m}, nil
	}
	if now.Before(m.LockedUntil) {
		return Decision{Code: CodePINLocked, Member: *m}, nil
	}
	if m.LockedUntil.IsZero() {
		d, err := m.decide(cmd, h, rules, now)
		d.Events = d.Member.stamp(d.Events, cmd)
		return d, err
	}
	// The lock has ended. The first command after it records the unlock,
	// with its event, whatever else it decides.
	cur := *m
	cur.LockedUntil = time.Time{}
	d, err := cur.decide(cmd, h, rules, now)
	if err != nil {
		return d, err
	}
	if !d.Changed {
		d.Member, d.Changed = cur.next(cmd, d.Code, rules, now), true
	}
	d.Events = d.Member.stamp(append([]Event{{Type: EventUnlocked, At: m.LockedUntil}}, d.Events...), cmd)
	return d, nil
}

// decide applies the PIN rules to an unlocked member.
func (m *Member) decide(cmd Command, h PINHasher, rules Rules, now time.Time) (Decision, error) {
	var ahead func() (string, error)
	if a, ok := h.(AheadHasher); ok && (cmd.Kind == KindChange || cmd.Kind == KindReset) {
		ahead = a.HashAhead(cmd.NewPIN)
	}
	switch cmd.Kind {
	case KindChange:
		ok, _, err := h.Verify(cmd.CurrentPIN, m.PINHash)
		if err != nil {
			return Decision{}, fmt.Errorf("verify current pin of member %s: %w", m.ID, err)
		}
		if !ok {
			return m.failedAttempt(cmd, rules, now), nil
		}
		if subtle.ConstantTimeCompare([]byte(cmd.NewPIN), []byte(cmd.CurrentPIN)) == 1 {
			return Decision{Code: CodeSamePIN, Member: *m}, nil
		}
	case KindReset:
		same, _, err := h.Verify(cmd.NewPIN, m.PINHash)
		if err != nil {
			return Decision{}, fmt.Errorf("compare new pin of member %s: %w", m.ID, err)
		}
		if same {
			return Decision{Code: CodeSamePIN, Member: *m}, nil
		}
	default:
		return Decision{}, fmt.Errorf("command %s: unknown kind %q", cmd.CorrelationID, cmd.Kind)
	}

	var hash string
	var err error
	if ahead != nil {
		hash, err = ahead()
	} else {
		hash, err = h.Hash(cmd.NewPIN)
	}
	if err != nil {
		return Decision{}, fmt.Errorf("hash new pin of member %s: %w", m.ID, err)
	}
	next := m.next(cmd, CodeSuccess, rules, now)
	next.PINHash = hash
	next.FailedAttempts = 0
	next.WrongPINs = nil
	next.LockedUntil = time.Time{}
	return Decision{Code: CodeSuccess, Changed: true, Member: next,
		Events: []Event{{Type: EventPINSet, Kind: cmd.Kind, At: now}}}, nil
}

// failedAttempt counts a wrong currentPassword and locks the PIN when the
// count reaches rules.LockAfter. That attempt still answers 001_035 (it was a
// wrong PIN); the attempts after it answer CodePINLocked. The command is recorded in Recent so that a
// redelivery of it is not counted twice.
func (m *Member) failedAttempt(cmd Command, rules Rules, now time.Time) Decision {
	code := CodeInvalidUserInfo
	if cmd.AttemptKey != "" && slices.Contains(m.WrongPINs, cmd.AttemptKey) {
		// This wrong PIN was counted already.
		return Decision{Code: code, Member: *m}
	}
	next := m.next(cmd, code, rules, now)
	next.FailedAttempts++
	if cmd.AttemptKey != "" {
		next.WrongPINs = append(slices.Clone(m.WrongPINs), cmd.AttemptKey)
	}
	d := Decision{Code: code, Changed: true, Member: next}
	if rules.LockAfter > 0 && next.FailedAttempts >= rules.LockAfter {
		d.Member.LockedUntil = now.Add(rules.LockFor).UTC()
		d.Member.FailedAttempts = 0
		d.Member.WrongPINs = nil
		d.Events = []Event{{Type: EventLocked, At: now, LockedUntil: d.Member.LockedUntil}}
	}
	return d
}

// next copies m with the version incremented and cmd recorded in Recent.
func (m *Member) next(cmd Command, code Code, rules Rules, now time.Time) Member {
	n := *m
	n.Version++
	n.UpdatedAt = now.UTC()
	limit := rules.RecentLimit
	if limit <= 0 {
		limit = DefaultRules().RecentLimit
	}
	recent := append(make([]Applied, 0, len(m.Recent)+1), m.Recent...)
	recent = append(recent, Applied{CorrelationID: cmd.CorrelationID, Code: code, At: now.UTC()})
	if len(recent) > limit {
		recent = recent[len(recent)-limit:]
	}
	n.Recent = recent
	return n
}
