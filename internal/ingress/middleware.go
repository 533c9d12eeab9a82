package ingress

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/tracing"
)

type ctxKey struct{}

// loggerFrom returns the request's logger (with its correlation id), or def.
func loggerFrom(ctx context.Context, def *zap.Logger) *zap.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*zap.Logger); ok {
		return l
	}
	return def
}

// recorder remembers the status and outcome code written, for the access
// log, and holds the response encryption of an encrypted request.
type recorder struct {
	http.ResponseWriter
	status int
	code   pinreset.Code
	seal   func(plain []byte) ([]byte, error)
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// accessLog gives every request a logger carrying its correlation id, echoes
// the correlation id, and logs one line per request. Only the correlation id
// and ASP id headers are logged: never the access key or the tran token.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cid := r.Header.Get("X-KM-Correlation-Id")
		if len(cid) > 64 {
			cid = cid[:64]
		}
		if cid != "" {
			w.Header().Set("X-KM-Correlation-Id", cid)
		}
		ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		log := s.log.With(zap.String("correlation_id", cid))
		if sc := span.SpanContext(); sc.IsValid() {
			log = log.With(zap.String("trace_id", sc.TraceID().String()))
		}
		rec := &recorder{ResponseWriter: w}
		r2 := r.WithContext(context.WithValue(ctx, ctxKey{}, log))
		next.ServeHTTP(rec, r2)
		span.SetAttributes(attribute.String("http.route", r2.Pattern), attribute.Int("http.response.status_code", rec.status),
			attribute.String("pinreset.code", string(rec.code)), attribute.String("pinreset.correlation_id", cid))
		if s.metrics != nil {
			route := r2.Pattern // set by the mux: a bounded label, unlike the path
			if route == "" {
				route = "unmatched"
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			s.metrics.Requests.WithLabelValues(route, strconv.Itoa(status), string(rec.code)).Inc()
			s.metrics.RequestDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			return
		}
		log.Info("request",
			zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.String("asp_id", truncate(r.Header.Get("X-KM-User-AspId"), 15)),
			zap.Int("status", rec.status), zap.String("code", string(rec.code)),
			zap.Duration("took", time.Since(start)))
	})
}

// recoverer turns a panic into a 500 with the generic code; the stack goes to the log.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", zap.Any("panic", v), zap.Stack("stack"))
				s.writeCode(w, s.log, pinreset.CodeInternal, pinreset.CodeInternal.Message())
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
