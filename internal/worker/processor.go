// Package worker decides PIN commands: it takes a command from
// password.commands (handler.go), decides it against the member document
// and commits the decision with one conditional update of that document
// through its Store port, publishes the result, then delivers what the
// decision left in the member's outbox: its outcome record, its events and
// its audit record (processor.go). It is the only writer of member
// documents. One journey reads decode → decide (pure but for the hash) →
// commit → answer → deliver, each visited once.
package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// Auditor appends to the tamper-evident audit trail, once per command: a
// second record of the same correlation id in its chain is refused with
// audit.ErrRecorded. Append finds the head of the record's chain itself
// (commands without a member); Insert stores a record a decision linked
// to its member's chain (audit.Link).
type Auditor interface {
	Append(ctx context.Context, r audit.Record) (audit.Record, error)
	Insert(ctx context.Context, r audit.Record) (audit.Record, error)
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

// due is what a command still owes once its result is published: the
// delivery of a member's outbox, or for a command without a member its
// audit record.
type due struct {
	deliver *pinreset.Member
	audit   bool
}

// outcome finds the result of cmd: the recorded outcome of its correlation
// id if there is one (a retry gets the same answer, a different request with
// the same id a 409, a status query the outcome), else a new decision,
// committed before it is published. how says which, for the log.
func (p *Processor) outcome(ctx context.Context, cmd pinreset.Command) (res pinreset.Result, how string, o due, err error) {
	if cmd.Kind == pinreset.KindStatus {
		return p.status(ctx, cmd)
	}
	if err := p.keys(&cmd); err != nil {
		return pinreset.Result{}, "", due{}, err
	}
	var (
		decisions  int
		recorded   *pinreset.Outcome // the transaction's outcome when it has one
		fromRecord bool              // recorded is its outcome record: its decision is delivered
		decided    pinreset.Outcome  // this decision's, when it commits one
	)
	decide := func(m pinreset.Member, rec *pinreset.Outcome) (pinreset.Member, bool, error) {
		if decisions++; decisions > 1 && p.Metrics != nil {
			p.Metrics.Conflicts.Inc()
		}
		recorded, fromRecord = rec, rec != nil
		if rec != nil {
			return m, false, nil
		}
		now := p.now()
		d, err := m.Decide(cmd, p.Hasher, p.Rules, now)
		if errors.Is(err, pinhash.ErrMalformed) {
			return m, false, &pinreset.DamagedMemberError{MemberID: m.ID, Reason: "malformed PIN hash"}
		}
		if err != nil {
			return m, false, err
		}
		if d.Replayed {
			o := p.newOutcome(cmd, d.Applied.Code, m.ID, d.Applied.At)
			o.Fingerprint = d.Applied.Fingerprint
			recorded = &o
			return m, false, nil
		}
		decided = p.newOutcome(cmd, d.Code, m.ID, now)
		next := m.Commit(cmd, d, decided, p.Rules, now)
		// The decision's audit record follows the member's chain head.
		pd := &next.Outbox[len(next.Outbox)-1]
		r, err := audit.Link(auditRecord(m.ID, *pd), m.Audit.Seq, m.Audit.Hash)
		if err != nil {
			return m, false, err
		}
		pd.Audit, pd.AuditPrev = pinreset.AuditLink{Seq: r.Seq, Hash: r.Hash}, r.PrevHash
		next.Audit = pd.Audit
		return next, true, nil
	}
	uctx, span := p.tracer().Start(ctx, "store update", trace.WithAttributes(attribute.String("pinreset.asp_id", cmd.ASPID)))
	m, err := p.Store.Update(uctx, cmd.ASPID, cmd.LoginID, cmd.CorrelationID, decide)
	if err == nil {
		span.SetAttributes(attribute.String("pinreset.member_id", m.ID), attribute.Int64("pinreset.version", m.Version))
	}
	span.End()
	switch {
	case err == nil && recorded != nil:
		res, how, o, err := p.recorded(cmd, *recorded)
		if decisions > 0 && len(m.Outbox) > 0 {
			// What an earlier attempt may not have delivered. With its
			// outcome recorded the command's own decision is delivered.
			m.Outbox = slices.DeleteFunc(m.Outbox, func(pd pinreset.Pending) bool {
				return pd.Outcome.CorrelationID == cmd.CorrelationID && fromRecord
			})
			if len(m.Outbox) > 0 {
				o.deliver = &m
			}
		}
		return res, how, o, err
	case err == nil:
		if p.Metrics != nil {
			for _, e := range m.Outbox[len(m.Outbox)-1].Events {
				if e.Type == pinreset.EventLocked {
					p.Metrics.Locks.Inc()
				}
			}
		}
		return p.result(cmd, decided), "decided", due{deliver: &m}, nil
	case errors.Is(err, pinreset.ErrMemberNotFound):
		return p.memberless(ctx, cmd)
	case errors.Is(err, pinreset.ErrDamagedMember):
		// No decision can be made; a retry of a transaction already
		// ended (endDamaged) is answered from its record at once.
		rec, oerr := p.Store.Outcome(ctx, cmd.ASPID, cmd.CorrelationID)
		if oerr == nil {
			return p.recorded(cmd, rec)
		}
		return pinreset.Result{}, "", due{}, err
	default:
		return pinreset.Result{}, "", due{}, err
	}
}

// status answers a status query from the recorded outcome. Keyed like its
// command, the query sits behind it on the same partition and lane: no
// record means no such command, unless the command was parked to be tried
// again later.
func (p *Processor) status(ctx context.Context, cmd pinreset.Command) (pinreset.Result, string, due, error) {
	rec, err := p.Store.Outcome(ctx, cmd.ASPID, cmd.CorrelationID)
	switch {
	case err == nil:
		return pinreset.NewResult(cmd, rec.Code, rec.MemberID, rec.CompletedAt), "status", due{}, nil
	case !errors.Is(err, pinreset.ErrNoOutcome):
		return pinreset.Result{}, "", due{}, err
	}
	if p.Parked != nil {
		parked, err := p.Parked.IsParked(ctx, cmd.ASPID, cmd.CorrelationID)
		if err != nil {
			return pinreset.Result{}, "", due{}, err
		}
		if parked {
			return pinreset.NewResult(cmd, pinreset.CodeAccepted, "", p.now()), "status", due{}, nil
		}
	}
	return pinreset.NewResult(cmd, pinreset.CodeNotFound, "", p.now()), "status", due{}, nil
}

// memberless records the outcome of a command whose loginId names no
// member of its ASP: one insert, the decision itself.
func (p *Processor) memberless(ctx context.Context, cmd pinreset.Command) (pinreset.Result, string, due, error) {
	now := p.now()
	code := pinreset.CodeUserNotFound
	if cmd.Expired(now) {
		code = pinreset.CodeExpired
	}
	o := p.newOutcome(cmd, code, "", now)
	rec, fresh, err := p.Store.Record(ctx, o)
	switch {
	case err != nil:
		return pinreset.Result{}, "", due{}, err
	case !fresh:
		return p.recorded(cmd, rec)
	}
	return p.result(cmd, o), "decided", due{audit: true}, nil
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

// recorded answers cmd from the recorded outcome of its correlation id:
// the same answer for the same request, a 409 for another request under
// that id. The same request without a member still owes the audit record
// its first attempt may not have appended (the trail refuses a second).
func (p *Processor) recorded(cmd pinreset.Command, rec pinreset.Outcome) (pinreset.Result, string, due, error) {
	if rec.Fingerprint == "" {
		// A rejected command has no fingerprint (the dead-letter path
		// audits it); its correlation id keeps its one outcome, and a retry
		// must use a new one.
		return pinreset.NewResult(cmd, rec.Code, "", rec.CompletedAt), "repeated", due{}, nil
	}
	same, err := p.Fingerprinter.SameFingerprint(rec.Fingerprint, cmd.Content())
	if err != nil {
		return pinreset.Result{}, "", due{}, fmt.Errorf("compare with the recorded request: %w", err)
	}
	if !same {
		return pinreset.NewResult(cmd, pinreset.CodeCorrelationReused, "", p.now()), "reused", due{}, nil
	}
	return pinreset.NewResult(cmd, rec.Code, rec.MemberID, rec.CompletedAt), "repeated", due{audit: rec.MemberID == ""}, nil
}

// deliver delivers the decisions in the member's outbox, oldest first:
// for each, its events, its audit record and, last, its outcome record,
// which marks it delivered (the store reads it as pending no longer). Each
// step is idempotent (stable event ids, an audit record fixed by the
// decision, one outcome per transaction), so a delivery cut short is done
// again by whoever comes next: the command's redelivery, the member's next
// decision, or the relay. Whoever publishes a version's events has
// published every earlier version's first, so a member's events first
// appear in version order. own is the correlation id of the command being
// handled ("" for the relay): another command's decision younger than
// deliverGrace is left to its own worker, which is most likely delivering
// it this moment, for as long as that takes, so that the normal flow
// publishes each event once.
func (p *Processor) deliver(ctx context.Context, m pinreset.Member, own string) error {
	if len(m.Outbox) == 0 {
		return nil
	}
	_, span := p.tracer().Start(ctx, "deliver", trace.WithAttributes(attribute.String("pinreset.member_id", m.ID),
		attribute.Int("pinreset.pending", len(m.Outbox))))
	defer span.End()
	if slices.ContainsFunc(m.Outbox, func(pd pinreset.Pending) bool { return pd.Outcome.CorrelationID != own }) {
		// Other commands' decisions, read as the store keeps them: which
		// of them are delivered already (one read).
		var err error
		if m.Outbox, err = p.Store.Pending(ctx, m.Outbox); err != nil {
			return err
		}
	}
	pending, err := p.othersFirst(ctx, m, own)
	if err != nil {
		return err
	}
	for _, pd := range pending {
		if len(pd.Events) > 0 {
			msgs, err := events.Messages(pd.Events)
			if err != nil {
				return err
			}
			if err := p.Publisher.Publish(ctx, msgs...); err != nil {
				return fmt.Errorf("publish events of member %s version %d: %w", m.ID, pd.Version, err)
			}
		}
		r := auditRecord(m.ID, pd)
		r.Chain, r.Seq, r.PrevHash, r.Hash = audit.ChainOf(r), pd.Audit.Seq, pd.AuditPrev, pd.Audit.Hash
		r.At = r.At.UTC().Truncate(time.Millisecond)
		if _, err := p.Audit.Insert(ctx, r); err != nil && !errors.Is(err, audit.ErrRecorded) {
			return fmt.Errorf("audit command %s: %w", pd.Outcome.CorrelationID, err)
		}
		if _, _, err := p.Store.Record(ctx, pd.Outcome); err != nil {
			return err
		}
	}
	return nil
}

// deliverGrace is how long a delivery waits for another worker to
// deliver that worker's own young decision, before it delivers it itself:
// far longer than a delivery takes (milliseconds), far shorter than the
// relay's RelayAfter.
const deliverGrace = 5 * time.Second

// othersFirst returns the decisions of m's outbox that are left to deliver
// once the young decisions of other commands have been delivered by their
// own workers, or deliverGrace has passed since they were made.
func (p *Processor) othersFirst(ctx context.Context, m pinreset.Member, own string) ([]pinreset.Pending, error) {
	young := func(pd pinreset.Pending) bool {
		return pd.Outcome.CorrelationID != own && p.now().Sub(pd.Outcome.CompletedAt) < deliverGrace
	}
	for wait := 5 * time.Millisecond; slices.ContainsFunc(m.Outbox, young); wait = min(2*wait, 200*time.Millisecond) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		cur, err := p.Store.FindMemberByID(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		// Still pending: the ones of m's outbox the store still reads as
		// pending (later decisions are their own commands').
		still := m.Outbox[:0:0]
		for _, pd := range m.Outbox {
			if slices.ContainsFunc(cur.Outbox, func(c pinreset.Pending) bool { return c.Version == pd.Version }) {
				still = append(still, pd)
			}
		}
		m.Outbox = still
	}
	return m.Outbox, nil
}

// auditRecord is the audit record of a decision about member memberID:
// a command's, or an operator's repair (KindOperator, its reason the note).
func auditRecord(memberID string, pd pinreset.Pending) audit.Record {
	o := pd.Outcome
	r := audit.Record{ASPID: o.ASPID, Kind: auditKind(o.Kind), MemberID: memberID, CorrelationID: o.CorrelationID,
		Code: string(o.Code), At: o.CompletedAt, WorkerID: o.WorkerID}
	if pd.Repair != "" {
		r.Kind, r.Code, r.Note = audit.KindOperator, AuditCodeRepair, pd.Repair
	}
	return r
}

// AuditCodeRepair is the code of an operator's repair of a member in the
// audit trail.
const AuditCodeRepair = "member_repair"

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

// RelayAfter is how long a decision may stay undelivered before the relay
// delivers it: longer than an attempt at a command with its delivery, so
// that the relay steps in for workers that died, not for slow ones (a
// duplicate delivery is harmless, only wasted).
const RelayAfter = time.Minute

// PruneAfter is how long a delivered decision stays in its member's
// document before the relay prunes it. A decision about a member whose
// outbox holds another command's costs one more round trip after the
// answer (which of them is delivered).
const PruneAfter = 10 * time.Second

// Relay works through up to limit members with a decision in their outbox
// older than PruneAfter: it delivers the undelivered ones older than
// RelayAfter (their worker died after the commit, their command did not
// come back, or an operator purged it, and nobody touched the member
// since) and empties the outbox once all is delivered; a member with a
// younger undelivered decision is left to that decision's worker. It
// returns how many members it pruned.
func (p *Processor) Relay(ctx context.Context, limit int) (int, error) {
	now := p.now()
	ms, err := p.Store.Undelivered(ctx, now.Add(-PruneAfter), limit)
	if err != nil {
		return 0, err
	}
	done := ms[:0]
	var errs []error
	for _, m := range ms {
		if slices.ContainsFunc(m.Outbox, func(pd pinreset.Pending) bool { return now.Sub(pd.Outcome.CompletedAt) < RelayAfter }) {
			continue
		}
		if err := p.deliver(ctx, m, ""); err != nil {
			errs = append(errs, fmt.Errorf("relay member %s: %w", m.ID, err))
			continue
		}
		done = append(done, m)
	}
	if err := p.Store.Prune(ctx, done); err != nil {
		return 0, err
	}
	return len(done), errors.Join(errs...)
}
