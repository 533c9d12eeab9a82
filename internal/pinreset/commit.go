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

// Pending is a decision about a member whose consequences are not all
// delivered yet: its events, its audit record and, last, its outcome
// record. The decision that makes it puts it in the member's Outbox in the
// same conditional update that commits the member's next state, so a
// crash leaves both or neither. Delivering it is idempotent (event ids,
// the audit record and the outcome's key are fixed by the decision); once
// its outcome is recorded it is delivered, and the store no longer reads
// it as pending.
type Pending struct {
	Version int64 // the member version the decision committed
	Outcome Outcome
	Events  []Event
	// Audit is the decision's audit record's place in the member's chain
	// (its seq and hash), AuditPrev the hash of the record before it: the
	// record is made when the decision is, so the member's chain follows
	// its versions.
	Audit     AuditLink
	AuditPrev string
	// Repair is set for an operator's repair of the member (pwctl members
	// repair): why, in the operator's words, for the audit record, which
	// is an operator's. "" for a command's decision.
	Repair string
}

// Errors of the store, in domain terms.
var (
	// ErrMemberNotFound: no member has the loginId in the ASP.
	ErrMemberNotFound = errors.New("member not found")
	// ErrNoOutcome: the correlation id has no recorded outcome.
	ErrNoOutcome = errors.New("no outcome recorded")
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

// SetClaim records that a request content set the member's PIN: the same
// content under another correlation id within the replay window is a replay
// (KMV1 binds only the body) and is refused, not applied again.
type SetClaim struct {
	Fingerprint   string // keyed fingerprint of Command.Content, never the PINs
	CorrelationID string
	At            time.Time
}

// AuditLink is a record's place in an audit chain: the head of the
// member's chain as its last decision made it, which the next decision's
// record follows.
type AuditLink struct {
	Seq  int64
	Hash string
}
