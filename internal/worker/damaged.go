package worker

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/wire"
)

// endDamaged ends a command whose member document is damaged once its
// retry budget is spent (decision.Service.EndDamaged), counts it and logs
// the member's id for the operator who repairs the member (runbook,
// "Damaged members").
func (p *Processor) endDamaged(ctx context.Context, m kafka.Message, cause error) error {
	cmd, err := wire.DecodeCommand(m.Key, m.Value, p.Sealer)
	if err != nil {
		return fmt.Errorf("end command %s of a damaged member: %w", m.Key, err)
	}
	rep, err := p.Service.EndDamaged(ctx, cmd, cause)
	if err != nil {
		return err
	}
	p.Metrics.Damaged.Inc()
	p.Metrics.Outcomes.WithLabelValues(string(cmd.Kind), string(rep.Result.Code), rep.How).Inc()
	p.Log.Error("command ended: its member's document is damaged; repair the member (runbook, Damaged members)",
		zap.String("correlation_id", cmd.CorrelationID), zap.String("asp_id", cmd.ASPID), zap.String("member_id", rep.Result.MemberID),
		zap.String("code", string(rep.Result.Code)), zap.Error(cause))
	return nil
}
