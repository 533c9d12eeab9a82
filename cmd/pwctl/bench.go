package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/loadgen"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/wire"
	"github.com/kmwallet/pinreset/internal/worker"
)

// benchCmd measures the service against the physical limit of its PIN
// hashing, on this machine, in one run, and prints one JSON summary (see
// README, Performance). It starts the embedded infrastructure, the ingress
// and the worker from the binaries in -bin-dir as separate processes.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin-dir", "bin", "directory holding the sandbox, ingress and worker binaries")
	sandboxDir := fs.String("sandbox-dir", "deployments/sandbox", "the sandbox's settings (asps.json, sandbox.env)")
	saturate := fs.Duration("saturate", 20*time.Second, "length of each saturation run")
	light := fs.Duration("light", 10*time.Second, "length of the light-load run")
	members := fs.Int("members", 3000, "members seeded per hashing setting")
	plot := fs.String("plot", "", "write the saturation run's latency and throughput plot to this PNG")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b := &bench{binDir: *binDir, stderr: stderr, dataDir: filepath.Join(os.TempDir(), fmt.Sprintf("pinreset-bench-%d", os.Getpid()))}
	defer os.RemoveAll(b.dataDir)
	var err error
	if b.sandboxDir, err = filepath.Abs(*sandboxDir); err != nil {
		return err
	}
	if b.env, err = config.ReadEnvFile(filepath.Join(b.sandboxDir, "sandbox.env")); err != nil {
		return err
	}
	defer b.stopAll()
	sum, err := b.run(ctx, *saturate, *light, *members, *plot)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(sum)
}

// benchSummary is the one JSON object make bench prints.
type benchSummary struct {
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
}

type bench struct {
	binDir, sandboxDir, dataDir string
	env                         map[string]string
	stderr                      io.Writer
	mu                          sync.Mutex
	procs                       []*exec.Cmd
	kafka, mongo                string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context, saturate, light time.Duration, members int, plot string) (benchSummary, error) {
	s := benchSummary{Cores: runtime.NumCPU()}
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
	if s.CoreRPS, err = b.coreRPS(ctx, store, nil, "benchcore%06d@sandbox.example", members, saturate/2); err != nil {
		return s, err
	}
	if s.CheapCoreRPS, err = b.coreRPS(ctx, store, cheapEnv, "benchcheapcore%06d@sandbox.example", members, saturate/2); err != nil {
		return s, err
	}
	b.logf("core %.1f rps (cheap %.1f rps)", s.CoreRPS, s.CheapCoreRPS)

	// 3. End to end at saturation, then at 10% of it.
	httpAddr := freePort()
	ing, err := b.start("ingress", map[string]string{"PINRESET_HTTP_ADDR": httpAddr})
	if err != nil {
		return s, err
	}
	workerAdmin := freePort()
	wk, err := b.start("worker", map[string]string{"PINRESET_ADMIN_ADDR": workerAdmin})
	if err != nil {
		return s, err
	}
	if err := waitHTTP(ctx, "http://"+httpAddr+"/readyz", time.Minute); err != nil {
		return s, err
	}
	if err := waitHTTP(ctx, "http://"+workerAdmin+"/readyz", time.Minute); err != nil {
		return s, err
	}
	url := "http://" + httpAddr + "/api/v1/user/password/reset"
	common := []string{"-url", url, "-asp-file", filepath.Join(b.sandboxDir, "asps.json"), "-member-count", strconv.Itoa(members),
		"-json", "-progress=false"}
	before := scrape(workerAdmin)
	cpu := b.cpuMeter(map[string]*exec.Cmd{"infra": infra, "ingress": ing, "worker": wk})
	sat, err := b.load(ctx, append(common, "-members", "bench%06d@sandbox.example", "-concurrency", strconv.Itoa(8*s.Cores),
		"-duration", saturate.String(), "-plot", plot)...)
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
	lt, err := b.load(ctx, append(common, "-members", "bench%06d@sandbox.example", "-initial-pin", "",
		"-rate", strconv.FormatFloat(rate, 'f', 2, 64), "-duration", light.String())...)
	if err != nil {
		return s, err
	}
	s.E2EP50MsLight = lt.P50ms
	s.LightTargetMs = s.HashMs*s.HashesPerRequest + 5
	s.Errors += lt.Errors + lt.Unexpected
	s.IngressPeakRSSMB = peakRSSMB(ing)
	s.WorkerPeakRSSMB = peakRSSMB(wk)

	// 4. The same with cheap hashing: what is left is the pipeline's own cost.
	b.stop(wk)
	wk, err = b.start("worker", map[string]string{"PINRESET_ADMIN_ADDR": workerAdmin, "PINRESET_ARGON2_MEMORY_KIB": "64", "PINRESET_ARGON2_TIME": "1"})
	if err != nil {
		return s, err
	}
	if err := waitHTTP(ctx, "http://"+workerAdmin+"/readyz", time.Minute); err != nil {
		return s, err
	}
	cpu = b.cpuMeter(map[string]*exec.Cmd{"infra": infra, "ingress": ing, "worker": wk})
	ch, err := b.load(ctx, append(common, "-members", "benchcheap%06d@sandbox.example", "-concurrency", strconv.Itoa(16*s.Cores),
		"-duration", saturate.String())...)
	if err != nil {
		return s, err
	}
	s.CheapCPUMsPerRequest = cpu.perRequest(ch.Answered)
	s.CheapE2ERPS, s.CheapE2EP50Ms, s.CheapE2EP99Ms = ch.RPS, ch.P50ms, ch.P99ms
	s.Errors += ch.Errors + ch.Unexpected
	s.WorkerPeakRSSMB = max(s.WorkerPeakRSSMB, peakRSSMB(wk))
	s.IngressPeakRSSMB = peakRSSMB(ing)
	b.logf("cheap e2e %.1f rps, p50 %.1f ms", ch.RPS, ch.P50ms)

	// 5. Ten times the saturation rate, on production settings: latency
	// and 503s grow, memory must not.
	b.stop(wk)
	b.stop(ing)
	if ing, err = b.start("ingress", map[string]string{"PINRESET_HTTP_ADDR": httpAddr, "PINRESET_RESULT_WAIT": "5s"}); err != nil {
		return s, err
	}
	wk, err = b.start("worker", map[string]string{"PINRESET_ADMIN_ADDR": workerAdmin})
	if err != nil {
		return s, err
	}
	if err := waitHTTP(ctx, "http://"+httpAddr+"/readyz", time.Minute); err != nil {
		return s, err
	}
	if err := waitHTTP(ctx, "http://"+workerAdmin+"/readyz", time.Minute); err != nil {
		return s, err
	}
	s.OverloadOfferedRPS = 10 * s.E2ERPS
	ov, err := b.load(ctx, append(common, "-members", "benchover%06d@sandbox.example", "-initial-pin", "",
		"-rate", strconv.FormatFloat(s.OverloadOfferedRPS, 'f', 2, 64), "-duration", "10s", "-timeout", "15s")...)
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
	return s, nil
}

// workerHasher is the hasher the worker builds from its settings.
type workerHasher interface {
	Hash(pin string) (string, error)
	Verify(pin, encoded string) (bool, bool, error)
}

func (b *bench) getenv(over map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := over[k]; ok {
			return v
		}
		return b.env[k]
	}
}

func (b *bench) hasher(over map[string]string) (workerHasher, error) {
	cfg, err := config.LoadWorker(b.getenv(over))
	if err != nil {
		return nil, err
	}
	h, err := worker.NewHasher(cfg)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// hashMs is the CPU time of one hash, in milliseconds: the mean over n
// hashes one at a time, after a few to warm up (the first ones fault the
// 19 MiB block in). CPU time, not wall time: the machine is shared, and
// another process holding the core is not a cost of the hash, while the
// page faults, the zeroing of the block and the garbage collection it
// causes are.
func hashMs(h workerHasher, n int) float64 {
	return hashCPUMs(h, 1, n)
}

// hashMsAllCores is the same with one hash per core at once, as in the
// worker at saturation: argon2id is memory-bound, so hashes running side by
// side can cost each other CPU time.
func hashMsAllCores(h workerHasher, cores, rounds int) float64 {
	return hashCPUMs(h, cores, rounds)
}

// hashCPUMs runs rounds of `parallel` concurrent hashes and returns the
// process CPU time per hash, after two warm-up rounds.
func hashCPUMs(h workerHasher, parallel, rounds int) float64 {
	round := func() {
		var wg sync.WaitGroup
		for range parallel {
			wg.Go(func() { _, _ = h.Hash("240810") })
		}
		wg.Wait()
	}
	round()
	round()
	start := selfCPUSeconds()
	for range rounds {
		round()
	}
	return (selfCPUSeconds() - start) * 1000 / float64(parallel*rounds)
}

// coreRPS drives worker.Processor.Handle directly with as many goroutines
// as cores for d: commands sealed like the ingress seals them, decided
// against the real database with the real hashing, results published to a
// publisher that drops them.
func (b *bench) coreRPS(ctx context.Context, store *mongostore.Store, over map[string]string, pattern string, count int, d time.Duration) (float64, error) {
	cfg, err := config.LoadWorker(b.getenv(over))
	if err != nil {
		return 0, err
	}
	h, err := worker.NewHasher(cfg)
	if err != nil {
		return 0, err
	}
	ring, err := seal.ParseKeyring("PINRESET_SEAL_KEYS", cfg.SealKeys)
	if err != nil {
		return 0, err
	}
	fp, err := worker.NewFingerprinter(cfg)
	if err != nil {
		return 0, err
	}
	p := &worker.Processor{Members: store, Outcomes: store, Audit: audit.New(store.Database()), Contents: store,
		Fingerprinter: fp, Hasher: worker.LimitHashing(h, nil, cfg.HashConcurrency), Publisher: nopPublisher{}, Sealer: ring, Rules: pinreset.DefaultRules(),
		Log: zap.NewNop(), WorkerID: "bench"}
	workers := runtime.NumCPU()
	var done atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pin := 0
			for i := w; ctx.Err() == nil; i += workers {
				login := fmt.Sprintf(pattern, i%count)
				pin = nextBenchPIN(pin)
				cid := kmheader.NewCorrelationID(time.Now(), nil)
				cmd := pinreset.NewCommand(cid, "", "KMSANDBOXASP001", pinreset.Request{LoginID: login, NewPIN: fmt.Sprintf("%06d", pin), Reset: true}, time.Now(), 2*time.Minute)
				v, err := wire.EncodeCommand(cmd, ring)
				if err == nil {
					err = p.Handle(context.WithoutCancel(ctx), kafka.Message{Topic: kafkabus.TopicCommands, Key: []byte(cid), Value: v})
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, fmt.Errorf("core run: %w", err)
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

// nextBenchPIN steps to the next PIN the default policy accepts.
func nextBenchPIN(pin int) int {
	policy := pinreset.PINPolicy{Enabled: true}
	for pin = (pin + 7919) % 1000000; policy.Check(fmt.Sprintf("%06d", pin)) != nil; pin = (pin + 1) % 1000000 {
	}
	return pin
}

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, ...kafkabus.Message) error { return nil }

// load runs pwctl load with args and returns its report.
func (b *bench) load(ctx context.Context, args ...string) (loadgen.Report, error) {
	var out, errb bytes.Buffer
	if err := loadCmd(ctx, args, &out, &errb); err != nil {
		return loadgen.Report{}, fmt.Errorf("load %v: %w: %s", args, err, errb.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return loadgen.Report{}, fmt.Errorf("load report: %w: %s", err, out.String())
	}
	return rep, nil
}

// start runs a binary of binDir with the sandbox settings plus over.
func (b *bench) start(name string, over map[string]string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(filepath.Join(b.binDir, name), args...)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"PINRESET_KAFKA_BROKERS=" + b.kafka, "PINRESET_MONGO_URI=mongodb://" + b.mongo + "/",
		"PINRESET_ASP_FILE=" + filepath.Join(b.sandboxDir, "asps.json"), "PINRESET_ADMIN_ADDR=127.0.0.1:0",
		"PINRESET_LOG_LEVEL=warn", "PINRESET_RESULT_WAIT=30s",
		// One ASP drives the whole load: its admission bucket would cap
		// the very saturation and overload the bench measures.
		"PINRESET_ASP_RATE=off"}
	for k, v := range b.env {
		env = append(env, k+"="+v)
	}
	for k, v := range over {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	b.mu.Lock()
	b.procs = append(b.procs, cmd)
	b.mu.Unlock()
	return cmd, nil
}

func (b *bench) stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (b *bench) stopAll() {
	b.mu.Lock()
	procs := b.procs
	b.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		if procs[i].ProcessState == nil {
			b.stop(procs[i])
		}
	}
}

// syncBuffer collects a process's output for waitOutput.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func waitOutput(ctx context.Context, cmd *exec.Cmd, line string, d time.Duration) error {
	buf := cmd.Stdout.(*syncBuffer)
	deadline := time.Now().Add(d)
	for !strings.Contains(buf.String(), line) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not print %q:\n%s", cmd.Path, line, buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func waitHTTP(ctx context.Context, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape reads the samples of /metrics: each series by its name with its
// labels, and each metric's sum over its labels by its bare name.
func scrape(admin string) map[string]float64 {
	out := map[string]float64{}
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return out
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			out[name] = v
			name = name[:i]
		}
		out[name] += v
	}
	return out
}

// cpuMeter is the CPU time used by named processes (and this one, as
// "load") since it was made.
type cpuMeter struct {
	procs map[string]*exec.Cmd
	start map[string]float64
}

func (b *bench) cpuMeter(procs map[string]*exec.Cmd) cpuMeter {
	m := cpuMeter{procs: procs, start: map[string]float64{}}
	for name, cmd := range procs {
		m.start[name] = cpuSeconds(cmd.Process.Pid)
	}
	m.start["load"] = selfCPUSeconds()
	return m
}

// perRequest is the CPU time each process used since the meter was made,
// in milliseconds per request (0 when it cannot be read).
func (m cpuMeter) perRequest(requests int) map[string]float64 {
	if requests == 0 {
		return nil
	}
	out := map[string]float64{}
	per := func(used float64) float64 { return float64(int(used*1000/float64(requests)*100+0.5)) / 100 }
	total := 0.0
	for name, cmd := range m.procs {
		used := cpuSeconds(cmd.Process.Pid) - m.start[name]
		out[name], total = per(used), total+used
	}
	used := selfCPUSeconds() - m.start["load"]
	out["load"], out["total"] = per(used), per(total+used)
	return out
}

// cpuSeconds is the user plus system CPU time of a process so far, from
// /proc/<pid>/stat (fields 14 and 15, in USER_HZ = 100 ticks per second on
// Linux), or 0 where /proc is not there.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after it do not.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// peakRSSMB is a process's peak resident set (VmHWM), in MiB.
func peakRSSMB(cmd *exec.Cmd) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return float64(int(kb/1024*10)) / 10
		}
	}
	return 0
}
