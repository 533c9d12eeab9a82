package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/tracing"
	"github.com/kmwallet/pinreset/internal/worker"
)

// Each middleware is tested here once, around a handler that returns what
// the test says: no Kafka, no database.

var msg = kafka.Message{Topic: "password.commands", Partition: 3, Offset: 41, Key: []byte("261201120000-00000a1")}

func returning(d worker.Done, err error) worker.Handler {
	return func(context.Context, kafka.Message) (worker.Done, error) { return d, err }
}

func decided(code pinreset.Code, how string) worker.Done {
	return worker.Done{ASPID: "KMTESTASP000001", Kind: pinreset.KindReset, AcceptedAt: time.Now().Add(-time.Second),
		Report: decision.Report{Result: pinreset.Result{CorrelationID: string(msg.Key), Code: code, MemberID: "m1"}, How: how}}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) worker.Middleware {
		return func(next worker.Handler) worker.Handler {
			return func(ctx context.Context, m kafka.Message) (worker.Done, error) {
				order = append(order, name+" in")
				d, err := next(ctx, m)
				order = append(order, name+" out")
				return d, err
			}
		}
	}
	h := worker.Chain(returning(worker.Done{}, nil), mw("a"), mw("b"))
	if _, err := h(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ", "); got != "a in, b in, b out, a out" {
		t.Fatalf("order %s, want the first middleware outermost", got)
	}
	if err := worker.ForConsumer(worker.Chain(returning(worker.Done{}, errors.New("down"))))(context.Background(), msg); err == nil {
		t.Fatal("ForConsumer dropped the handler's error: the consumer would not retry")
	}
}

func TestTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	// The ingress's span, carried in the message's traceparent header.
	parentCtx, parent := tr.Start(context.Background(), "ingress")
	m := msg
	tracing.Inject(parentCtx, &m.Headers)
	parent.End()
	var inside trace.SpanContext
	h := worker.Traced(tr)(func(ctx context.Context, _ kafka.Message) (worker.Done, error) {
		inside = trace.SpanContextFromContext(ctx)
		return worker.Done{}, nil
	})
	if _, err := h(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want the ingress's and the worker's", len(spans))
	}
	s := spans[1]
	if s.Name() != "process password.commands" || s.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
	}
	if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Error("the worker's span does not continue the ingress's trace")
	}
	if inside.SpanID() != s.SpanContext().SpanID() {
		t.Error("the handler does not run inside the worker's span")
	}
}

func TestLogged(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	// A command done: one info line with what an operator needs.
	if _, err := worker.Logged(log)(returning(decided(pinreset.CodeSuccess, "decided"), nil))(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	// A failure is the consumer's to log (it retries): nothing here.
	if _, err := worker.Logged(log)(returning(worker.Done{}, errors.New("database down")))(context.Background(), msg); err == nil {
		t.Fatal("Logged swallowed an error")
	}
	// A dead letter: a warning with the reason.
	dl := worker.Done{ASPID: "KMTESTASP000001", DeadLettered: "undecodable", Reason: errors.New("bad version byte")}
	if _, err := worker.Logged(log)(returning(dl, nil))(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	entries := logs.AllUntimed()
	if len(entries) != 2 {
		t.Fatalf("%d log lines, want 2: %+v", len(entries), entries)
	}
	done := entries[0].ContextMap()
	if entries[0].Message != "command done" || done["correlation_id"] != string(msg.Key) || done["code"] != "000_000" ||
		done["how"] != "decided" || done["member_id"] != "m1" || done["offset"] != int64(41) {
		t.Errorf("command done line: %s %v", entries[0].Message, done)
	}
	if entries[1].Level != zapcore.WarnLevel || entries[1].Message != "command dead-lettered" || entries[1].ContextMap()["error"] != "bad version byte" {
		t.Errorf("dead-letter line: %s %s %v", entries[1].Level, entries[1].Message, entries[1].ContextMap())
	}
}

func TestMeasured(t *testing.T) {
	m := metrics.NewWorker(prometheus.NewRegistry())
	mon := health.New()
	run := func(d worker.Done, err error) {
		t.Helper()
		_, _ = worker.Measured(m, mon)(returning(d, err))(context.Background(), msg)
	}
	locked := decided(pinreset.CodeAttemptsExceeded, "decided")
	locked.Report.Locked, locked.Report.Conflicts = true, 2
	run(locked, nil)
	run(decided(pinreset.CodeSuccess, "repeated"), nil)
	run(worker.Done{DeadLettered: "unopenable"}, nil)
	run(worker.Done{}, errors.New("database down"))
	if mon.Ready() != nil {
		t.Fatalf("readiness failed after an outage of the database: %v", mon.Ready())
	}
	run(worker.Done{}, &pinreset.MissingKeyError{Kind: "pepper", Err: errors.New("pepper p9")})

	for name, c := range map[string]struct {
		got  float64
		want float64
	}{
		"outcome decided":       {testutil.ToFloat64(m.Outcomes.WithLabelValues("reset", "001_069", "decided")), 1},
		"outcome repeated":      {testutil.ToFloat64(m.Outcomes.WithLabelValues("reset", "000_000", "repeated")), 1},
		"locks":                 {testutil.ToFloat64(m.Locks), 1},
		"conflicts":             {testutil.ToFloat64(m.Conflicts), 2},
		"dead letters":          {testutil.ToFloat64(m.DeadLettered.WithLabelValues("unopenable")), 1},
		"missing pepper":        {testutil.ToFloat64(m.MissingKeys.WithLabelValues("pepper")), 1},
		"durations of outcomes": {float64(testutil.CollectAndCount(m.CommandDuration)), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", name, c.got, c.want)
		}
	}
	if err := mon.Ready(); err == nil || !strings.Contains(err.Error(), "missing pepper key") {
		t.Errorf("readiness after a missing pepper: %v, want it named", err)
	}
}
