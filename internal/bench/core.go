package bench

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/wire"
	"github.com/kmwallet/pinreset/internal/worker"
)

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
	h, err := compose.NewHasher(cfg)
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
// process CPU time per hash, after warm-up rounds.
func hashCPUMs(h workerHasher, parallel, rounds int) float64 {
	defer workerGC(parallel)()
	round := func() { hashTogether(h, parallel) }
	// Warm up until the heap has grown to its limit once: with the
	// collector off, the first hashes fault fresh pages in.
	for range 6 {
		round()
	}
	start := selfCPUSeconds()
	for range rounds {
		round()
	}
	return (selfCPUSeconds() - start) * 1000 / float64(parallel*rounds)
}

// hashTogether runs n hashes at once and waits for them.
func hashTogether(h workerHasher, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { _, _ = h.Hash("240810") })
	}
	wg.Wait()
}

// workerGC makes this process collect garbage as the worker does
// (worker.TuneGC: by memory limit only), so that what is measured is the
// hash, not this process's collections of the blocks it drops, and returns
// the func that restores the policy. (The worker's GODEBUG=madvdontneed=0
// is make bench's, in the Makefile: the runtime reads it at start only.)
func workerGC(parallel int) (restore func()) {
	gc := debug.SetGCPercent(-1)
	limit := debug.SetMemoryLimit(int64(64+3*parallel*20) << 20)
	return func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) }
}

// hashPairMsAfterIdle is the median wall time of two hashes started side
// by side after gap with nothing else running: what a PIN set at light load
// hashes (the verification, and the new PIN's hash ahead on the other
// core). Cores that sat idle hash slower than busy ones on a virtual
// machine (docs/performance.md), so at light load this, not hash_ms, is
// the hashing part of a PIN set's latency.
func hashPairMsAfterIdle(h workerHasher, gap time.Duration, rounds int) float64 {
	defer workerGC(2)()
	ms := make([]float64, 0, rounds)
	for i := range rounds + 3 {
		time.Sleep(gap)
		start := time.Now()
		hashTogether(h, 2)
		if i >= 3 { // the first rounds fault the blocks in
			ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		}
	}
	slices.Sort(ms)
	return ms[len(ms)/2]
}

// coreRPS drives the worker's handler directly with as many goroutines
// as cores for d: commands sealed like the ingress seals them, decided
// against the real database with the real hashing, results published to a
// publisher that drops them.
func (b *bench) coreRPS(ctx context.Context, store *mongostore.Store, over map[string]string, pattern string, count int, d time.Duration) (rps float64, n int64, err error) {
	cfg, err := config.LoadWorker(b.getenv(over))
	if err != nil {
		return 0, 0, err
	}
	handle, ring, err := newCoreProcessor(cfg, store)
	if err != nil {
		return 0, 0, err
	}
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
					err = handle(context.WithoutCancel(ctx), kafka.Message{Topic: kafkabus.TopicCommands, Key: []byte(cid), Value: v})
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
		return 0, 0, fmt.Errorf("core run: %w", err)
	}
	return float64(done.Load()) / time.Since(start).Seconds(), done.Load(), nil
}

// nextBenchPIN steps to the next PIN the default policy accepts.
func nextBenchPIN(pin int) int {
	policy := pinreset.PINPolicy{Enabled: true}
	for pin = (pin + 7919) % 1000000; policy.Check(fmt.Sprintf("%06d", pin)) != nil; pin = (pin + 1) % 1000000 {
	}
	return pin
}

// newCoreProcessor builds the worker's decide-and-store path on store as
// the worker builds it from cfg, with results dropped, and returns its
// handler and the keyring to seal its commands with. It is the one place
// the bench builds a worker.Processor: when the worker's construction
// changes, this is what follows it.
func newCoreProcessor(cfg config.Worker, store *mongostore.Store) (handle func(context.Context, kafka.Message) error, ring *seal.Keyring, err error) {
	h, err := compose.NewHasher(cfg)
	if err != nil {
		return nil, nil, err
	}
	ring, err = seal.ParseKeyring("PINRESET_SEAL_KEYS", cfg.SealKeys)
	if err != nil {
		return nil, nil, err
	}
	fp, err := compose.NewFingerprinter(cfg)
	if err != nil {
		return nil, nil, err
	}
	mt := metrics.NewWorker(prometheus.NewRegistry())
	svc := &decision.Service{Store: store, Trail: mongostore.NewAuditLog(store.Database()), Fingerprinter: fp,
		Publisher: worker.KafkaPublisher{Publisher: nopPublisher{}}, Hasher: worker.LimitHashing(h, mt, cfg.HashConcurrency),
		Rules: pinreset.DefaultRules(), WorkerID: "bench"}
	p := &worker.Processor{Service: svc, Sealer: ring, Publisher: nopPublisher{}, Parked: store,
		Metrics: mt, Health: health.New(), Log: zap.NewNop(), WorkerID: "bench"}
	return worker.ForConsumer(worker.Chain(p.Handle, p.DeadLetters)), ring, nil
}

// nopPublisher drops the results of the core run.
type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, ...kafkabus.Message) error { return nil }
