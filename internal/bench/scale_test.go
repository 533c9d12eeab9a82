package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/bench"
	"github.com/kmwallet/pinreset/internal/kmheader"
)

// TestScaleSummaryKeys: make bench-scale's summary holds the keys issue 24
// asks for, whatever was measured.
func TestScaleSummaryKeys(t *testing.T) {
	var buf bytes.Buffer
	if err := (bench.ScaleSummary{}).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"members_small", "members_large", "decisions_retained", "rps_small", "rps_large",
		"p99_small_ms", "p99_large_ms", "rps_during_sweep", "hash_cpu_ms_xcrypto", "hash_cpu_ms_pooled",
		"rps_large_over_rps_small", "p99_large_over_p99_small", "rps_during_sweep_over_rps_large", "targets", "seed_seconds"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no key %q in %s", k, buf.Bytes())
		}
	}
}

// TestRunScaleTiny runs make bench-scale's whole path at a tiny scale: the
// binaries as processes on the embedded infrastructure, 200 members then
// 600 with 200 retained decisions seeded in bulk, the sweep under load, in
// seconds. It checks that every part measured something, not how fast.
// (A test of the path, so 200 members and not 1,000.)
func TestRunScaleTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded infrastructure and the services (not with -short)")
	}
	binDir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "../../cmd/sandbox", "../../cmd/ingress", "../../cmd/worker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile("../../deployments/sandbox/asps.json")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := asp.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	a := reg.ASPs[0]
	cfg := bench.DefaultScaleConfig()
	cfg.BinDir, cfg.SandboxDir = binDir, "../../deployments/sandbox"
	cfg.SmallMembers, cfg.LargeMembers, cfg.ASPMembers, cfg.Decisions = 200, 600, 100, 200
	cfg.Duration, cfg.Segments, cfg.SweepWarmup, cfg.SweepTail, cfg.Concurrency = 2*time.Second, 2, 2*time.Second, time.Second, 8
	cfg.SeedBatch, cfg.ProbeSizes, cfg.ProbeSamples, cfg.HashRounds = 50, []int{100, 300}, 5, 1
	cfg.Credentials = kmheader.Credentials{ASPID: a.ID, AccessKey: a.Credentials[0].AccessKey, SecretKey: []byte(a.Credentials[0].SecretKey), Scheme: a.Preferred()}
	var log bytes.Buffer
	cfg.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := bench.RunScale(ctx, cfg)
	if err != nil {
		t.Fatalf("RunScale: %v\n%s", err, log.String())
	}
	var out bytes.Buffer
	_ = s.WriteJSON(&out)
	t.Logf("log:\n%s\nsummary:\n%s", log.String(), out.Bytes())
	switch {
	case s.MembersSmall != 200 || s.MembersLarge < 600:
		t.Errorf("members %d and %d, want 200 and at least 600", s.MembersSmall, s.MembersLarge)
	case len(s.RPSSmallSegments) != 2 || len(s.RPSLargeSegments) != 2:
		t.Errorf("segments %v and %v, want two of each", s.RPSSmallSegments, s.RPSLargeSegments)
	case s.DecisionsRetained < 200:
		t.Errorf("%d decisions retained, want at least 200", s.DecisionsRetained)
	case s.RPSSmall <= 0 || s.RPSLarge <= 0 || s.P99SmallMs <= 0 || s.P99LargeMs <= 0:
		t.Errorf("runs measured nothing: %+v", s)
	case s.SweepDeleted < 90 || s.SweepDeleted > 110:
		t.Errorf("the sweep deleted %d of 200 decisions spread over the retention, want about half", s.SweepDeleted)
	case s.HashCPUMsXCrypto <= 0 || s.HashCPUMsPooled <= 0:
		t.Errorf("hash CPU %v and %v", s.HashCPUMsXCrypto, s.HashCPUMsPooled)
	case s.DBCommandsPerRequestSmall <= 0 || s.BytesPerMember <= 0 || s.BytesPerDecision <= 0:
		t.Errorf("database figures missing: %v commands per request, %v bytes per member, %v per decision", s.DBCommandsPerRequestSmall, s.BytesPerMember, s.BytesPerDecision)
	case s.PeakMBSmall["worker"] <= 0 || s.PeakMBLarge["ingress"] <= 0:
		t.Errorf("peaks missing: %v %v", s.PeakMBSmall, s.PeakMBLarge)
	case len(s.ASPProbe) != 2 || s.ASPProbe[1].UpdateP50Ms <= 0:
		t.Errorf("ASP probe: %+v", s.ASPProbe)
	case len(s.Targets) == 0:
		t.Error("no targets")
	}
	if s.Errors > 0 {
		t.Errorf("%d errors or unexpected answers", s.Errors)
	}
}
