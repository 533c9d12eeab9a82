// Package compose is the worker binary's composition root as a library:
// the settings (internal/config) turned into the pieces of a worker, wired
// by hand. cmd/worker runs it; the sandbox, pwctl and the tests that start
// a worker in their own process reuse it, so the wiring is written once.
package compose

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/admin"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/decision"
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
	"github.com/kmwallet/pinreset/internal/worker"
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
func NewFingerprinter(cfg config.Worker) (decision.Fingerprinter, error) {
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
	mt := metrics.NewWorker(reg)
	ready := Readiness(store, cluster)
	tp, stopTracing, err := tracing.Setup(ctx, cfg.TracesExporter, cfg.TracesFile, "pinreset-worker")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.WithoutCancel(ctx)) }() // after the consumers drained: flushes the last spans
	tracer := tp.Tracer("github.com/kmwallet/pinreset/internal/worker")
	svc := &decision.Service{
		Store: store, Trail: trail, Fingerprinter: fingerprints, Publisher: worker.KafkaPublisher{Publisher: producer},
		Hasher: worker.LimitHashing(hasher, mt, cfg.HashConcurrency), Rules: rules, Parked: store, WorkerID: cfg.WorkerID, Tracer: tracer,
	}
	proc := &worker.Processor{
		Service: svc, Sealer: ring, Publisher: producer, Parked: store, Metrics: mt, Health: mon, Log: log,
		WorkerID: cfg.WorkerID, Ready: ready, Outage: DependencyDown,
	}
	// Outermost first: the span covers the whole attempt, and the log line
	// carries its trace id.
	handle := worker.ForConsumer(worker.Chain(proc.Handle, worker.Traced(tracer), worker.Logged(log), worker.Measured(mt, mon), proc.DeadLetters, proc.WatchOutages))
	consumer := kafkabus.NewConsumer(kafkabus.ConsumerConfig{
		Cluster: cluster, Topic: kafkabus.TopicCommands, GroupID: cfg.ConsumerGroup,
		Concurrency: cfg.Concurrency, SessionTimeout: cfg.SessionTimeout,
		HandleTimeout: cfg.CommandTimeout, RetryBudget: cfg.RetryBudget, Park: proc.Park, ParkAtOnce: worker.ParkAtOnce, Health: mon,
	}, log)
	defer consumer.Close()
	// Parked commands wait on their own topic and group, each lane until the
	// head's time has come, so they never hold up fresh commands.
	retryGroup := cfg.ConsumerGroup + "-retry"
	retries := kafkabus.NewConsumer(kafkabus.ConsumerConfig{
		Cluster: cluster, Topic: kafkabus.TopicCommandsRetry, GroupID: retryGroup,
		Concurrency: cfg.Concurrency, SessionTimeout: cfg.SessionTimeout,
		HandleTimeout: cfg.CommandTimeout, RetryBudget: cfg.RetryBudget, Park: proc.Park, ParkAtOnce: worker.ParkAtOnce, NotBefore: worker.RetryNotBefore, Health: mon,
	}, log.Named("retry"))
	defer retries.Close()
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
	background.Add(4)
	go func() {
		defer background.Done()
		worker.SweepOutcomes(runCtx, store, cfg.OutcomeRetention, mon.Loop("outcome sweeper", 10*time.Minute), log)
	}()
	go func() {
		defer background.Done()
		worker.Relay(runCtx, svc, mon.Loop("outbox relay", 10*time.Minute), log)
	}()
	go func() {
		defer background.Done()
		worker.WatchQueueActions(runCtx, store, mt, log)
	}()
	go func() {
		defer background.Done()
		worker.WatchLag(runCtx, cluster, mt, map[string]string{kafkabus.TopicCommands: cfg.ConsumerGroup, kafkabus.TopicCommandsRetry: retryGroup}, log)
	}()
	var consumers sync.WaitGroup
	errs := make(chan error, 2)
	for _, c := range []*kafkabus.Consumer{consumer, retries} {
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			if err := c.Run(runCtx, handle); err != nil {
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
