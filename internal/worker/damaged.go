package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/wire"
)

// endDamaged ends a command whose member document is damaged
// (pinreset.ErrDamagedMember) once its retry budget is spent: no retry can
// decide it, and parking it would leave its client with 202 for ever. It
// records the catalogue's internal failure (000_500, no detail) as the
// transaction's outcome, audits it, answers it, counts it and logs the
// member's id for the operator who repairs the member (runbook, "Damaged
// members"). A transaction that already has an outcome keeps it.
func (p *Processor) endDamaged(ctx context.Context, m kafka.Message, cause error) error {
	cmd, err := wire.DecodeCommand(m.Key, m.Value, p.Sealer)
	if err != nil {
		return fmt.Errorf("end command %s of a damaged member: %w", m.Key, err)
	}
	if err := p.keys(&cmd); err != nil {
		return err
	}
	var damaged *pinreset.DamagedMemberError
	memberID := ""
	if errors.As(cause, &damaged) {
		memberID = damaged.MemberID
	}
	o := p.newOutcome(cmd, pinreset.CodeInternal, memberID, p.now())
	res, how := p.result(cmd, o), "ended"
	rec, fresh, err := p.Store.Record(ctx, o)
	if err != nil {
		return fmt.Errorf("record the end of command %s: %w", cmd.CorrelationID, err)
	}
	if !fresh {
		if res, how, _, err = p.recorded(cmd, rec); err != nil {
			return err
		}
	}
	// Audited once whoever recorded it (the trail refuses a second record),
	// so a crash between the record and the audit record loses neither.
	if how != "reused" {
		if err := p.appendAudit(ctx, cmd, res.Code, memberID); err != nil {
			return err
		}
	}
	if err := p.publishResult(ctx, res); err != nil {
		return err
	}
	if p.Metrics != nil {
		p.Metrics.Damaged.Inc()
		p.Metrics.Outcomes.WithLabelValues(string(cmd.Kind), string(res.Code), how).Inc()
	}
	p.Log.Error("command ended: its member's document is damaged; repair the member (runbook, Damaged members)",
		zap.String("correlation_id", cmd.CorrelationID), zap.String("asp_id", cmd.ASPID), zap.String("member_id", memberID),
		zap.String("code", string(res.Code)), zap.Error(cause))
	return nil
}
