// Package tracing sets up OpenTelemetry tracing for a binary and carries the
// W3C trace context through Kafka headers, so that one trace runs from the
// HTTP request through the ingress, the command on Kafka and the worker.
package tracing

import (
	"context"
	"fmt"
	"os"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Propagator is the W3C Trace Context propagator (traceparent, tracestate).
var Propagator = propagation.TraceContext{}

// Setup builds the tracer provider of a binary. exporter is "none" (the
// default: no spans are recorded), "otlp" (OTLP over HTTP, configured by the
// standard OTEL_EXPORTER_OTLP_* variables) or "file" (spans as JSON lines
// appended to file, for tests and debugging). Call shutdown to flush.
func Setup(ctx context.Context, exporter, file, service string) (trace.TracerProvider, func(context.Context) error, error) {
	var exp sdktrace.SpanExporter
	switch exporter {
	case "", "none":
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	case "otlp":
		e, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("PINRESET_TRACES_EXPORTER=otlp: %w", err)
		}
		exp = e
	case "file":
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("PINRESET_TRACES_FILE: %w", err)
		}
		e, err := stdouttrace.New(stdouttrace.WithWriter(f))
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		exp = closingExporter{e, f}
	default:
		return nil, nil, fmt.Errorf("PINRESET_TRACES_EXPORTER: %q is not none, otlp or file", exporter)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))),
	)
	return tp, tp.Shutdown, nil
}

type closingExporter struct {
	sdktrace.SpanExporter
	f *os.File
}

func (c closingExporter) Shutdown(ctx context.Context) error {
	err := c.SpanExporter.Shutdown(ctx)
	c.f.Close()
	return err
}

// Headers carries trace context in Kafka message headers.
type Headers struct{ H *[]kafka.Header }

func (c Headers) Get(key string) string {
	for _, h := range *c.H {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c Headers) Set(key, value string) {
	for i, h := range *c.H {
		if h.Key == key {
			(*c.H)[i].Value = []byte(value)
			return
		}
	}
	*c.H = append(*c.H, kafka.Header{Key: key, Value: []byte(value)})
}

func (c Headers) Keys() []string {
	keys := make([]string, 0, len(*c.H))
	for _, h := range *c.H {
		keys = append(keys, h.Key)
	}
	return keys
}

// Inject writes ctx's trace context into headers.
func Inject(ctx context.Context, headers *[]kafka.Header) { Propagator.Inject(ctx, Headers{headers}) }

// Extract returns ctx with the trace context found in headers.
func Extract(ctx context.Context, headers []kafka.Header) context.Context {
	return Propagator.Extract(ctx, Headers{&headers})
}
