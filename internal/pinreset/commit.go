package pinreset

import (
	"errors"
	"time"
)

// Outcome is the recorded outcome of one command: what makes a retry
// answer the same, a reuse of the correlation id a 409, and a status query
// possible. It holds no secret: the request is only a keyed fingerprint.
type Outcome struct {
	ASPID         string
	CorrelationID string
	Kind          Kind
	// Fingerprint is the keyed fingerprint of the command's Content (under
	// the current fingerprint key when it was decided); "" for a command
	// rejected before it could be read.
	Fingerprint string
	Code        Code
	MemberID    string // "" when no member matched
	AcceptedAt  time.Time
	CompletedAt time.Time
	WorkerID    string
}

// Commit is one decision about a member, stored as one atomic write: the
// member's next state (Version already incremented, the command in its
// history), the outcome, and the events the change announces (the outbox
// lives with the state it announces). A crash leaves all of it or none.
type Commit struct {
	Outcome Outcome
	Member  Member
	Events  []Event
	// Settled reports that the decision is the member's current state with
	// its events published and its audit record appended (the last step of
	// a decision, see the README's "How it works"). A commit that is not
	// settled owes those steps; a redelivery of its command, or the next
	// decision about the member after SettleLease, completes them.
	Settled bool
}

// Errors of the store, in domain terms.
var (
	// ErrMemberNotFound: no member has the loginId in the ASP.
	ErrMemberNotFound = errors.New("member not found")
	// ErrNoOutcome: the correlation id has no recorded outcome.
	ErrNoOutcome = errors.New("no outcome recorded")
	// ErrBusy: the member's previous decision is committed but not settled
	// yet (its worker is between the commit and the settlement, or died
	// there less than SettleLease ago). Transient: try again later.
	ErrBusy = errors.New("member's previous decision is still being settled")
	// ErrDamagedMember: the member's stored document cannot be decided on
	// (a malformed PIN hash, a document that does not decode, a field it
	// must have missing). No retry fixes it; an operator repairs the
	// member. See DamagedMemberError.
	ErrDamagedMember = errors.New("member document is damaged")
)

// DamagedMemberError names the member whose document is damaged and what
// is wrong with it; it matches ErrDamagedMember. Reason says what, never a
// value of the document (it may hold a hash or a CI).
type DamagedMemberError struct {
	MemberID string
	Reason   string
}

func (e *DamagedMemberError) Error() string {
	return "member " + e.MemberID + ": " + ErrDamagedMember.Error() + ": " + e.Reason
}

func (e *DamagedMemberError) Unwrap() error { return ErrDamagedMember }

// DecidedError says that the command's correlation id already has an
// outcome: a redelivery (the same content), or a reuse of the id (another
// content). Commit is what was recorded; when it has a member and is not
// settled, it owes the settlement.
type DecidedError struct{ Commit Commit }

func (e *DecidedError) Error() string {
	return "correlation id " + e.Commit.Outcome.CorrelationID + " already decided"
}

// UnsettledError says that the member's previous decision has been
// committed and left unsettled for longer than SettleLease: its worker died
// between the commit and the settlement. The caller settles Commit (its
// events, its audit record, then the member's state) before deciding again.
type UnsettledError struct{ Commit Commit }

func (e *UnsettledError) Error() string {
	return "decision " + e.Commit.Outcome.CorrelationID + " of member " + e.Commit.Member.ID + " left unsettled"
}

// SettleLease is how long a committed decision belongs to the worker that
// committed it: until then only that worker (or a redelivery of the same
// command) publishes its events, and the member's next decision waits
// (ErrBusy). It is longer than one attempt at a command (30 s by default)
// plus the broker writer's longest delivery, so that a writer past its lease
// can no longer publish: a member's events then go out in version order,
// never an earlier version after a later one.
const SettleLease = 2 * time.Minute

// SetClaim records that a request content set the member's PIN: the same
// content under another correlation id within the replay window is a replay
// (KMV1 binds only the body) and is refused, not applied again.
type SetClaim struct {
	Fingerprint   string // keyed fingerprint of Command.Content, never the PINs
	CorrelationID string
	At            time.Time
}

// AuditLink is the head of the member's audit chain as its last decision
// left it: the next decision's record follows it without a search.
type AuditLink struct {
	Seq  int64
	Hash string
}
