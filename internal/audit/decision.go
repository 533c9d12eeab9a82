package audit

import (
	"context"
	"errors"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// CodeRepair is the code of an operator's repair of a member.
const CodeRepair = "member_repair"

// OfDecision is the audit record of decision pd about member memberID, as
// the decision links it (Link) and its delivery stores it: a command's,
// or an operator's repair (KindOperator, its reason the note).
func OfDecision(memberID string, pd pinreset.Pending) Record {
	r := OfOutcome(pd.Outcome, "")
	r.MemberID = memberID
	if pd.Repair != "" {
		r.Kind, r.Code, r.Note = KindOperator, CodeRepair, pd.Repair
	}
	return r
}

// OfOutcome is the audit record of a transaction's outcome o;
// loginIDHash is the keyed fingerprint of the loginId of a command
// without a member, or "".
func OfOutcome(o pinreset.Outcome, loginIDHash string) Record {
	kind := KindUnknown
	if o.Kind == pinreset.KindReset || o.Kind == pinreset.KindChange {
		kind = string(o.Kind)
	}
	return Record{ASPID: o.ASPID, Kind: kind, MemberID: o.MemberID, CorrelationID: o.CorrelationID,
		Code: string(o.Code), At: o.CompletedAt, WorkerID: o.WorkerID, LoginIDHash: loginIDHash}
}

// RecordDecision stores the audit record of decision pd about member
// memberID at the place in the member's chain its decision linked it to
// (Insert). A record the trail holds already is success.
func (l *Log) RecordDecision(ctx context.Context, memberID string, pd pinreset.Pending) error {
	r := OfDecision(memberID, pd)
	r.Chain, r.Seq, r.PrevHash, r.Hash = ChainOf(r), pd.Audit.Seq, pd.AuditPrev, pd.Audit.Hash
	r.At = r.At.UTC().Truncate(time.Millisecond)
	if _, err := l.Insert(ctx, r); err != nil && !errors.Is(err, ErrRecorded) {
		return err
	}
	return nil
}

// AppendOutcome appends the audit record of outcome o at the head of its
// chain (Append). A record the trail holds already is success.
func (l *Log) AppendOutcome(ctx context.Context, o pinreset.Outcome, loginIDHash string) error {
	if _, err := l.Append(ctx, OfOutcome(o, loginIDHash)); err != nil && !errors.Is(err, ErrRecorded) {
		return err
	}
	return nil
}
