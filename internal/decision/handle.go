package decision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// due is what a command still owes once its result is published: the
// delivery of a member's outbox, or for a command without a member its
// audit record.
type due struct {
	deliver *pinreset.Member
	audit   bool
}

// Handle decides cmd (or answers it from its transaction's recorded
// outcome), publishes its result, then delivers what the decision left to
// deliver. The client waits for the result, not for the delivery: a crash
// in between leaves the command to be handled again (its message is not
// acknowledged), and the redelivery finds its decision in the member's
// history and outbox and delivers it then. An error means nothing worth
// an answer was reached yet, or the delivery failed: the command is to be
// handled again.
func (s *Service) Handle(ctx context.Context, cmd pinreset.Command) (Report, error) {
	return s.handle(ctx, cmd, false)
}

// Withdraw handles cmd as withdrawn by an operator (pwctl parked purge):
// like Handle, but its decision is the rejection (000_422, nothing
// applied; pinreset.Member.Withdraw), committed to its member so that any
// later copy of the command is answered with it. A command decided
// already keeps its outcome.
func (s *Service) Withdraw(ctx context.Context, cmd pinreset.Command) (Report, error) {
	return s.handle(ctx, cmd, true)
}

func (s *Service) handle(ctx context.Context, cmd pinreset.Command, withdrawn bool) (Report, error) {
	rep, due, err := s.decide(ctx, cmd, withdrawn)
	if err != nil {
		return Report{}, fmt.Errorf("command %s: %w", cmd.CorrelationID, err)
	}
	if withdrawn && rep.How == "decided" {
		rep.How = "withdrawn"
	}
	if err := s.Publisher.Answer(ctx, rep.Result); err != nil {
		return Report{}, fmt.Errorf("answer command %s: %w", cmd.CorrelationID, err)
	}
	switch {
	case due.deliver != nil:
		if err := s.deliver(ctx, *due.deliver, cmd.CorrelationID); err != nil {
			return Report{}, fmt.Errorf("command %s: %w", cmd.CorrelationID, err)
		}
	case due.audit:
		if err := s.auditOutcome(ctx, cmd, rep.Result.Code, ""); err != nil {
			return Report{}, err
		}
	}
	return rep, nil
}

// decide finds the result of cmd: the recorded outcome of its correlation
// id if there is one (a retry gets the same answer, a different request
// with the same id a 409, a status query the outcome), else a new
// decision, committed before it is published.
func (s *Service) decide(ctx context.Context, cmd pinreset.Command, withdrawn bool) (Report, due, error) {
	if cmd.Kind == pinreset.KindStatus {
		return s.status(ctx, cmd)
	}
	if err := s.keys(&cmd); err != nil {
		return Report{}, due{}, err
	}
	var (
		decisions  int
		recorded   *pinreset.Outcome // the transaction's outcome when it has one
		fromRecord bool              // recorded is its outcome record: its decision is delivered
		decided    pinreset.Outcome  // this decision's, when it commits one
	)
	decide := func(m pinreset.Member, rec *pinreset.Outcome) (pinreset.Member, bool, error) {
		decisions++
		recorded, fromRecord = rec, rec != nil
		if rec != nil {
			return m, false, nil
		}
		now := s.now()
		var (
			d   pinreset.Decision
			err error
		)
		if withdrawn {
			d = m.Withdraw(cmd)
		} else {
			d, err = m.Decide(cmd, s.Hasher, s.Rules, now)
		}
		if errors.Is(err, pinhash.ErrMalformed) {
			return m, false, &pinreset.DamagedMemberError{MemberID: m.ID, Reason: "malformed PIN hash"}
		}
		if err != nil {
			return m, false, err
		}
		if d.Replayed {
			o := s.newOutcome(cmd, d.Applied.Code, m.ID, d.Applied.At)
			o.Fingerprint = d.Applied.Fingerprint
			recorded = &o
			return m, false, nil
		}
		decided = s.newOutcome(cmd, d.Code, m.ID, now)
		next, err := link(m.Commit(cmd, d, decided, s.Rules, now), m.Audit)
		return next, err == nil, err
	}
	uctx, span := s.tracer().Start(ctx, "store update", trace.WithAttributes(attribute.String("pinreset.asp_id", cmd.ASPID)))
	m, err := s.Store.Update(uctx, cmd.ASPID, cmd.LoginID, cmd.CorrelationID, decide)
	if err == nil {
		span.SetAttributes(attribute.String("pinreset.member_id", m.ID), attribute.Int64("pinreset.version", m.Version))
	}
	span.End()
	conflicts := max(decisions-1, 0)
	switch {
	case err == nil && recorded != nil:
		rep, o, err := s.recorded(cmd, *recorded)
		rep.Conflicts = conflicts
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
		return rep, o, err
	case err == nil:
		rep := Report{Result: s.result(cmd, decided), How: "decided", Conflicts: conflicts}
		for _, e := range m.Outbox[len(m.Outbox)-1].Events {
			rep.Locked = rep.Locked || e.Type == pinreset.EventLocked
		}
		return rep, due{deliver: &m}, nil
	case errors.Is(err, pinreset.ErrMemberNotFound):
		return s.memberless(ctx, cmd, withdrawn)
	case errors.Is(err, pinreset.ErrDamagedMember):
		// No decision can be made; a retry of a transaction already
		// ended (EndDamaged) is answered from its record at once.
		rec, oerr := s.Store.Outcome(ctx, cmd.ASPID, cmd.CorrelationID)
		if oerr == nil {
			return s.recorded(cmd, rec)
		}
		return Report{}, due{}, err
	default:
		return Report{}, due{}, err
	}
}

// link fixes the audit record of next's newest decision (the last entry
// of its outbox) in the member's chain, after head: the member's chain
// then follows its versions, and the record is the same whoever delivers it.
func link(next pinreset.Member, head pinreset.AuditLink) (pinreset.Member, error) {
	pd := &next.Outbox[len(next.Outbox)-1]
	r, err := audit.Link(audit.OfDecision(next.ID, *pd), head.Seq, head.Hash)
	if err != nil {
		return next, err
	}
	pd.Audit, pd.AuditPrev = pinreset.AuditLink{Seq: r.Seq, Hash: r.Hash}, r.PrevHash
	next.Audit = pd.Audit
	return next, nil
}

// status answers a status query from the recorded outcome. Keyed like its
// command, the query sits behind it on the same partition and lane: no
// record means no such command, unless the command was parked to be tried
// again later.
func (s *Service) status(ctx context.Context, cmd pinreset.Command) (Report, due, error) {
	rec, err := s.Store.Outcome(ctx, cmd.ASPID, cmd.CorrelationID)
	switch {
	case err == nil:
		return Report{Result: pinreset.NewResult(cmd, rec.Code, rec.MemberID, rec.CompletedAt), How: "status"}, due{}, nil
	case !errors.Is(err, pinreset.ErrNoOutcome):
		return Report{}, due{}, err
	}
	if s.Parked != nil {
		parked, err := s.Parked.IsParked(ctx, cmd.ASPID, cmd.CorrelationID)
		if err != nil {
			return Report{}, due{}, err
		}
		if parked {
			return Report{Result: pinreset.NewResult(cmd, pinreset.CodeAccepted, "", s.now()), How: "status"}, due{}, nil
		}
	}
	return Report{Result: pinreset.NewResult(cmd, pinreset.CodeNotFound, "", s.now()), How: "status"}, due{}, nil
}

// memberless records the outcome of a command whose loginId names no
// member of its ASP: one insert, the decision itself.
func (s *Service) memberless(ctx context.Context, cmd pinreset.Command, withdrawn bool) (Report, due, error) {
	now := s.now()
	code := pinreset.CodeUserNotFound
	switch {
	case withdrawn:
		code = pinreset.CodeRejected
	case cmd.Expired(now):
		code = pinreset.CodeExpired
	}
	o := s.newOutcome(cmd, code, "", now)
	rec, fresh, err := s.Store.Record(ctx, o)
	switch {
	case err != nil:
		return Report{}, due{}, err
	case !fresh:
		return s.recorded(cmd, rec)
	}
	return Report{Result: s.result(cmd, o), How: "decided"}, due{audit: true}, nil
}

func (s *Service) newOutcome(cmd pinreset.Command, code pinreset.Code, memberID string, at time.Time) pinreset.Outcome {
	o := pinreset.Outcome{ASPID: cmd.ASPID, CorrelationID: cmd.CorrelationID, Kind: cmd.Kind, Code: code, MemberID: memberID,
		AcceptedAt: cmd.AcceptedAt, CompletedAt: at.UTC(), WorkerID: s.WorkerID}
	if len(cmd.ContentKeys) > 0 {
		o.Fingerprint = cmd.ContentKeys[0]
	}
	return o
}

func (s *Service) result(cmd pinreset.Command, o pinreset.Outcome) pinreset.Result {
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
func (s *Service) keys(cmd *pinreset.Command) error {
	if cmd.Kind != pinreset.KindChange && cmd.Kind != pinreset.KindReset {
		return nil
	}
	var err error
	if cmd.ContentKeys, err = s.Fingerprinter.Fingerprints(cmd.Content()); err != nil {
		return fmt.Errorf("content keys: %w", err)
	}
	if cmd.Kind == pinreset.KindChange {
		if cmd.AttemptKeys, err = s.Fingerprinter.Fingerprints(cmd.AttemptContent()); err != nil {
			return fmt.Errorf("attempt keys: %w", err)
		}
	}
	if cmd.NewPINKeys, err = s.Fingerprinter.Fingerprints(cmd.NewPINAttemptContent()); err != nil {
		return fmt.Errorf("attempt keys: %w", err)
	}
	return nil
}

// recorded answers cmd from the recorded outcome of its correlation id:
// the same answer for the same request, a 409 for another request under
// that id. The same request without a member still owes the audit record
// its first attempt may not have appended (the trail keeps one).
func (s *Service) recorded(cmd pinreset.Command, rec pinreset.Outcome) (Report, due, error) {
	if rec.Fingerprint == "" {
		// A rejected command has no fingerprint (the dead-letter path
		// audits it); its correlation id keeps its one outcome, and a retry
		// must use a new one.
		return Report{Result: pinreset.NewResult(cmd, rec.Code, "", rec.CompletedAt), How: "repeated"}, due{}, nil
	}
	same, err := s.Fingerprinter.SameFingerprint(rec.Fingerprint, cmd.Content())
	if err != nil {
		return Report{}, due{}, fmt.Errorf("compare with the recorded request: %w", err)
	}
	if !same {
		return Report{Result: pinreset.NewResult(cmd, pinreset.CodeCorrelationReused, "", s.now()), How: "reused"}, due{}, nil
	}
	return Report{Result: pinreset.NewResult(cmd, rec.Code, rec.MemberID, rec.CompletedAt), How: "repeated"}, due{audit: rec.MemberID == ""}, nil
}

// auditOutcome appends the outcome of a command that no decision linked
// into its member's chain (no member, or a damaged one) to the audit
// trail, once.
func (s *Service) auditOutcome(ctx context.Context, cmd pinreset.Command, code pinreset.Code, memberID string) error {
	o := pinreset.Outcome{ASPID: cmd.ASPID, Kind: cmd.Kind, CorrelationID: cmd.CorrelationID, Code: code, MemberID: memberID,
		CompletedAt: s.now().UTC(), WorkerID: s.WorkerID}
	loginIDHash := ""
	if memberID == "" && cmd.LoginID != "" {
		// No member: the trail says which loginId was asked for, keyed, never
		// in clear. No PIN is in it: it needs none.
		h, err := s.Fingerprinter.Fingerprint([]byte("audit-login\x00" + cmd.ASPID + "\x00" + cmd.LoginID))
		if err != nil {
			return err
		}
		loginIDHash = h
	}
	if err := s.Trail.AppendOutcome(ctx, o, loginIDHash); err != nil {
		return fmt.Errorf("audit command %s: %w", cmd.CorrelationID, err)
	}
	return nil
}
