package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/tracing"
)

// Middleware wraps a Handler with one cross-cutting concern.
type Middleware func(Handler) Handler

// Chain wraps h in mws, the first outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// ForConsumer is h as the consumer's handler: what h did is for the
// middleware; the consumer needs only whether to try again.
func ForConsumer(h Handler) kafkabus.Handler {
	return func(ctx context.Context, m kafka.Message) error {
		_, err := h(ctx, m)
		return err
	}
}

// Traced records a consumer span per attempt at a message, continuing the
// trace the ingress started (its traceparent header).
func Traced(tr trace.Tracer) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m kafka.Message) (Done, error) {
			ctx, span := tr.Start(tracing.Extract(ctx, m.Headers), "process "+m.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attribute.String("pinreset.correlation_id", string(m.Key)), attribute.Int("messaging.kafka.partition", m.Partition)))
			defer span.End()
			return next(ctx, m)
		}
	}
}

// Logged logs each message handled: "command done" with its outcome, or
// its dead-lettering with the reason. Failures are the consumer's to log
// (it retries them). Inside Traced, lines carry the trace id.
func Logged(log *zap.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m kafka.Message) (Done, error) {
			start := time.Now()
			d, err := next(ctx, m)
			if err != nil {
				return d, err
			}
			l := log.With(zap.ByteString("correlation_id", m.Key), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset))
			if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
				l = l.With(zap.String("trace_id", sc.TraceID().String()))
			}
			switch {
			case d.DeadLettered != "":
				l.Warn("command dead-lettered", zap.String("asp_id", d.ASPID), zap.Error(d.Reason))
			default:
				l.Info("command done", zap.String("asp_id", d.ASPID), zap.String("kind", string(d.Kind)),
					zap.String("code", string(d.Report.Result.Code)), zap.String("member_id", d.Report.Result.MemberID),
					zap.String("how", d.Report.How), zap.Duration("took", time.Since(start)), zap.Duration("since_accepted", time.Since(d.AcceptedAt)))
			}
			return d, nil
		}
	}
}

// Measured counts what each message came to (outcomes, their duration
// and age, conflicts, locks, dead letters) and the
// attempts that lacked a key, which it also reports to health: readiness
// names the missing key for five minutes after the last such attempt.
func Measured(mt *metrics.Worker, mon *health.Monitor) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m kafka.Message) (Done, error) {
			start := time.Now()
			d, err := next(ctx, m)
			if err != nil {
				if errors.Is(err, pinreset.ErrMissingKey) {
					kind := "seal" // a message sealed under a key id this worker lacks
					if mk := (*pinreset.MissingKeyError)(nil); errors.As(err, &mk) {
						kind = mk.Kind
					}
					mt.MissingKeys.WithLabelValues(kind).Inc()
					mon.Report("missing "+kind+" key", err, 5*time.Minute)
				}
				return d, err
			}
			if d.DeadLettered != "" {
				mt.DeadLettered.WithLabelValues(d.DeadLettered).Inc()
				return d, nil
			}
			r := d.Report
			mt.Conflicts.Add(float64(r.Conflicts))
			if r.Locked {
				mt.Locks.Inc()
			}
			mt.Outcomes.WithLabelValues(string(d.Kind), string(r.Result.Code), r.How).Inc()
			mt.CommandDuration.WithLabelValues(string(d.Kind)).Observe(time.Since(start).Seconds())
			mt.CommandAge.Observe(time.Since(d.AcceptedAt).Seconds())
			return d, nil
		}
	}
}

// WatchOutages marks an outage for Park when an attempt fails because the
// database or the broker as a whole is down (Outage). An attempt that ran
// out of its own time (ctx ended) was slow, which tells nothing of the
// dependencies though its error is a deadline like theirs: taking it for an
// outage would stop parking for parkCalm whenever lanes are slow
// (overload). A dependency's own timeout ends before ctx, and counts.
func (p *Processor) WatchOutages(next Handler) Handler {
	return func(ctx context.Context, m kafka.Message) (Done, error) {
		d, err := next(ctx, m)
		if err != nil && ctx.Err() == nil && p.Outage != nil && p.Outage(err) {
			p.outageAt.set(p.now())
		}
		return d, err
	}
}

// atomicTime is a time read and written from several lanes.
type atomicTime struct{ ns atomic.Int64 }

func (a *atomicTime) set(t time.Time) { a.ns.Store(t.UnixNano()) }
func (a *atomicTime) get() time.Time  { return time.Unix(0, a.ns.Load()) }
