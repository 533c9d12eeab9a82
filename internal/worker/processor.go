// Package worker decides PIN commands: it takes a command from
// password.commands (handler.go), decides it against the member's settled
// state, commits the decision in one atomic write through its Store port,
// publishes the result, then settles the decision: its events, its audit
// record, the member's new settled state (processor.go). It is the only
// writer of member documents. One journey reads decode → decide (pure but
// for the hash) → one commit → answer → settle, each visited once.
package worker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/events"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/wire"
)

// Store keeps members, the decisions about them, and the outcomes of
// commands without a member (*mongostore.Store; memstore.Store in unit
// tests). Its contract, in domain terms, is the test suite in storetest,
// which runs against both.
type Store interface {
	// Outcome returns the recorded outcome of the ASP's correlation id, or
	// pinreset.ErrNoOutcome.
	Outcome(ctx context.Context, aspID, correlationID string) (pinreset.Outcome, error)
	// Update calls decide with the settled state of the member with
	// loginID in the ASP and commits the decision it returns, atomically,
	// deciding again when another decision about the member wins (the
	// conflict loop is the store's). pinreset.ErrMemberNotFound, a
	// *pinreset.DecidedError (the correlation id is decided), a
	// *pinreset.UnsettledError or pinreset.ErrBusy (the member's last
	// decision is not settled), decide's own error, or an infrastructure
	// error.
	Update(ctx context.Context, aspID, loginID string, decide func(pinreset.Member) (pinreset.Commit, error)) (pinreset.Commit, error)
	// Record records the outcome of a command without a member; a
	// *pinreset.DecidedError when its correlation id already has one.
	Record(ctx context.Context, o pinreset.Outcome) error
	// Settle makes a committed decision the member's settled state. The
	// caller makes sure it is newer than the settled state: it committed it
	// itself, or has just read the settled state (settle's recheck).
	Settle(ctx context.Context, c pinreset.Commit) error
	// FindMemberByID returns a member's settled state.
	FindMemberByID(ctx context.Context, id string) (*pinreset.Member, error)
}

// Auditor appends to the tamper-evident audit trail, once per command: a
// second record of the same correlation id in its chain is refused with
// audit.ErrRecorded. AppendAfter starts from the chain head the caller
// knows (the member's audit link).
type Auditor interface {
	Append(ctx context.Context, r audit.Record) (audit.Record, error)
	AppendAfter(ctx context.Context, r audit.Record, seq int64, hash string) (audit.Record, error)
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

// Publisher publishes messages.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkabus.Message) error
}

// Processor handles one command message at a time; it is safe for concurrent use.
type Processor struct {
	Store         Store
	Audit         Auditor
	Fingerprinter Fingerprinter
	Publisher     Publisher
	Sealer        wire.Sealer
	Hasher        pinreset.PINHasher
	Rules         pinreset.Rules
	Log           *zap.Logger
	// WorkerID names this instance in results' logs and the DLQ headers.
	WorkerID string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Metrics, when set, counts outcomes, conflicts, locks and dead letters.
	Metrics *metrics.Worker
	// Tracer records a span per command and per store update, continuing
	// the trace the ingress started (traceparent header). Default: none.
	Tracer trace.Tracer
	// Parked marks the commands parked on the retry topic, so that status
	// queries answer them as pending. Optional (then nothing is parked).
	Parked ParkedRecorder
	// Health, when set, is told of missing keys (readiness names them).
	Health *health.Monitor
	// Ready, when set, says whether the database and broker answer: a
	// command is not parked while they do not, nor for parkCalm after (every
	// command fails then; moving them all aside would only reorder them).
	Ready func(context.Context) error
	// Outage, when set, reports whether err means the database or the
	// broker as a whole is down (not this command's fault); such failures
	// mark an outage for Park.
	Outage func(error) bool

	outageAt atomic.Int64 // when Ready last failed or an attempt met an outage, Unix nanoseconds
}

// DLQ header names.
const (
	HeaderDLQReason = "x-dlq-reason"
	HeaderDLQWorker = "x-dlq-worker"
	HeaderDLQSource = "x-dlq-source"
)

func (p *Processor) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// owed is what a command still owes once its result is published: the
// settlement of its decision (recheck: it was committed by an earlier
// attempt, which may have settled it meanwhile), or for a command without a
// member its audit record.
type owed struct {
	settle  *pinreset.Commit
	recheck bool
	audit   bool
}

// maxTakeovers bounds how many unsettled decisions of dead workers one
// command settles before its own (one per member is the most there can be).
const maxTakeovers = 3

// outcome finds the result of cmd: the recorded outcome of its correlation
// id if there is one (a retry gets the same answer, a different request with
// the same id a 409, a status query the outcome), else a new decision,
// committed before it is published. how says which, for the log.
func (p *Processor) outcome(ctx context.Context, cmd pinreset.Command) (res pinreset.Result, how string, o owed, err error) {
	if cmd.Kind == pinreset.KindStatus {
		return p.status(ctx, cmd)
	}
	if err := p.keys(&cmd); err != nil {
		return pinreset.Result{}, "", owed{}, err
	}
	decisions := 0
	decide := func(m pinreset.Member) (pinreset.Commit, error) {
		if decisions++; decisions > 1 && p.Metrics != nil {
			p.Metrics.Conflicts.Inc()
		}
		return p.decide(cmd, m)
	}
	for range maxTakeovers {
		uctx, span := p.tracer().Start(ctx, "store update", trace.WithAttributes(attribute.String("pinreset.asp_id", cmd.ASPID)))
		c, err := p.Store.Update(uctx, cmd.ASPID, cmd.LoginID, decide)
		if err == nil {
			span.SetAttributes(attribute.String("pinreset.member_id", c.Member.ID), attribute.Int64("pinreset.version", c.Member.Version))
		}
		span.End()
		var decided *pinreset.DecidedError
		var unsettled *pinreset.UnsettledError
		switch {
		case err == nil:
			if p.Metrics != nil {
				for _, e := range c.Events {
					if e.Type == pinreset.EventLocked {
						p.Metrics.Locks.Inc()
					}
				}
			}
			return p.result(cmd, c.Outcome), "decided", owed{settle: &c}, nil
		case errors.As(err, &decided):
			return p.recorded(cmd, decided.Commit)
		case errors.As(err, &unsettled):
			// Its worker died between commit and settlement and its command
			// has not come back: settle it, then decide on the state it left.
			p.Log.Warn("settling a decision left unsettled past its lease", zap.String("of_correlation_id", unsettled.Commit.Outcome.CorrelationID),
				zap.String("member_id", unsettled.Commit.Member.ID), zap.Int64("version", unsettled.Commit.Member.Version))
			if err := p.settle(ctx, unsettled.Commit, true); err != nil {
				return pinreset.Result{}, "", owed{}, err
			}
		case errors.Is(err, pinreset.ErrMemberNotFound):
			return p.memberless(ctx, cmd)
		case errors.Is(err, pinreset.ErrDamagedMember):
			// No decision can be made; a retry of a transaction already
			// ended (endDamaged) is answered from its record at once.
			rec, oerr := p.Store.Outcome(ctx, cmd.ASPID, cmd.CorrelationID)
			if oerr == nil {
				return p.recorded(cmd, pinreset.Commit{Outcome: rec, Settled: true})
			}
			return pinreset.Result{}, "", owed{}, err
		default:
			return pinreset.Result{}, "", owed{}, err
		}
	}
	return pinreset.Result{}, "", owed{}, fmt.Errorf("member of command %s: %d unsettled decisions in a row", cmd.CorrelationID, maxTakeovers)
}

// status answers a status query from the recorded outcome. Keyed like its
// command, the query sits behind it on the same partition and lane: no
// record means no such command, unless the command was parked to be tried
// again later.
func (p *Processor) status(ctx context.Context, cmd pinreset.Command) (pinreset.Result, string, owed, error) {
	rec, err := p.Store.Outcome(ctx, cmd.ASPID, cmd.CorrelationID)
	switch {
	case err == nil:
		return pinreset.NewResult(cmd, rec.Code, rec.MemberID, rec.CompletedAt), "status", owed{}, nil
	case !errors.Is(err, pinreset.ErrNoOutcome):
		return pinreset.Result{}, "", owed{}, err
	}
	if p.Parked != nil {
		parked, err := p.Parked.IsParked(ctx, cmd.ASPID, cmd.CorrelationID)
		if err != nil {
			return pinreset.Result{}, "", owed{}, err
		}
		if parked {
			return pinreset.NewResult(cmd, pinreset.CodeAccepted, "", p.now()), "status", owed{}, nil
		}
	}
	return pinreset.NewResult(cmd, pinreset.CodeNotFound, "", p.now()), "status", owed{}, nil
}

// memberless records the outcome of a command whose loginId names no
// member of its ASP.
func (p *Processor) memberless(ctx context.Context, cmd pinreset.Command) (pinreset.Result, string, owed, error) {
	now := p.now()
	code := pinreset.CodeUserNotFound
	if cmd.Expired(now) {
		code = pinreset.CodeExpired
	}
	o := p.newOutcome(cmd, code, "", now)
	err := p.Store.Record(ctx, o)
	var decided *pinreset.DecidedError
	switch {
	case err == nil:
		return p.result(cmd, o), "decided", owed{audit: true}, nil
	case errors.As(err, &decided):
		return p.recorded(cmd, decided.Commit)
	default:
		return pinreset.Result{}, "", owed{}, err
	}
}

// decide is the decision about cmd on the member's settled state m, as the
// store commits it: pure but for the hashing. A command the member's
// history holds is answered from it (a redelivery after its settlement),
// and every other decision claims the member's next version, including
// those that change nothing (pinreset.Member.Recorded): two owners of one
// command then race for the same version, and the loser answers with the
// winner's outcome.
func (p *Processor) decide(cmd pinreset.Command, m pinreset.Member) (pinreset.Commit, error) {
	now := p.now()
	d, err := m.Decide(cmd, p.Hasher, p.Rules, now)
	if errors.Is(err, pinhash.ErrMalformed) {
		return pinreset.Commit{}, &pinreset.DamagedMemberError{MemberID: m.ID, Reason: "malformed PIN hash"}
	}
	if err != nil {
		return pinreset.Commit{}, err
	}
	if d.Replayed {
		o := p.newOutcome(cmd, d.Applied.Code, m.ID, d.Applied.At)
		o.Fingerprint = d.Applied.Fingerprint
		return pinreset.Commit{}, &pinreset.DecidedError{Commit: pinreset.Commit{Outcome: o, Member: m, Settled: true}}
	}
	if !d.Changed {
		d.Member = m.Recorded(cmd, d.Code, p.Rules, now)
	}
	return pinreset.Commit{Outcome: p.newOutcome(cmd, d.Code, m.ID, now), Member: d.Member, Events: d.Events}, nil
}

func (p *Processor) newOutcome(cmd pinreset.Command, code pinreset.Code, memberID string, at time.Time) pinreset.Outcome {
	o := pinreset.Outcome{ASPID: cmd.ASPID, CorrelationID: cmd.CorrelationID, Kind: cmd.Kind, Code: code, MemberID: memberID,
		AcceptedAt: cmd.AcceptedAt, CompletedAt: at.UTC(), WorkerID: p.WorkerID}
	if len(cmd.ContentKeys) > 0 {
		o.Fingerprint = cmd.ContentKeys[0]
	}
	return o
}

func (p *Processor) result(cmd pinreset.Command, o pinreset.Outcome) pinreset.Result {
	return pinreset.NewResult(cmd, o.Code, o.MemberID, o.CompletedAt)
}

// keys gives cmd the keyed fingerprints the decision compares: of its
// content (the outcome's fingerprint and the replay claim, Member.Sets),
// of its currentPassword (a change: the member's memory of wrong
// attempts) and of its newPassword (a set forgets the attempts of the PIN
// it sets), each under every fingerprint key, the current key's first.
// They hold PINs, as they must (two wrong PINs must be told apart), scoped
// to the member. HMACs only: a replayed wrong attempt is then answered
// without argon2 work.
func (p *Processor) keys(cmd *pinreset.Command) error {
	if cmd.Kind != pinreset.KindChange && cmd.Kind != pinreset.KindReset {
		return nil
	}
	var err error
	if cmd.ContentKeys, err = p.Fingerprinter.Fingerprints(cmd.Content()); err != nil {
		return fmt.Errorf("content keys: %w", err)
	}
	if cmd.Kind == pinreset.KindChange {
		if cmd.AttemptKeys, err = p.Fingerprinter.Fingerprints(cmd.AttemptContent()); err != nil {
			return fmt.Errorf("attempt keys: %w", err)
		}
	}
	if cmd.NewPINKeys, err = p.Fingerprinter.Fingerprints(cmd.NewPINAttemptContent()); err != nil {
		return fmt.Errorf("attempt keys: %w", err)
	}
	return nil
}

// recorded answers cmd from the recorded decision of its correlation id:
// the same answer for the same request, a 409 for another request under
// that id. The same request still owes what its first attempt may not
// have finished: the settlement of a decision about a member, or the audit
// record of one without (the trail refuses a second record).
func (p *Processor) recorded(cmd pinreset.Command, c pinreset.Commit) (pinreset.Result, string, owed, error) {
	rec := c.Outcome
	if rec.Fingerprint == "" {
		// A rejected command has no fingerprint (the dead-letter path
		// audits it); its correlation id keeps its one outcome, and a retry
		// must use a new one.
		return pinreset.NewResult(cmd, rec.Code, "", rec.CompletedAt), "repeated", owed{}, nil
	}
	same, err := p.Fingerprinter.SameFingerprint(rec.Fingerprint, cmd.Content())
	if err != nil {
		return pinreset.Result{}, "", owed{}, fmt.Errorf("compare with the recorded request: %w", err)
	}
	if !same {
		return pinreset.NewResult(cmd, pinreset.CodeCorrelationReused, "", p.now()), "reused", owed{}, nil
	}
	res := pinreset.NewResult(cmd, rec.Code, rec.MemberID, rec.CompletedAt)
	switch {
	case rec.MemberID == "":
		return res, "repeated", owed{audit: true}, nil
	case !c.Settled:
		return res, "repeated", owed{settle: &c, recheck: true}, nil
	}
	return res, "repeated", owed{}, nil
}

// settle completes a committed decision: its events, its audit record,
// then the member's settled state, in that order, so that a settled state
// means all three are done. recheck is for a decision an earlier attempt
// committed: settled meanwhile (its first owner was only slow), it is left
// alone, so that its events are not sent again after a later decision's.
// A failure leaves the decision unsettled: the command is retried and
// settles it then.
func (p *Processor) settle(ctx context.Context, c pinreset.Commit, recheck bool) error {
	if recheck {
		if done, err := p.settledAlready(ctx, c); done || err != nil {
			return err
		}
	}
	if len(c.Events) > 0 {
		msgs, err := events.Messages(c.Events)
		if err != nil {
			return err
		}
		if err := p.Publisher.Publish(ctx, msgs...); err != nil {
			return fmt.Errorf("publish events of member %s version %d: %w", c.Member.ID, c.Member.Version, err)
		}
	}
	// An operator's put (mongostore.PutMember) is claimed like a decision
	// but is no command: it has no audit record here, and its settlement is
	// the member document alone.
	contested := recheck
	if o := c.Outcome; o.CorrelationID != "" {
		r, err := p.Audit.AppendAfter(ctx, audit.Record{ASPID: o.ASPID, Kind: auditKind(o.Kind), MemberID: c.Member.ID,
			CorrelationID: o.CorrelationID, Code: string(o.Code), At: o.CompletedAt, WorkerID: o.WorkerID}, c.Member.Audit.Seq, c.Member.Audit.Hash)
		switch {
		case err == nil:
			c.Member.Audit = pinreset.AuditLink{Seq: r.Seq, Hash: r.Hash}
		case errors.Is(err, audit.ErrRecorded):
			contested = true // another attempt got here first
		default:
			return fmt.Errorf("audit command %s: %w", o.CorrelationID, err)
		}
	}
	if contested {
		// Another attempt at the command (a redelivery, a parked copy) may
		// have settled the decision already, and the member's next decision
		// may have followed it: the replace below would then put the member
		// back a version (Settle's filter is _id alone, see there). So read
		// again right before writing. What is left is a stall between this
		// read and the write, for longer than the other attempt's
		// settlement and a whole later decision (README, "The decision
		// model").
		if done, err := p.settledAlready(ctx, c); done || err != nil {
			return err
		}
	}
	_, span := p.tracer().Start(ctx, "store settle", trace.WithAttributes(attribute.String("pinreset.member_id", c.Member.ID),
		attribute.Int64("pinreset.version", c.Member.Version)))
	defer span.End()
	return p.Store.Settle(ctx, c)
}

// settledAlready reports whether the member's settled state has reached
// c's version (settled by another attempt, and maybe moved on since).
func (p *Processor) settledAlready(ctx context.Context, c pinreset.Commit) (bool, error) {
	cur, err := p.Store.FindMemberByID(ctx, c.Member.ID)
	if err != nil {
		return false, err
	}
	return cur.Version >= c.Member.Version, nil
}

func auditKind(k pinreset.Kind) string {
	if k == pinreset.KindReset || k == pinreset.KindChange {
		return string(k)
	}
	return audit.KindUnknown
}

// appendAudit appends the outcome of a command without a member to the
// audit trail, once: a record the trail already holds (appended before a
// crash or by another worker) is not appended again.
func (p *Processor) appendAudit(ctx context.Context, cmd pinreset.Command, code pinreset.Code, memberID string) error {
	r := audit.Record{ASPID: cmd.ASPID, Kind: auditKind(cmd.Kind), MemberID: memberID, CorrelationID: cmd.CorrelationID,
		Code: string(code), At: p.now().UTC(), WorkerID: p.WorkerID}
	if memberID == "" && cmd.LoginID != "" {
		// No member: the trail says which loginId was asked for, keyed, never
		// in clear. No PIN is in it: it needs none.
		h, err := p.Fingerprinter.Fingerprint([]byte("audit-login\x00" + cmd.ASPID + "\x00" + cmd.LoginID))
		if err != nil {
			return err
		}
		r.LoginIDHash = h
	}
	if _, err := p.Audit.Append(ctx, r); err != nil && !errors.Is(err, audit.ErrRecorded) {
		return fmt.Errorf("audit command %s: %w", cmd.CorrelationID, err)
	}
	return nil
}
