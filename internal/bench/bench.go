// Package bench is make bench: it measures the service against the
// physical limit of its PIN hashing, on this machine, in one run, and sums
// it up in one JSON object (README, Performance). It starts the embedded
// infrastructure, the ingress and the worker from their binaries as
// separate processes, and drives them with the load generator.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/loadgen"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/worker"
)

// Config are the settings of Run; DefaultConfig gives pwctl bench's.
type Config struct {
	// BinDir holds the sandbox, ingress and worker binaries (-bin-dir).
	// The default is bin.
	BinDir string
	// SandboxDir holds the sandbox's settings, asps.json and sandbox.env
	// (-sandbox-dir). The default is deployments/sandbox.
	SandboxDir string
	// Saturate is the length of each saturation run (-saturate); the
	// default is 20 s. Light is the length of the light-load run
	// (-light); the default is 10 s.
	Saturate, Light time.Duration
	// Members is the number of members seeded per hashing setting
	// (-members). The default is 3000.
	Members int
	// Plot, if not "", is where the saturation run's latency and
	// throughput plot is written, a PNG (-plot).
	Plot string
	// Credentials sign the load's requests: an ASP of SandboxDir's
	// asps.json, which the ingress is started with.
	Credentials kmheader.Credentials
	// Log gets a line for each step ("bench: ..."); nil discards them.
	Log io.Writer
}

// DefaultConfig is pwctl bench's defaults; Credentials is still to be set.
func DefaultConfig() Config {
	return Config{BinDir: "bin", SandboxDir: "deployments/sandbox", Saturate: 20 * time.Second, Light: 10 * time.Second, Members: 3000}
}

// Run measures the service as Config says and returns the summary. It
// stops every process it started, and removes their data, before it
// returns.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	b := &bench{binDir: cfg.BinDir, creds: cfg.Credentials, stderr: log, dataDir: filepath.Join(os.TempDir(), fmt.Sprintf("pinreset-bench-%d", os.Getpid()))}
	defer os.RemoveAll(b.dataDir)
	var err error
	if b.sandboxDir, err = filepath.Abs(cfg.SandboxDir); err != nil {
		return Summary{}, err
	}
	if b.env, err = config.ReadEnvFile(filepath.Join(b.sandboxDir, "sandbox.env")); err != nil {
		return Summary{}, err
	}
	defer b.stopAll()
	return b.run(ctx, cfg.Saturate, cfg.Light, cfg.Members, cfg.Plot)
}

// WriteJSON writes s as make bench prints it: one JSON object, indented
// by two spaces, and a newline.
func (s Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// Summary is the one JSON object make bench prints (WriteJSON): rates in
// requests per second, times in milliseconds, memory in MiB, as the keys
// say.
type Summary struct {
	Cores            int     `json:"cores"`
	HashMs           float64 `json:"hash_ms"`            // one argon2id hash, default parameters
	HashesPerRequest float64 `json:"hashes_per_request"` // measured by the worker during the e2e run
	// Of those, hashes made ahead of a check that failed (thrown away).
	HashesDroppedPerRequest float64 `json:"hashes_dropped_per_request"`
	LimitRPS                float64 `json:"limit_rps"` // cores / (hashes_per_request × hash time)
	// The same with the CPU time of a hash when every core hashes at once,
	// as in the worker at saturation (argon2id is memory-bound).
	HashMsAllCores   float64 `json:"hash_ms_all_cores"`
	LimitAllCoresRPS float64 `json:"limit_rps_all_cores"` // cores / (hashes_per_request × hash_ms_all_cores)
	CoreRPS          float64 `json:"core_rps"`            // the worker's decide-and-store path, no HTTP, no Kafka
	E2ERPS           float64 `json:"e2e_rps"`             // through HTTP, ingress, Kafka, worker and back, at saturation
	E2EP50Ms         float64 `json:"e2e_p50_ms"`
	E2EP95Ms         float64 `json:"e2e_p95_ms"`
	E2EP99Ms         float64 `json:"e2e_p99_ms"`
	E2EMaxMs         float64 `json:"e2e_max_ms"`
	E2EP50MsLight    float64 `json:"e2e_p50_ms_light"` // at 10% of e2e_rps, open model
	LightTargetMs    float64 `json:"e2e_p50_ms_light_target"`
	// HashPairMsAfterIdle: two hashes side by side after the light load's
	// mean gap between requests, in this process with nothing else running
	// (hashPairMsAfterIdle): the hashing in a light-load PIN set.
	// CheapE2EP50MsLight: the same light load with cheap hashing, everything
	// but the hashing. e2e_p50_ms_light is about the sum of the two.
	HashPairMsAfterIdle float64 `json:"hash_pair_ms_after_idle"`
	CheapE2EP50MsLight  float64 `json:"cheap_e2e_p50_ms_light"`

	CheapHashMs      float64 `json:"cheap_hash_ms"` // argon2id m=64 KiB, t=1
	CheapCoreRPS     float64 `json:"cheap_core_rps"`
	CheapE2ERPS      float64 `json:"cheap_e2e_rps"`
	CheapE2EP50Ms    float64 `json:"cheap_e2e_p50_ms"`
	CheapE2EP99Ms    float64 `json:"cheap_e2e_p99_ms"`
	IngressPeakRSSMB float64 `json:"ingress_peak_rss_mb"`
	WorkerPeakRSSMB  float64 `json:"worker_peak_rss_mb"`
	E2EOverLimit     float64 `json:"e2e_rps_over_limit_rps"`
	E2EOverLimitAll  float64 `json:"e2e_rps_over_limit_rps_all_cores"`
	E2EOverCore      float64 `json:"e2e_rps_over_core_rps"`
	CheapE2EOverCore float64 `json:"cheap_e2e_rps_over_core_rps"`
	Errors           int     `json:"errors"` // transport errors and unexpected answers in all runs but the overload
	// The worker's argon2id CPU time per answered request at saturation:
	// its CPU per request minus what its own code costs per request (its
	// CPU per request with cheap hashing, less that hashing), beside
	// StandaloneHashCPUMsPerRequest, hashes per request × HashMs, the same
	// work alone: the difference is what hashing costs beside the other
	// processes. (x/crypto's argon2 runs each segment on a goroutine of its
	// own, so no per-thread clock can time it from the worker's side.)
	WorkerHashCPUMsPerRequest     float64 `json:"worker_hash_cpu_ms_per_request"`
	StandaloneHashCPUMsPerRequest float64 `json:"standalone_hash_cpu_ms_per_request"`
	// ServiceOverhead is (worker + ingress CPU per request − the worker's
	// argon2id CPU per request) / that argon2id CPU: the service's own code
	// as a share of the hashing it serves.
	ServiceOverhead float64 `json:"service_overhead"`
	// DBRoundTripsPerRequest: database commands per request of the core
	// run (PIN sets by reset, the worker's whole journey), counted with the
	// driver's command monitor.
	DBRoundTripsPerRequest float64 `json:"db_round_trips_per_request"`
	// CPU time per answered request, by process, in the saturation runs:
	// where the cores go besides hashing. "infra" is the embedded broker and
	// database (one process), "load" this generator.
	CPUMsPerRequest      map[string]float64 `json:"cpu_ms_per_request"`
	CheapCPUMsPerRequest map[string]float64 `json:"cheap_cpu_ms_per_request"`
	// Overload: an open-model run at 10 × e2e_rps for 10 s against a fresh
	// worker with default hashing and a fresh ingress with default settings
	// (5 s result wait, so its load shedding applies); requests give up after
	// 15 s. Answered counts every HTTP answer, 503s included; decided only
	// the answers that carry the command's outcome.
	OverloadOfferedRPS   float64        `json:"overload_offered_rps"`
	OverloadAnsweredRPS  float64        `json:"overload_answered_rps"`
	OverloadDecidedRPS   float64        `json:"overload_decided_rps"`
	OverloadP50Ms        float64        `json:"overload_p50_ms"`
	OverloadP99Ms        float64        `json:"overload_p99_ms"`
	OverloadByStatus     map[string]int `json:"overload_by_status"`
	OverloadGaveUp       int            `json:"overload_gave_up"`
	OverloadWorkerRSSMB  float64        `json:"overload_worker_peak_rss_mb"`
	OverloadIngressRSSMB float64        `json:"overload_ingress_peak_rss_mb"`

	// The worker's peak resident memory less what it handed back with
	// MADV_FREE (residentMB), sampled every 100 ms, beside the memory limit
	// it runs under (worker.MemoryLimit: GOMEMLIMIT's default).
	OverloadWorkerResidentMB float64 `json:"overload_worker_peak_resident_mb"`
	// The cores each process kept busy during the overload run: what the
	// refusals cost the hashing beside them.
	OverloadCores       map[string]float64 `json:"overload_cores"`
	WorkerMemoryLimitMB float64            `json:"worker_memory_limit_mb"`

	// Arithmetic, not a measurement: e2e_rps if the database, the broker
	// and the load generator ran on machines of their own, from the CPU per
	// request measured at saturation (cores / (total - infra - load)),
	// assuming the cores stay as busy; and that over limit_rps.
	ProjectedE2ERPSInfraElsewhere float64 `json:"projected_e2e_rps_infra_elsewhere"`
	ProjectedE2EOverLimit         float64 `json:"projected_e2e_rps_over_limit_rps_infra_elsewhere"`
}

// bench is one Run: its settings, and the processes it started.
type bench struct {
	binDir, sandboxDir, dataDir string
	env                         map[string]string // sandbox.env
	creds                       kmheader.Credentials
	stderr                      io.Writer
	mu                          sync.Mutex
	procs                       []*exec.Cmd
	kafka, mongo                string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context, saturate, light time.Duration, members int, plot string) (Summary, error) {
	s := Summary{Cores: runtime.NumCPU()}
	b.kafka, b.mongo = freePort(), freePort()
	infra, err := b.start("sandbox", nil, "-infra-only", "-data-dir", b.dataDir, "-kafka-addr", b.kafka, "-mongo-addr", b.mongo, "-sandbox-dir", b.sandboxDir)
	if err != nil {
		return s, err
	}
	if err := waitOutput(ctx, infra, "sandbox: infrastructure ready", 2*time.Minute); err != nil {
		return s, err
	}
	store, err := mongostore.Open(mongostore.Config{URI: "mongodb://" + b.mongo + "/", Database: "pinreset"})
	if err != nil {
		return s, err
	}
	defer store.Close(context.Background())

	// 1. The hashing alone, in this process.
	if !worker.MADVFree(os.Getenv) {
		b.logf("warning: GODEBUG lacks madvdontneed=0 (make bench sets it): this process's hash figures include page faults the worker does not have")
	}
	def, err := b.hasher(nil)
	if err != nil {
		return s, err
	}
	cheapEnv := map[string]string{"PINRESET_ARGON2_MEMORY_KIB": "64", "PINRESET_ARGON2_TIME": "1"}
	cheap, err := b.hasher(cheapEnv)
	if err != nil {
		return s, err
	}
	s.HashMs = hashMs(def, 21)
	s.HashMsAllCores = hashMsAllCores(def, s.Cores, 11)
	s.CheapHashMs = hashMs(cheap, 201)
	b.logf("hash %.1f ms, %.1f ms with every core hashing (cheap %.2f ms)", s.HashMs, s.HashMsAllCores, s.CheapHashMs)

	// Members: sets hashed with each setting, so a cheap run never verifies
	// an expensive hash, and fresh ones for each run.
	for _, set := range []struct {
		pattern string
		h       workerHasher
	}{{"benchcore%06d@sandbox.example", def}, {"bench%06d@sandbox.example", def},
		{"benchcheapcore%06d@sandbox.example", cheap}, {"benchcheap%06d@sandbox.example", cheap},
		{"benchover%06d@sandbox.example", def}} {
		hash, err := set.h.Hash("240810")
		if err != nil {
			return s, err
		}
		if _, err := loadgen.Seed(ctx, store, loadgen.SeedSpec{ASPID: "KMSANDBOXASP001", Pattern: set.pattern, Count: members, Batch: 1000, PINHash: hash, Now: time.Now()}, nil); err != nil {
			return s, err
		}
	}
	b.logf("seeded %d members per setting", members)

	// 2. The worker's own path, in this process: same code, same database,
	// same hashing, as many goroutines as cores, no HTTP and no Kafka.
	var trips atomic.Int64
	counted, err := mongostore.Open(mongostore.Config{URI: "mongodb://" + b.mongo + "/", Database: "pinreset",
		Monitor: &event.CommandMonitor{Started: func(context.Context, *event.CommandStartedEvent) { trips.Add(1) }}})
	if err != nil {
		return s, err
	}
	defer counted.Close(context.Background())
	var coreDone int64
	if s.CoreRPS, coreDone, err = b.coreRPS(ctx, counted, nil, "benchcore%06d@sandbox.example", members, saturate/2); err != nil {
		return s, err
	}
	if coreDone > 0 {
		s.DBRoundTripsPerRequest = float64(int(float64(trips.Load())/float64(coreDone)*100+0.5)) / 100
	}
	if s.CheapCoreRPS, _, err = b.coreRPS(ctx, store, cheapEnv, "benchcheapcore%06d@sandbox.example", members, saturate/2); err != nil {
		return s, err
	}
	b.logf("core %.1f rps (cheap %.1f rps)", s.CoreRPS, s.CheapCoreRPS)

	// 3. End to end at saturation, then at 10% of it.
	httpAddr := freePort()
	ing, err := b.startReady(ctx, "ingress", httpAddr, map[string]string{"PINRESET_HTTP_ADDR": httpAddr})
	if err != nil {
		return s, err
	}
	workerAdmin := freePort()
	wk, err := b.startReady(ctx, "worker", workerAdmin, map[string]string{"PINRESET_ADMIN_ADDR": workerAdmin})
	if err != nil {
		return s, err
	}
	common := loadgen.DefaultOptions()
	common.URL, common.MemberCount = "http://"+httpAddr+"/api/v1/user/password/reset", members
	before := scrape(workerAdmin)
	cpu := b.cpuMeter(map[string]*exec.Cmd{"infra": infra, "ingress": ing, "worker": wk})
	o := common
	o.Members, o.Concurrency, o.Duration, o.PlotFile = "bench%06d@sandbox.example", 8*s.Cores, saturate, plot
	sat, err := b.load(ctx, o)
	if err != nil {
		return s, err
	}
	after := scrape(workerAdmin)
	s.CPUMsPerRequest = cpu.perRequest(sat.Answered)
	if n := after["pinreset_outcomes_total"] - before["pinreset_outcomes_total"]; n > 0 {
		s.HashesPerRequest = (after["pinreset_hash_duration_seconds_count"] - before["pinreset_hash_duration_seconds_count"]) / n
		const started, used = `pinreset_hashes_ahead_total{result="started"}`, `pinreset_hashes_ahead_total{result="used"}`
		s.HashesDroppedPerRequest = ((after[started] - before[started]) - (after[used] - before[used])) / n
	}

	s.E2ERPS, s.E2EP50Ms, s.E2EP95Ms, s.E2EP99Ms, s.E2EMaxMs = sat.RPS, sat.P50ms, sat.P95ms, sat.P99ms, sat.MaxMs
	s.Errors += sat.Errors + sat.Unexpected
	b.logf("e2e %.1f rps, p50 %.1f ms p99 %.1f ms", sat.RPS, sat.P50ms, sat.P99ms)
	if s.HashMs > 0 && s.HashesPerRequest > 0 {
		s.LimitRPS = float64(s.Cores) / (s.HashesPerRequest * s.HashMs / 1000)
		s.LimitAllCoresRPS = float64(s.Cores) / (s.HashesPerRequest * s.HashMsAllCores / 1000)
	}
	rate := max(s.E2ERPS/10, 1)
	// lightP50 is the p50 of an open load at 10% of saturation on members.
	lightP50 := func(members string) (float64, error) {
		o := common
		o.Members, o.InitialPIN, o.Rate, o.Duration = members, "", hundredths(rate), light
		rep, err := b.load(ctx, o)
		s.Errors += rep.Errors + rep.Unexpected
		return rep.P50ms, err
	}
	s.HashPairMsAfterIdle = hashPairMsAfterIdle(def, time.Duration(float64(time.Second)/rate), 15)
	if s.E2EP50MsLight, err = lightP50("bench%06d@sandbox.example"); err != nil {
		return s, err
	}
	b.logf("light p50 %.1f ms; two hashes side by side after as long idle %.1f ms", s.E2EP50MsLight, s.HashPairMsAfterIdle)
	// The verification and the new PIN's hash run side by side on two idle
	// cores: one hash time, plus 3 ms for everything else.
	s.LightTargetMs = s.HashMs + 3
	s.IngressPeakRSSMB = peakRSSMB(ing)
	s.WorkerPeakRSSMB = peakRSSMB(wk)

	// 4. The same with cheap hashing: what is left is the pipeline's own cost.
	b.stop(wk)
	wk, err = b.startReady(ctx, "worker", workerAdmin, map[string]string{"PINRESET_ADMIN_ADDR": workerAdmin, "PINRESET_ARGON2_MEMORY_KIB": "64", "PINRESET_ARGON2_TIME": "1"})
	if err != nil {
		return s, err
	}
	cpu = b.cpuMeter(map[string]*exec.Cmd{"infra": infra, "ingress": ing, "worker": wk})
	o = common
	o.Members, o.Concurrency, o.Duration = "benchcheap%06d@sandbox.example", 16*s.Cores, saturate
	ch, err := b.load(ctx, o)
	if err != nil {
		return s, err
	}
	s.CheapCPUMsPerRequest = cpu.perRequest(ch.Answered)
	s.CheapE2ERPS, s.CheapE2EP50Ms, s.CheapE2EP99Ms = ch.RPS, ch.P50ms, ch.P99ms
	s.Errors += ch.Errors + ch.Unexpected
	s.WorkerPeakRSSMB = max(s.WorkerPeakRSSMB, peakRSSMB(wk))
	s.IngressPeakRSSMB = peakRSSMB(ing)
	b.logf("cheap e2e %.1f rps, p50 %.1f ms", ch.RPS, ch.P50ms)
	if s.CheapE2EP50MsLight, err = lightP50("benchcheap%06d@sandbox.example"); err != nil {
		return s, err
	}
	b.logf("cheap light p50 %.1f ms", s.CheapE2EP50MsLight)
	s.StandaloneHashCPUMsPerRequest = s.HashesPerRequest * s.HashMs
	own := s.CheapCPUMsPerRequest["worker"] - s.HashesPerRequest*s.CheapHashMs
	if a := s.CPUMsPerRequest["worker"] - own; a > 0 {
		s.WorkerHashCPUMsPerRequest = a
		s.ServiceOverhead = float64(int(((s.CPUMsPerRequest["worker"]+s.CPUMsPerRequest["ingress"]-a)/a)*1000+0.5)) / 1000
	}

	// 5. Ten times the saturation rate, on production settings: latency
	// and 503s grow, memory must not.
	b.stop(wk)
	b.stop(ing)
	if ing, err = b.startReady(ctx, "ingress", httpAddr, map[string]string{"PINRESET_HTTP_ADDR": httpAddr, "PINRESET_RESULT_WAIT": "5s"}); err != nil {
		return s, err
	}
	if wk, err = b.startReady(ctx, "worker", workerAdmin, map[string]string{"PINRESET_ADMIN_ADDR": workerAdmin}); err != nil {
		return s, err
	}
	s.OverloadOfferedRPS = 10 * s.E2ERPS
	o = common
	o.Members, o.InitialPIN, o.Rate, o.Duration, o.Timeout = "benchover%06d@sandbox.example", "", hundredths(s.OverloadOfferedRPS), 10*time.Second, 15*time.Second
	stopSampling := make(chan struct{})
	resident := peakResident(wk, stopSampling)
	cpu = b.cpuMeter(map[string]*exec.Cmd{"infra": infra, "ingress": ing, "worker": wk})
	ov, err := b.load(ctx, o)
	s.OverloadCores = cpu.cores(time.Duration(ov.DurationS * float64(time.Second)))
	close(stopSampling)
	s.OverloadWorkerResidentMB = <-resident
	if err != nil {
		return s, err
	}
	s.OverloadAnsweredRPS, s.OverloadByStatus, s.OverloadGaveUp = ov.RPS, ov.ByStatus, ov.Errors+ov.Dropped
	s.OverloadP50Ms, s.OverloadP99Ms = ov.P50ms, ov.P99ms
	if ov.DurationS > 0 {
		decided := 0
		for status, n := range ov.ByStatus {
			if status != "202" && status != "503" {
				decided += n
			}
		}
		s.OverloadDecidedRPS = float64(decided) / ov.DurationS
	}
	s.OverloadWorkerRSSMB, s.OverloadIngressRSSMB = peakRSSMB(wk), peakRSSMB(ing)
	if cfg, err := config.LoadWorker(b.getenv(nil)); err == nil {
		s.WorkerMemoryLimitMB = float64(worker.MemoryLimit(cfg.HashConcurrency, cfg.Argon2MemoryKiB) >> 20)
	}
	b.logf("overload: offered %.0f rps, answered %.1f rps (decided %.1f), %v, gave up %d, worker peak %.0f MiB",
		s.OverloadOfferedRPS, ov.RPS, s.OverloadDecidedRPS, ov.ByStatus, s.OverloadGaveUp, s.OverloadWorkerRSSMB)

	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return float64(int(a/b*1000+0.5)) / 1000
	}
	s.E2EOverLimit, s.E2EOverCore, s.CheapE2EOverCore = ratio(s.E2ERPS, s.LimitRPS), ratio(s.E2ERPS, s.CoreRPS), ratio(s.CheapE2ERPS, s.CheapCoreRPS)
	s.E2EOverLimitAll = ratio(s.E2ERPS, s.LimitAllCoresRPS)
	if c := s.CPUMsPerRequest; c["total"]-c["infra"]-c["load"] > 0 {
		s.ProjectedE2ERPSInfraElsewhere = hundredths(float64(s.Cores) * 1000 / (c["total"] - c["infra"] - c["load"]))
		s.ProjectedE2EOverLimit = ratio(s.ProjectedE2ERPSInfraElsewhere, s.LimitRPS)
	}
	return s, nil
}

// load runs the load generator with o and returns its report.
func (b *bench) load(ctx context.Context, o loadgen.Options) (loadgen.Report, error) {
	rep, err := loadgen.Run(ctx, o, b.creds)
	if err != nil {
		return loadgen.Report{}, fmt.Errorf("load of %s: %w", o.Members, err)
	}
	return rep, nil
}

// hundredths is x rounded to two decimals, as the bench has always given
// the load generator its rates.
func hundredths(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 2, 64), 64)
	return v
}
