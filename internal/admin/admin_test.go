package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// TestProfilesOnlyWhenAsked: the profiles are served by WithProfiles
// (PINRESET_ADMIN_PPROF) and not by Handler.
func TestProfilesOnlyWhenAsked(t *testing.T) {
	ready := func(context.Context) error { return nil }
	for _, tc := range []struct {
		name string
		h    http.Handler
		want int
	}{
		{"Handler", Handler(prometheus.NewRegistry(), nil, ready, zap.NewNop()), http.StatusNotFound},
		{"WithProfiles", WithProfiles(prometheus.NewRegistry(), nil, ready, zap.NewNop()), http.StatusOK},
	} {
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap"} {
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.name, path, rec.Code, tc.want)
			}
		}
		rec := httptest.NewRecorder()
		tc.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s /healthz: %d", tc.name, rec.Code)
		}
	}
}
