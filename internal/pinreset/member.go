package pinreset

import (
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Member is a wallet member's PIN state, the document the worker owns.
type Member struct {
	ID      string
	ASPID   string
	LoginID string
	CI      string
	PINHash string // argon2id PHC string, never a PIN
	Version int64  // incremented by every change; the compare-and-set guard
	// FailedAttempts counts the distinct wrong currentPassword attempts
	// since the last set or lock.
	FailedAttempts int
	// WrongAttempts remembers the wrong currentPassword attempts already
	// counted (their attempt keys), newest last, at most Rules.AttemptMemory.
	// A change whose attempt key is here is answered 001_035 at once: no
	// argon2 work, nothing counted. The memory outlives locks and successes,
	// because a KMV1 capture can be replayed for ever with fresh headers:
	// were it cleared, the same five captures would lock the member again
	// after every lock. A set forgets only the entries of its new PIN, the
	// one PIN that is no longer wrong.
	WrongAttempts []Attempt
	LockedUntil   time.Time
	// Recent is the bounded history of the commands that changed this
	// document, newest last. A redelivered command finds itself here and is
	// answered from it instead of being applied twice.
	Recent []Applied
	// Sets are the contents that set this PIN within Rules.ReplayWindow
	// (KMV1 commands only), newest last, one per content: the replay
	// claims (see Decide). Only time removes a claim; Rules.MaxSetClaims
	// bounds how many can be live at once.
	Sets []SetClaim
	// Outbox holds the decisions whose consequences (events, audit record,
	// outcome record) are not all delivered yet, oldest first; see
	// Pending. Usually empty: the deciding worker delivers right after
	// its answer.
	Outbox []Pending
	// Audit is the head of the member's audit chain: the record of its
	// last decision, which the next decision's record follows.
	Audit     AuditLink
	UpdatedAt time.Time
}

// Applied records that a command changed a member, and with which outcome.
type Applied struct {
	CorrelationID string
	Code          Code
	At            time.Time
	// Fingerprint is the command's content fingerprint (ContentKeys[0]),
	// to tell a redelivery from a reuse of its correlation id.
	Fingerprint string
}

// Attempt is a wrong currentPassword attempt that was counted.
type Attempt struct {
	Key string    // its attempt key: a keyed fingerprint, never the PIN
	At  time.Time // when it was counted (UTC), for operators and audits
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
	// AttemptMemory bounds Member.WrongAttempts: the most recent this many
	// distinct wrong attempts are remembered. Default 32. Only a wrong
	// attempt not remembered is counted and remembered, and an attacker
	// without the ASP's secret cannot make a new one (the MAC covers the
	// body), so only the member's own mistakes push old entries out. To
	// lock by replay an attacker needs captures of AttemptMemory +
	// LockAfter (37) distinct wrong PINs of one member, years of a
	// member's typing errors; each entry costs about 80 bytes of the
	// member document, so 32 keeps it under 3 KiB.
	AttemptMemory int
	// ReplayWindow is how long the content of a KMV1 command that set the
	// PIN stays claimed by its correlation id: the same content under
	// another id in that time is refused with CodeDuplicateRequest
	// (PINRESET_REPLAY_WINDOW). Default 24 h.
	ReplayWindow time.Duration
	// MaxSetClaims bounds Member.Sets: a KMV1 set whose claim would be one
	// too many within ReplayWindow is refused with CodeTooManyRequests
	// and changes nothing, until the oldest claim ages out. Claims are
	// never dropped early, since a dropped claim lets its captured request
	// set its PIN again. Each costs about 100 bytes of the member
	// document. Default 1,000: no member sets that many PINs in a day, and
	// the document stays far below MongoDB's 16 MiB.
	MaxSetClaims int
}

// DefaultRules returns the defaults documented on Rules.
func DefaultRules() Rules {
	return Rules{LockAfter: 5, LockFor: 15 * time.Minute, RecentLimit: 32, AttemptMemory: 32, ReplayWindow: DefaultReplayWindow,
		MaxSetClaims: 1000}
}

// DefaultReplayWindow is Rules.ReplayWindow's default.
const DefaultReplayWindow = 24 * time.Hour

func (r Rules) replayWindow() time.Duration {
	if r.ReplayWindow <= 0 {
		return DefaultReplayWindow
	}
	return r.ReplayWindow
}

// Decision is what deciding a command against a member concluded.
type Decision struct {
	Code Code
	// Changed is true when Member holds a new state that must be stored
	// (a new PIN, a failed attempt counted, a lock).
	Changed bool
	Member  Member
	// Replayed is true when the command had already been applied and its
	// recorded outcome is returned without applying anything; Applied is
	// that record (its outcome, time and content fingerprint).
	Replayed bool
	Applied  Applied
	// Events are the domain events of the change, to be published if and
	// only if Member is stored. Empty unless Changed.
	Events []Event
}

// Find returns the recorded outcome of a command in the member's history
// or its outbox.
func (m *Member) Find(correlationID string) (Applied, bool) {
	for _, a := range m.Recent {
		if a.CorrelationID == correlationID {
			return a, true
		}
	}
	for _, p := range m.Outbox {
		if p.Outcome.CorrelationID == correlationID {
			return Applied{CorrelationID: correlationID, Code: p.Outcome.Code, At: p.Outcome.CompletedAt, Fingerprint: p.Outcome.Fingerprint}, true
		}
	}
	return Applied{}, false
}

// ClockSkew is how far the clocks of an ingress and a worker may disagree.
// MayHaveForgotten allows it.
const ClockSkew = time.Minute

// MayHaveForgotten reports whether cmd may have been decided about m and
// its entry pushed out of Recent since (RecentLimit later decisions, each
// at or after the command's acceptance): only its outcome record can tell
// then. Rare: it takes a member with RecentLimit decisions since cmd was
// accepted.
func (m *Member) MayHaveForgotten(cmd Command, rules Rules) bool {
	if len(m.Recent) < rules.recentLimit() {
		return false
	}
	return !cmd.AcceptedAt.Add(-ClockSkew).After(m.Recent[0].At)
}

// Commit returns the state that commits decision d of cmd about m: the
// next version with cmd in Recent (a decision that changes nothing is
// recorded all the same, so that a redelivery and a second owner of the
// command find it), and its consequences in the Outbox. o is the
// command's outcome as the caller stamps it.
func (m Member) Commit(cmd Command, d Decision, o Outcome, rules Rules, now time.Time) Member {
	next := d.Member
	if !d.Changed {
		next = m.next(cmd, d.Code, rules, now)
	}
	o.MemberID = m.ID
	next.Outbox = append(append(make([]Pending, 0, len(m.Outbox)+1), m.Outbox...),
		Pending{Version: next.Version, Outcome: o, Events: d.Events})
	return next
}

// Withdraw decides cmd as withdrawn by an operator (its parked copy
// purged, pwctl parked purge): the rejection, which changes nothing but is
// committed like any decision, so that no later copy of the command
// decides it; a command decided already keeps its outcome.
func (m *Member) Withdraw(cmd Command) Decision {
	if a, ok := m.Find(cmd.CorrelationID); ok {
		return Decision{Code: a.Code, Member: *m, Replayed: true, Applied: a}
	}
	return Decision{Code: CodeRejected, Member: *m}
}

// Decide applies the rules of SPEC sections 2 and 4 to cmd against m and
// returns the outcome and, when Changed, the member's next state (Version
// already incremented). m itself is not modified. Errors are infrastructure
// failures of the hasher, never rule outcomes.
func (m *Member) Decide(cmd Command, h PINHasher, rules Rules, now time.Time) (Decision, error) {
	if a, ok := m.Find(cmd.CorrelationID); ok {
		return Decision{Code: a.Code, Member: *m, Replayed: true, Applied: a}, nil
	}
	if err := m.Check(); err != nil {
		return Decision{}, err
	}
	if m.replayed(cmd, rules, now) {
		return Decision{Code: CodeDuplicateRequest, Member: *m}, nil
	}
	if m.claimsFull(cmd, rules, now) {
		return Decision{Code: CodeTooManyRequests, Member: *m}, nil
	}
	if cmd.Expired(now) {
		return Decision{Code: CodeExpired, Member: *m}, nil
	}
	if cmd.CI != "" && subtle.ConstantTimeCompare([]byte(cmd.CI), []byte(m.CI)) != 1 {
		return Decision{Code: CodeInvalidUserInfo, Member: *m}, nil
	}
	if now.Before(m.LockedUntil) {
		if cmd.Kind == KindChange {
			// Nothing is verified while locked: the answer tells the
			// member the way out, a reset.
			return Decision{Code: CodeAttemptsExceeded, Member: *m}, nil
		}
		return m.resetWhileLocked(cmd, h, rules, now)
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

// Check reports a member document missing a field every decision needs,
// as a *DamagedMemberError.
func (m *Member) Check() error {
	var missing []string
	for _, f := range []struct {
		name string
		ok   bool
	}{{"_id", m.ID != ""}, {"aspId", m.ASPID != ""}, {"loginId", m.LoginID != ""}, {"pinHash", m.PINHash != ""}, {"version", m.Version > 0}} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return &DamagedMemberError{MemberID: m.ID, Reason: "missing " + strings.Join(missing, ", ")}
	}
	return nil
}

// resetWhileLocked decides a reset of a locked member: a reset is the way
// out of a lock. A reset that sets the PIN clears the lock and the count,
// and its password.changed event says it unlocked the PIN; one refused (the
// same PIN) changes nothing, and the lock stays.
func (m *Member) resetWhileLocked(cmd Command, h PINHasher, rules Rules, now time.Time) (Decision, error) {
	cur := *m
	cur.LockedUntil = time.Time{}
	d, err := cur.decide(cmd, h, rules, now)
	if err != nil {
		return Decision{}, err
	}
	if !d.Changed {
		return Decision{Code: d.Code, Member: *m}, nil
	}
	for i := range d.Events {
		if d.Events[i].Type == EventPINSet {
			d.Events[i].Unlocked = true
		}
	}
	d.Events = d.Member.stamp(d.Events, cmd)
	return d, nil
}

// replayed reports whether cmd's content set this PIN under another
// correlation id within the replay window. KMV1 binds only the body, so a
// captured request can be sent again under a fresh correlation id and
// fresh times; deciding it again is harmless but for content that set a
// PIN, which would set it again (a captured reset undoing a later change).
// A wrong PIN sent again is answered from WrongAttempts instead, and any
// other refusal changed nothing and may be retried. KMV2 binds the
// correlation id and the times: its replay is stale (401 at the ingress) or
// has the same correlation id (answered from Recent), so the rule is skipped
// and a member may set an earlier PIN again.
func (m *Member) replayed(cmd Command, rules Rules, now time.Time) bool {
	if cmd.Auth == SchemeKMV2 {
		return false
	}
	for _, c := range m.Sets {
		if c.CorrelationID != cmd.CorrelationID && now.Sub(c.At) < rules.replayWindow() && slices.Contains(cmd.ContentKeys, c.Fingerprint) {
			return true
		}
	}
	return false
}

// claimsFull reports whether a set by cmd would need one replay claim more
// than rules.MaxSetClaims within the window.
func (m *Member) claimsFull(cmd Command, rules Rules, now time.Time) bool {
	if cmd.Auth == SchemeKMV2 || len(cmd.ContentKeys) == 0 {
		return false
	}
	return len(live(m.Sets, cmd, rules, now)) >= rules.maxSetClaims()
}

// live returns the claims of sets still inside the window, but any of
// cmd's own content (its claim is renewed, not doubled).
func live(sets []SetClaim, cmd Command, rules Rules, now time.Time) []SetClaim {
	out := make([]SetClaim, 0, len(sets)+1)
	for _, c := range sets {
		if now.Sub(c.At) < rules.replayWindow() && !slices.Contains(cmd.ContentKeys, c.Fingerprint) {
			out = append(out, c)
		}
	}
	return out
}

// claimed returns sets with cmd's content claimed at now and the claims
// past the window dropped. Decide has refused the set when that would
// exceed rules.MaxSetClaims.
func claimed(sets []SetClaim, cmd Command, rules Rules, now time.Time) []SetClaim {
	if cmd.Auth == SchemeKMV2 || len(cmd.ContentKeys) == 0 {
		return sets
	}
	return append(live(sets, cmd, rules, now), SetClaim{Fingerprint: cmd.ContentKeys[0], CorrelationID: cmd.CorrelationID, At: now.UTC()})
}

func (r Rules) maxSetClaims() int {
	if r.MaxSetClaims <= 0 {
		return DefaultRules().MaxSetClaims
	}
	return r.MaxSetClaims
}

func (r Rules) recentLimit() int {
	if r.RecentLimit <= 0 {
		return DefaultRules().RecentLimit
	}
	return r.RecentLimit
}

// remembers reports whether one of keys (an attempt under each fingerprint
// key) is a remembered wrong attempt.
func (m *Member) remembers(keys []string) bool {
	for _, a := range m.WrongAttempts {
		if slices.Contains(keys, a.Key) {
			return true
		}
	}
	return false
}

// decide applies the PIN rules to an unlocked member.
func (m *Member) decide(cmd Command, h PINHasher, rules Rules, now time.Time) (Decision, error) {
	if cmd.Kind == KindChange && m.remembers(cmd.AttemptKeys) {
		// This wrong currentPassword was counted before: a replayed capture
		// (KMV1 binds only the body) or the member trying it again. The PIN
		// has not been set to it since (a set forgets its own PIN), so it is
		// still wrong. Answered without argon2 work, neither the check nor
		// the new PIN's hash ahead: a storm of replays costs no CPU.
		return Decision{Code: CodeInvalidUserInfo, Member: *m}, nil
	}
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
	next.WrongAttempts = forget(m.WrongAttempts, cmd.NewPINKeys)
	next.LockedUntil = time.Time{}
	next.Sets = claimed(m.Sets, cmd, rules, now)
	return Decision{Code: CodeSuccess, Changed: true, Member: next,
		Events: []Event{{Type: EventPINSet, Kind: cmd.Kind, At: now}}}, nil
}

// failedAttempt counts a wrong currentPassword (one not remembered: decide
// answers those before), remembers it, and locks the PIN when the count
// reaches rules.LockAfter. That attempt still answers 001_035 (it was a
// wrong PIN); the changes after it answer CodeAttemptsExceeded. The command
// is recorded in Recent so that a redelivery of it is not counted twice.
// The lock clears the count, not the memory: the attempts that locked stay
// remembered, so replaying them cannot lock again.
func (m *Member) failedAttempt(cmd Command, rules Rules, now time.Time) Decision {
	code := CodeInvalidUserInfo
	next := m.next(cmd, code, rules, now)
	next.FailedAttempts++
	if len(cmd.AttemptKeys) > 0 {
		next.WrongAttempts = remember(m.WrongAttempts, Attempt{Key: cmd.AttemptKeys[0], At: now.UTC()}, rules.attemptMemory())
	}
	d := Decision{Code: code, Changed: true, Member: next}
	if rules.LockAfter > 0 && next.FailedAttempts >= rules.LockAfter {
		d.Member.LockedUntil = now.Add(rules.LockFor).UTC()
		d.Member.FailedAttempts = 0
		d.Events = []Event{{Type: EventLocked, At: now, LockedUntil: d.Member.LockedUntil}}
	}
	return d
}

func (r Rules) attemptMemory() int {
	if r.AttemptMemory <= 0 {
		return DefaultRules().AttemptMemory
	}
	return r.AttemptMemory
}

// remember returns a copy of mem with a appended, the oldest entries
// dropped beyond limit.
func remember(mem []Attempt, a Attempt, limit int) []Attempt {
	out := append(make([]Attempt, 0, len(mem)+1), mem...)
	out = append(out, a)
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// forget returns a copy of mem without the entries whose key is one of
// keys (the attempt keys of a PIN just set). nil when nothing is left.
func forget(mem []Attempt, keys []string) []Attempt {
	var out []Attempt
	for _, a := range mem {
		if !slices.Contains(keys, a.Key) {
			out = append(out, a)
		}
	}
	return out
}

// next copies m with the version incremented and cmd recorded in Recent.
func (m *Member) next(cmd Command, code Code, rules Rules, now time.Time) Member {
	n := *m
	n.Version++
	n.UpdatedAt = now.UTC()
	limit := rules.recentLimit()
	recent := append(make([]Applied, 0, len(m.Recent)+1), m.Recent...)
	a := Applied{CorrelationID: cmd.CorrelationID, Code: code, At: now.UTC()}
	if len(cmd.ContentKeys) > 0 {
		a.Fingerprint = cmd.ContentKeys[0]
	}
	recent = append(recent, a)
	if len(recent) > limit {
		recent = recent[len(recent)-limit:]
	}
	n.Recent = recent
	return n
}
