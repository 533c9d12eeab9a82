package audit

import "github.com/kmwallet/pinreset/internal/pinreset"

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
