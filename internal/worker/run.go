package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/admin"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/keyspec"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/retry"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/tracing"
)

// NewHasher builds the PIN hasher from the worker settings.
func NewHasher(cfg config.Worker) (*pinhash.Hasher, error) {
	peppers, err := keyspec.List("PINRESET_PEPPERS", cfg.Peppers, pinhash.ParsePepper)
	if err != nil {
		return nil, err
	}
	params := pinhash.DefaultParams()
	params.Memory, params.Time, params.Threads = cfg.Argon2MemoryKiB, cfg.Argon2Time, cfg.Argon2Threads
	h, err := pinhash.New(params, peppers[0], peppers[1:]...)
	if err != nil {
		return nil, fmt.Errorf("pin hasher: %w", err)
	}
	return h, nil
}

// NewFingerprinter builds the fingerprinter of request content from the
// worker settings (PINRESET_FINGERPRINT_KEYS).
func NewFingerprinter(cfg config.Worker) (Fingerprinter, error) {
	f, err := pinhash.ParseFingerprintKeys("PINRESET_FINGERPRINT_KEYS", cfg.FingerprintKeys)
	if err != nil {
		return nil, err
	}
	return keyedFingerprints{f}, nil
}

// keyedFingerprints reports a recorded fingerprint under a key id this
// worker does not hold (a rotation that reached another worker first) as a
// missing key: transient, parked until the key is deployed, never an outcome.
type keyedFingerprints struct{ *pinhash.Fingerprinter }

func (k keyedFingerprints) SameFingerprint(fp string, content []byte) (bool, error) {
	same, err := k.Fingerprinter.SameFingerprint(fp, content)
	if errors.Is(err, pinhash.ErrUnknownFingerprintKey) {
		err = &pinreset.MissingKeyError{Kind: "fingerprint", Err: err}
	}
	return same, err
}

// Run runs a worker until ctx ends, then finishes the commands in hand,
// commits them and returns. It returns early, with an error, only for what
// retrying cannot fix (bad configuration, Kafka refusing our credentials);
// outages of the broker or the database are waited out. Shutdown order:
// stop fetching, drain and commit, stop the background loops, leave the
// consumer groups, flush the producer, disconnect the database.
func Run(ctx context.Context, cfg config.Worker, log *zap.Logger) error {
	ring, err := seal.ParseKeyring("PINRESET_SEAL_KEYS", cfg.SealKeys)
	if err != nil {
		return err
	}
	hasher, err := NewHasher(cfg)
	if err != nil {
		return err
	}
	fingerprints, err := NewFingerprinter(cfg)
	if err != nil {
		return err
	}
	store, err := mongostore.Open(mongostore.Config{URI: cfg.MongoURI, Database: cfg.MongoDatabase, OperationTimeout: cfg.MongoTimeout})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = store.Close(cctx)
	}()
	trail := mongostore.NewAuditLog(store.Database())
	k := cfg.Kafka
	cluster, err := kafkabus.NewCluster(kafkabus.ClusterConfig{Brokers: k.KafkaBrokers, TLS: k.KafkaTLS, CAFile: k.KafkaTLSCAFile,
		SASLMechanism: k.KafkaSASLMechanism, Username: k.KafkaSASLUsername, Password: k.KafkaSASLPassword})
	if err != nil {
		return err
	}
	if err := retry.Until(ctx, log, "prepare database and topics", kafkabus.Fatal, func() error {
		if cfg.CreateTopics {
			if err := kafkabus.EnsureTopics(ctx, cluster, kafkabus.Topics(cfg.TopicPartitions, cfg.TopicReplication, cfg.TopicMinInSync)); err != nil {
				return err
			}
		}
		return EnsureIndexes(ctx, store)
	}); err != nil {
		return err
	}

	producer := kafkabus.NewProducer(cluster, kafkabus.ProducerConfig{})
	defer producer.Close()
	rules := pinreset.DefaultRules()
	rules.LockAfter, rules.LockFor, rules.ReplayWindow = cfg.LockAfter, cfg.LockFor, cfg.ReplayWindow
	mon := health.New()
	reg := metrics.NewRegistry()
	ready := Readiness(store, cluster)
	proc := &Processor{
		Store: store, Audit: trail, Fingerprinter: fingerprints, Publisher: producer, Sealer: ring, Hasher: hasher, Rules: rules,
		Log: log, WorkerID: cfg.WorkerID, Metrics: metrics.NewWorker(reg), Parked: store, Health: mon, Ready: ready,
		Outage: DependencyDown,
	}
	consumer := kafkabus.NewConsumer(kafkabus.ConsumerConfig{
		Cluster: cluster, Topic: kafkabus.TopicCommands, GroupID: cfg.ConsumerGroup,
		Concurrency: cfg.Concurrency, SessionTimeout: cfg.SessionTimeout,
		HandleTimeout: cfg.CommandTimeout, RetryBudget: cfg.RetryBudget, Park: proc.Park, ParkAtOnce: parkAtOnce, Health: mon,
	}, log)
	defer consumer.Close()
	// Parked commands wait on their own topic and group, each lane until the
	// head's time has come, so they never hold up fresh commands.
	retryGroup := cfg.ConsumerGroup + "-retry"
	retries := kafkabus.NewConsumer(kafkabus.ConsumerConfig{
		Cluster: cluster, Topic: kafkabus.TopicCommandsRetry, GroupID: retryGroup,
		Concurrency: cfg.Concurrency, SessionTimeout: cfg.SessionTimeout,
		HandleTimeout: cfg.CommandTimeout, RetryBudget: cfg.RetryBudget, Park: proc.Park, ParkAtOnce: parkAtOnce, NotBefore: RetryNotBefore, Health: mon,
	}, log.Named("retry"))
	defer retries.Close()
	tp, stopTracing, err := tracing.Setup(ctx, cfg.TracesExporter, cfg.TracesFile, "pinreset-worker")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.WithoutCancel(ctx)) }() // after the consumer drained: flushes the last spans
	proc.Tracer = tp.Tracer("github.com/kmwallet/pinreset/internal/worker")
	proc.Hasher = LimitHashing(hasher, proc.Metrics, cfg.HashConcurrency)
	log.Info("worker started", zap.String("worker_id", cfg.WorkerID), zap.Int("concurrency", cfg.Concurrency),
		zap.Uint32("argon2_memory_kib", cfg.Argon2MemoryKiB), zap.Uint32("argon2_time", cfg.Argon2Time))

	// Everything below stops with runCtx: ctx ending, or a consumer meeting
	// what retrying cannot fix. Run waits for all of it.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var background sync.WaitGroup
	adminRoutes := admin.Handler
	if cfg.AdminPprof {
		adminRoutes = admin.WithProfiles
	}
	if cfg.AdminAddr != "" {
		background.Add(1)
		go func() {
			defer background.Done()
			err := admin.Serve(runCtx, cfg.AdminAddr, adminRoutes(reg, mon.Live, func(ctx context.Context) error {
				return errors.Join(ready(ctx), mon.Ready())
			}, log), func(a string) {
				log.Info("admin listening", zap.String("addr", a))
			})
			if err != nil {
				log.Error("admin server", zap.Error(err))
			}
		}()
	}
	background.Add(3)
	go func() {
		defer background.Done()
		sweepOutcomes(runCtx, store, cfg.OutcomeRetention, mon.Loop("outcome sweeper", 10*time.Minute), log)
	}()
	go func() {
		defer background.Done()
		relay(runCtx, proc, mon.Loop("outbox relay", 10*time.Minute), log)
	}()
	go func() {
		defer background.Done()
		watchLag(runCtx, cluster, proc.Metrics, map[string]string{kafkabus.TopicCommands: cfg.ConsumerGroup, kafkabus.TopicCommandsRetry: retryGroup}, log)
	}()
	var consumers sync.WaitGroup
	errs := make(chan error, 2)
	for _, c := range []*kafkabus.Consumer{consumer, retries} {
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			if err := c.Run(runCtx, proc.Handle); err != nil {
				errs <- err
				stop()
			}
		}()
	}
	consumers.Wait()
	stop()
	background.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	log.Info("worker stopped", zap.Error(err))
	return err
}

// Readiness is the worker's check that MongoDB and a broker answer and
// that the topics exist: /readyz asks it, and Park before it parks. It
// returns in bounded time under any context, since each part bounds itself
// (the store's operation timeout, kafkabus.PingTimeout).
func Readiness(store interface{ Ping(context.Context) error }, cluster kafkabus.Cluster) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := store.Ping(ctx); err != nil {
			return err
		}
		return kafkabus.Ping(ctx, cluster, kafkabus.TopicCommands, kafkabus.TopicCommandsRetry, kafkabus.TopicResults, kafkabus.TopicEvents)
	}
}

// DependencyDown reports whether err means MongoDB or the Kafka cluster as
// a whole does not answer (the Processor's Outage). Both count a deadline
// exceeded: the caller tells its own deadline from a dependency's.
func DependencyDown(err error) bool { return mongostore.Unavailable(err) || kafkabus.Unavailable(err) }

// watchLag exports the consumer lag of each topic's group every 10 s, read
// from the broker (committed offsets against high watermarks), until ctx
// ends. A failed read leaves the last figures and is retried at the next tick.
func watchLag(ctx context.Context, c kafkabus.Cluster, m *metrics.Worker, groups map[string]string, log *zap.Logger) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	failures := 0
	for {
		for topic, group := range groups {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			lag, err := kafkabus.GroupLag(lctx, c, group, topic)
			cancel()
			if err != nil {
				if failures++; ctx.Err() == nil && (failures == 1 || failures%30 == 0) {
					log.Warn("read consumer lag", zap.String("topic", topic), zap.Int("failures", failures), zap.Error(err))
				}
				continue
			}
			failures = 0
			for p, n := range lag {
				m.Lag.WithLabelValues(topic, strconv.Itoa(p)).Set(float64(n))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// relay delivers what dead workers left in members' outboxes and prunes
// what is delivered (see Processor.Relay) every 5 s, a batch of 500
// members after another while batches come full, until ctx ends. Several
// workers relaying at once is harmless: delivery is idempotent and a prune
// is conditional on the member's version.
func relay(ctx context.Context, proc *Processor, loop *health.Loop, log *zap.Logger) {
	const batch = 500
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		end := loop.Begin()
		for n := batch; n == batch && ctx.Err() == nil; {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			var err error
			n, err = proc.Relay(rctx, batch)
			cancel()
			if err != nil && ctx.Err() == nil {
				log.Warn("relay undelivered decisions", zap.Int("pruned", n), zap.Error(err))
				break
			}
		}
		end()
	}
}

// sweepOutcomes deletes outcomes and parked markers older than retention,
// hourly (and once at start), until ctx ends. Several workers sweeping at
// once is harmless: deletes are idempotent. (Replay claims live in the
// member's state and expire there.)
func sweepOutcomes(ctx context.Context, store *mongostore.Store, retention time.Duration, loop *health.Loop, log *zap.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		end := loop.Begin()
		n, err := store.DeleteOutcomesBefore(ctx, time.Now().Add(-retention))
		if err != nil && ctx.Err() == nil {
			log.Warn("sweep outcomes", zap.Error(err))
		} else if n > 0 {
			log.Info("swept outcomes", zap.Int64("deleted", n), zap.Duration("retention", retention))
		}
		if _, err := store.DeleteParkedBefore(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Warn("sweep parked markers", zap.Error(err))
		}
		end()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// EnsureIndexes creates every index the worker relies on: the store's, and
// the audit trail's, whose unique (chain, correlation id) index is what
// makes appending an audit record idempotent. Idempotent itself; the
// worker, the sandbox and pwctl bootstrap all prepare a database with it.
func EnsureIndexes(ctx context.Context, store *mongostore.Store) error {
	if err := store.EnsureIndexes(ctx); err != nil {
		return err
	}
	return mongostore.NewAuditLog(store.Database()).EnsureIndexes(ctx)
}

// LimitHashing returns h admitting at most concurrency argon2id
// computations at once, so that CPU and memory stay bounded under any load
// (more commands wait, none allocates), measuring each one when m is set,
// and hashing ahead on a free slot (pinreset.AheadHasher).
func LimitHashing(h pinreset.PINHasher, m *metrics.Worker, concurrency int) pinreset.PINHasher {
	return timedHasher{h: h, m: m, slots: make(chan struct{}, max(concurrency, 1))}
}

type timedHasher struct {
	h     pinreset.PINHasher
	m     *metrics.Worker
	slots chan struct{}
}

func (t timedHasher) Hash(pin string) (string, error) {
	defer t.admit()()
	return t.h.Hash(pin)
}

func (t timedHasher) Verify(pin, encoded string) (bool, bool, error) {
	defer t.admit()()
	ok, rehash, err := t.h.Verify(pin, encoded)
	if errors.Is(err, pinhash.ErrUnknownPepper) {
		// A pepper not deployed here yet: wait for it, never an outcome.
		err = &pinreset.MissingKeyError{Kind: "pepper", Err: err}
	}
	return ok, rehash, err
}

// HashAhead hashes pin on a free slot, if there is one, without waiting
// (see pinreset.AheadHasher). The goroutine is owned by the hash: it ends
// when the hash does, frees its slot, and leaves the result in a buffered
// channel that nobody may read.
func (t timedHasher) HashAhead(pin string) func() (string, error) {
	select {
	case t.slots <- struct{}{}:
	default:
		return nil
	}
	type result struct {
		hash string
		err  error
	}
	if t.m != nil {
		t.m.HashesAhead.WithLabelValues("started").Inc()
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		h, err := t.h.Hash(pin)
		t.observe(start)
		<-t.slots
		done <- result{h, err}
	}()
	return func() (string, error) {
		if t.m != nil {
			t.m.HashesAhead.WithLabelValues("used").Inc()
		}
		r := <-done
		return r.hash, r.err
	}
}

// admit waits for a slot and returns the func that frees it and records the time.
func (t timedHasher) admit() func() {
	t.slots <- struct{}{}
	start := time.Now()
	return func() {
		t.observe(start)
		<-t.slots
	}
}

func (t timedHasher) observe(start time.Time) {
	if t.m != nil {
		t.m.HashDuration.Observe(time.Since(start).Seconds())
	}
}
