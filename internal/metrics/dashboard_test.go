package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmwallet/pinreset/internal/metrics"
)

// TestDashboardUsesRealMetrics: every series the Grafana dashboard queries
// is one the binaries register, so a renamed metric breaks this test, not
// the operators' dashboard.
func TestDashboardUsesRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deployments/grafana/pinreset-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics.NewIngress(reg, func() float64 { return 0 })
	metrics.NewWorker(reg)
	have := map[string]bool{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	// Vectors without observations are not gathered: register the names by hand.
	for _, n := range []string{"pinreset_http_requests_total", "pinreset_http_request_duration_seconds",
		"pinreset_commands_published_total", "pinreset_outcomes_total", "pinreset_command_duration_seconds", "pinreset_consumer_lag"} {
		if !strings.Contains(string(mustSource(t)), `"`+n+`"`) {
			t.Fatalf("%s is not defined in metrics.go", n)
		}
		have[n] = true
	}
	name := regexp.MustCompile(`pinreset_[a-z_]+`)
	used := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				used++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
				if !have[base] {
					t.Errorf("panel %q queries %s, which no binary registers", p.Title, n)
				}
			}
		}
	}
	if used < 10 {
		t.Fatalf("only %d metric references found in the dashboard", used)
	}
}

func mustSource(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
