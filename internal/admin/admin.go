// Package admin serves a binary's operational endpoints on their own port,
// away from the public API: /healthz (the process is alive), /readyz (its
// dependencies answer) and /metrics (Prometheus), and on request Go's
// profiles (/debug/pprof/).
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Handler returns the admin routes. live is called by /healthz: an error
// (a loop dead or stuck) answers 503 with the reason, so that an
// orchestrator restarts the process; a dependency being down must not make
// it fail. ready is called by /readyz with a 2 s deadline; its error is
// answered 503 with the reason (names of dependencies and loops, never a
// secret). live may be nil.
func Handler(reg *prometheus.Registry, live func() error, ready func(context.Context) error, log *zap.Logger) http.Handler {
	return handler(reg, live, ready, log)
}

// WithProfiles is Handler with Go's profiles under /debug/pprof/
// (PINRESET_ADMIN_PPROF): CPU (?seconds=N, at most the write timeout),
// heap, goroutines, and the execution trace.
func WithProfiles(reg *prometheus.Registry, live func() error, ready func(context.Context) error, log *zap.Logger) http.Handler {
	mux := handler(reg, live, ready, log)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	return mux
}

func handler(reg *prometheus.Registry, live func() error, ready func(context.Context) error, log *zap.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if live != nil {
			if err := live(); err != nil {
				log.Error("not alive", zap.Error(err))
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "not alive: "+err.Error()+"\n")
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(ctx); err != nil {
			log.Warn("not ready", zap.Error(err))
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready: "+err.Error()+"\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// Serve serves h on addr until ctx ends. listening, if set, gets the bound address.
func Serve(ctx context.Context, addr string, h http.Handler, listening func(string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("PINRESET_ADMIN_ADDR: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second,
		WriteTimeout: 35 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 8 << 10}
	if listening != nil {
		listening(ln.Addr().String())
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server: %w", err)
	}
	return nil
}
