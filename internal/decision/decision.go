// Package decision owns the life of a PIN command's decision, end to end:
// decide (the member rules of package pinreset), commit (one conditional
// update of the member document, through Store), answer (the result the
// client waits for, through Publisher) and derive (the decision's events,
// audit record and outcome record, delivered from the member's outbox).
// Its ports speak domain types only; the Kafka handler that feeds it
// decoded commands is package worker, the MongoDB side package mongostore.
package decision

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Store keeps members and the outcomes of commands (*mongostore.Store;
// memstore.Store in unit tests). Its contract, in domain terms, is the
// test suite in storetest, which runs against both.
type Store interface {
	// Outcome returns the recorded outcome of the ASP's correlation id, or
	// pinreset.ErrNoOutcome.
	Outcome(ctx context.Context, aspID, correlationID string) (pinreset.Outcome, error)
	// Update calls decide with the member with loginID in the ASP and the
	// transaction's recorded outcome (nil when none), and when decide
	// returns a next state commits it with a compare-and-set of the
	// member's version, deciding again when another decision committed
	// first. It returns the member as committed (or as read).
	// pinreset.ErrMemberNotFound, decide's own error, or an
	// infrastructure error.
	Update(ctx context.Context, aspID, loginID, correlationID string, decide func(pinreset.Member, *pinreset.Outcome) (pinreset.Member, bool, error)) (pinreset.Member, error)
	// Record records o as its transaction's outcome unless it has one, and
	// returns the outcome that stands and whether it is o.
	Record(ctx context.Context, o pinreset.Outcome) (pinreset.Outcome, bool, error)
	// Undelivered returns up to limit members with an outbox entry
	// decided before t.
	Undelivered(ctx context.Context, before time.Time, limit int) ([]pinreset.Member, error)
	// Pending returns the decisions of ps not delivered yet (no outcome
	// recorded).
	Pending(ctx context.Context, ps []pinreset.Pending) ([]pinreset.Pending, error)
	// Prune empties the outboxes of members whose decisions are all
	// delivered, unless they changed since.
	Prune(ctx context.Context, ms []pinreset.Member) error
	// FindMemberByID returns a member, with the decisions whose outcome is
	// recorded (delivered) left out of its outbox. (Update's decide gets
	// the outbox as stored, delivered decisions not pruned yet included.)
	FindMemberByID(ctx context.Context, id string) (*pinreset.Member, error)
}

// Trail is the tamper-evident audit trail, which keeps one record per
// transaction: storing a record it already holds succeeds and changes
// nothing, so a delivery done again is harmless.
type Trail interface {
	// RecordDecision stores the audit record of decision pd about member
	// memberID, linked into the member's chain when it was decided
	// (pd.Audit, pd.AuditPrev).
	RecordDecision(ctx context.Context, memberID string, pd pinreset.Pending) error
	// AppendOutcome appends, at the head of its chain, the audit record of
	// a transaction that no decision linked: one without a member (unknown
	// loginId, rejected) or ended for a damaged member. loginIDHash is the
	// keyed fingerprint of the loginId asked for, or "".
	AppendOutcome(ctx context.Context, o pinreset.Outcome, loginIDHash string) error
}

// Fingerprinter makes and checks keyed fingerprints of request content,
// under the fingerprint keys (PINRESET_FINGERPRINT_KEYS), never the pepper.
type Fingerprinter interface {
	Fingerprint(content []byte) (string, error)
	// Fingerprints is content's fingerprint under every key, the current
	// key's first: for comparing with fingerprints made before a rotation.
	Fingerprints(content []byte) ([]string, error)
	SameFingerprint(fp string, content []byte) (bool, error)
}

// Publisher tells the world: the client waiting for a result, and the
// subscribers of a member's events.
type Publisher interface {
	Answer(ctx context.Context, r pinreset.Result) error
	Announce(ctx context.Context, events []pinreset.Event) error
}

// ParkedReader tells whether a command was parked to be tried again later
// (a status query then answers it as pending).
type ParkedReader interface {
	IsParked(ctx context.Context, aspID, correlationID string) (bool, error)
}

// Service decides commands; it is safe for concurrent use. Every port but
// Parked is required; Now and Tracer have defaults.
type Service struct {
	Store         Store
	Trail         Trail
	Fingerprinter Fingerprinter
	Publisher     Publisher
	Hasher        pinreset.PINHasher
	Rules         pinreset.Rules
	// Parked, when set, lets a status query answer a parked command as
	// pending rather than unknown.
	Parked ParkedReader
	// WorkerID names this instance in the outcomes and audit records it makes.
	WorkerID string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Tracer records a span per store update and per delivery. Default: none.
	Tracer trace.Tracer
}

// Report is what handling a command did: the answer its client got and
// how it was reached. An answer from a recorded outcome ("already
// decided") is a report like any other, not an error.
type Report struct {
	Result pinreset.Result
	// How: "decided" (a new decision), "repeated" (the transaction's
	// recorded outcome), "reused" (the correlation id is another
	// request's: 409), "status" (a status query), "ended" (a damaged
	// member's command ended with an internal failure), "withdrawn" (a
	// command an operator withdrew, decided as rejected).
	How string
	// Conflicts counts the decisions made again because another decision
	// about the member committed first.
	Conflicts int
	// Locked is true when the decision locked the member.
	Locked bool
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) tracer() trace.Tracer {
	if s.Tracer == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return s.Tracer
}
