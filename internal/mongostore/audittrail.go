package mongostore

import (
	"context"
	"errors"
	"time"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// The audit log as the decision service's Trail: records built from
// domain values (audit.OfDecision, audit.OfOutcome), and a record the
// trail holds already taken as success.

// RecordDecision stores the audit record of decision pd about member
// memberID at the place in the member's chain its decision linked it to
// (Insert). A record the trail holds already is success.
func (l *AuditLog) RecordDecision(ctx context.Context, memberID string, pd pinreset.Pending) error {
	r := audit.OfDecision(memberID, pd)
	r.Chain, r.Seq, r.PrevHash, r.Hash = audit.ChainOf(r), pd.Audit.Seq, pd.AuditPrev, pd.Audit.Hash
	r.At = r.At.UTC().Truncate(time.Millisecond)
	if _, err := l.Insert(ctx, r); err != nil && !errors.Is(err, audit.ErrRecorded) {
		return err
	}
	return nil
}

// AppendOutcome appends the audit record of outcome o at the head of its
// chain (Append). A record the trail holds already is success.
func (l *AuditLog) AppendOutcome(ctx context.Context, o pinreset.Outcome, loginIDHash string) error {
	if _, err := l.Append(ctx, audit.OfOutcome(o, loginIDHash)); err != nil && !errors.Is(err, audit.ErrRecorded) {
		return err
	}
	return nil
}
