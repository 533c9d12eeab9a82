package decision

import (
	"context"
	"errors"
	"fmt"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// EndDamaged ends a command whose member document is damaged
// (pinreset.ErrDamagedMember, the cause) once its retry budget is spent:
// no retry can decide it, and parking it would leave its client with 202
// for ever. It records the catalogue's internal failure (000_500, no
// detail) as the transaction's outcome, audits it and answers it. A
// transaction that already has an outcome keeps it.
func (s *Service) EndDamaged(ctx context.Context, cmd pinreset.Command, cause error) (Report, error) {
	if err := s.keys(&cmd); err != nil {
		return Report{}, err
	}
	var damaged *pinreset.DamagedMemberError
	memberID := ""
	if errors.As(cause, &damaged) {
		memberID = damaged.MemberID
	}
	o := s.newOutcome(cmd, pinreset.CodeInternal, memberID, s.now())
	rep := Report{Result: s.result(cmd, o), How: "ended"}
	rec, fresh, err := s.Store.Record(ctx, o)
	if err != nil {
		return Report{}, fmt.Errorf("record the end of command %s: %w", cmd.CorrelationID, err)
	}
	if !fresh {
		if rep, _, err = s.recorded(cmd, rec); err != nil {
			return Report{}, err
		}
	}
	// Audited once whoever recorded it (the trail keeps one record), so a
	// crash between the record and the audit record loses neither.
	if rep.How != "reused" {
		if err := s.auditOutcome(ctx, cmd, rep.Result.Code, memberID); err != nil {
			return Report{}, err
		}
	}
	if err := s.Publisher.Answer(ctx, rep.Result); err != nil {
		return Report{}, err
	}
	return rep, nil
}

// Reject records the rejection of a message that can never be processed
// (it does not decode, or its sealed fields do not open) and audits it,
// once. cid and aspID are its ids when known; for a message whose ids
// cannot be read, cid names its place in the log instead (two different
// unreadable messages both appear) and nothing is recorded but the audit
// record. It returns the answer its waiting client gets: the rejection,
// unless the transaction already has an outcome, which stays its only
// answer (a broken copy of a decided command).
func (s *Service) Reject(ctx context.Context, cid, aspID string, known bool) (pinreset.Outcome, error) {
	answer := pinreset.Outcome{ASPID: aspID, CorrelationID: cid, Code: pinreset.CodeRejected, CompletedAt: s.now().UTC(), WorkerID: s.WorkerID}
	if known {
		rec, fresh, err := s.Store.Record(ctx, answer)
		if err != nil {
			return pinreset.Outcome{}, err
		}
		if !fresh {
			// A redelivery (audited once) or a decided command's broken
			// copy, whose record stands and answers it, as a status
			// query would; only a rejection is audited as one.
			answer = rec
			if answer.Code != pinreset.CodeRejected {
				return answer, nil
			}
		}
	}
	if err := s.auditOutcome(ctx, pinreset.Command{CorrelationID: cid, ASPID: aspID}, pinreset.CodeRejected, ""); err != nil {
		return pinreset.Outcome{}, err
	}
	return answer, nil
}

// Unopened answers a copy of a command that this worker cannot open (its
// key is not deployed here) from its transaction's recorded outcome, when
// that outcome answers any copy whatever its content: a rejection or a
// withdrawal, which carry no fingerprint. A decided transaction's outcome
// answers only the same request, which cannot be told without opening it:
// ok is false then, and when nothing is recorded.
func (s *Service) Unopened(ctx context.Context, cid, aspID string) (o pinreset.Outcome, ok bool, err error) {
	rec, err := s.Store.Outcome(ctx, aspID, cid)
	switch {
	case errors.Is(err, pinreset.ErrNoOutcome):
		return pinreset.Outcome{}, false, nil
	case err != nil:
		return pinreset.Outcome{}, false, err
	}
	return rec, rec.Fingerprint == "", nil
}
