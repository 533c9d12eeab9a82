package worker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/tracing"
	"github.com/kmwallet/pinreset/internal/wire"
)

// The Kafka side of the processor: a message in (decoded, or dead-lettered
// when it cannot be), the result out. The decision core (processor.go)
// sees commands and domain ports only.

// Handle processes one message of password.commands. It returns an error only
// for failures worth retrying (database or broker unavailable, a key not
// deployed yet).
func (p *Processor) Handle(ctx context.Context, m kafka.Message) error {
	err := p.handle(ctx, m)
	// Seen by Park: failures around an outage are the outage's. An attempt
	// that ran out of its own time (ctx ended) was slow, which tells nothing
	// of the dependencies though its error is a deadline like theirs: taking
	// it for an outage would stop parking for parkCalm whenever lanes are
	// slow (overload). A dependency's own timeout ends before ctx, and counts.
	if err != nil && ctx.Err() == nil && p.Outage != nil && p.Outage(err) {
		p.outageAt.Store(p.now().UnixNano())
	}
	return err
}

func (p *Processor) handle(ctx context.Context, m kafka.Message) error {
	ctx, span := p.tracer().Start(tracing.Extract(ctx, m.Headers), "process "+m.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("pinreset.correlation_id", string(m.Key)), attribute.Int("messaging.kafka.partition", m.Partition)))
	defer span.End()
	log := p.Log.With(zap.String("correlation_id", string(m.Key)), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset))
	if sc := span.SpanContext(); sc.IsValid() {
		log = log.With(zap.String("trace_id", sc.TraceID().String()))
	}
	cmd, err := wire.DecodeCommand(m.Key, m.Value, p.Sealer)
	if errors.Is(err, pinreset.ErrMissingKey) {
		p.missingKey(err)
		return fmt.Errorf("command %s: %w", m.Key, err)
	}
	if err != nil {
		return p.deadLetter(ctx, log, m, err)
	}
	start := p.now()
	res, how, due, err := p.outcome(ctx, cmd)
	if err != nil {
		if errors.Is(err, pinreset.ErrMissingKey) {
			p.missingKey(err)
		}
		return fmt.Errorf("command %s: %w", cmd.CorrelationID, err)
	}
	// The client waits for the result, not for the delivery: the events,
	// the audit record and the outcome record follow it. A crash in between
	// leaves the offset uncommitted; the redelivered command finds its
	// decision in the member's history and outbox, and delivers it then.
	if err := p.publishResult(ctx, res); err != nil {
		return err
	}
	switch {
	case due.deliver != nil:
		if err := p.deliver(ctx, *due.deliver, cmd.CorrelationID); err != nil {
			return fmt.Errorf("command %s: %w", cmd.CorrelationID, err)
		}
	case due.audit:
		if err := p.appendAudit(ctx, cmd, res.Code, ""); err != nil {
			return err
		}
	}
	if p.Metrics != nil {
		p.Metrics.Outcomes.WithLabelValues(string(cmd.Kind), string(res.Code), how).Inc()
		p.Metrics.CommandDuration.WithLabelValues(string(cmd.Kind)).Observe(p.now().Sub(start).Seconds())
		p.Metrics.CommandAge.Observe(p.now().Sub(cmd.AcceptedAt).Seconds())
	}
	log.Info("command done", zap.String("asp_id", cmd.ASPID), zap.String("kind", string(cmd.Kind)),
		zap.String("code", string(res.Code)), zap.String("member_id", res.MemberID), zap.String("how", how),
		zap.Duration("took", p.now().Sub(start)), zap.Duration("since_accepted", p.now().Sub(cmd.AcceptedAt)))
	return nil
}

func (p *Processor) publishResult(ctx context.Context, r pinreset.Result) error {
	v, err := wire.EncodeResult(r)
	if err != nil {
		return err
	}
	var headers []kafka.Header
	tracing.Inject(ctx, &headers)
	return p.Publisher.Publish(ctx, kafkabus.Message{Topic: kafkabus.TopicResults, Key: []byte(r.CorrelationID), Value: v, Headers: headers})
}

func (p *Processor) tracer() trace.Tracer {
	if p.Tracer == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return p.Tracer
}

// deadLetter moves a message that can never be processed to the DLQ, with the
// reason, records the rejection as the command's outcome when its ids can be
// read, and tells a waiting client. The reason names what failed, never a
// secret: DecodeCommand's errors hold none.
func (p *Processor) deadLetter(ctx context.Context, log *zap.Logger, m kafka.Message, reason error) error {
	now := p.now().UTC()
	cid, aspID, known := wire.PeekIDs(m.Key, m.Value)
	auditIt := true
	// The answer a waiting client gets: the rejection, unless the
	// transaction already has an outcome, which stays its only answer.
	answer := pinreset.Outcome{Code: pinreset.CodeRejected, CompletedAt: now}
	if known {
		rec, fresh, err := p.Store.Record(ctx, pinreset.Outcome{ASPID: aspID, CorrelationID: cid,
			Code: pinreset.CodeRejected, CompletedAt: now, WorkerID: p.WorkerID})
		switch {
		case err != nil:
			return err
		case !fresh:
			// A redelivery (audit it, once) or a broken copy of a decided
			// command (an ingress still on an older command format during
			// an upgrade), whose record stands and answers it, as a status
			// query would.
			answer = rec
			auditIt = answer.Code == pinreset.CodeRejected
		}
	}
	// The trail keeps one record per correlation id and chain, so a
	// redelivered message is audited once. A message whose ids cannot be
	// read is named by its key and its place in the log, so two different
	// unreadable messages with the same key both appear.
	c := pinreset.Command{CorrelationID: cid, ASPID: aspID}
	if !known {
		key := m.Key[:min(len(m.Key), 64)]
		if !utf8.Valid(key) { // a BSON string must be UTF-8
			key = []byte(hex.EncodeToString(key[:min(len(key), 32)]))
		}
		c.CorrelationID = fmt.Sprintf("%s@%s/%d/%d", key, m.Topic, m.Partition, m.Offset)
	}
	if auditIt {
		if err := p.appendAudit(ctx, c, pinreset.CodeRejected, ""); err != nil {
			return err
		}
	}
	headers := append([]kafka.Header{}, m.Headers...)
	headers = append(headers,
		kafka.Header{Key: HeaderDLQReason, Value: []byte(reason.Error())},
		kafka.Header{Key: HeaderDLQWorker, Value: []byte(p.WorkerID)},
		kafka.Header{Key: HeaderDLQSource, Value: fmt.Appendf(nil, "%s/%d/%d", m.Topic, m.Partition, m.Offset)},
	)
	msgs := []kafkabus.Message{{Topic: kafkabus.TopicCommandsDLQ, Key: m.Key, Value: m.Value, Headers: headers}}
	if len(m.Key) > 0 && len(m.Key) <= 64 {
		r := pinreset.Result{CorrelationID: string(m.Key), ASPID: aspID, RequestID: header(m, wire.HeaderRequestID), Code: answer.Code,
			Message: answer.Code.Message(), MemberID: answer.MemberID, CompletedAt: answer.CompletedAt.UTC()}
		v, err := wire.EncodeResult(r)
		if err != nil {
			return err
		}
		msgs = append(msgs, kafkabus.Message{Topic: kafkabus.TopicResults, Key: m.Key, Value: v})
	}
	if err := p.Publisher.Publish(ctx, msgs...); err != nil {
		return fmt.Errorf("dead-letter %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	if p.Metrics != nil {
		kind := "undecodable"
		if errors.Is(reason, seal.ErrOpen) {
			kind = "unopenable"
		}
		p.Metrics.DeadLettered.WithLabelValues(kind).Inc()
	}
	log.Warn("command dead-lettered", zap.Error(reason))
	return nil
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key && len(h.Value) <= 64 {
			return string(h.Value)
		}
	}
	return ""
}
