package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/admin"
	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/tracing"
)

// NewHasher builds the PIN hasher from the worker settings.
func NewHasher(cfg config.Worker) (*pinhash.Hasher, error) {
	peppers := make([]pinhash.Pepper, 0, len(cfg.Peppers))
	for i, s := range cfg.Peppers {
		p, err := pinhash.ParsePepper(s)
		if err != nil {
			return nil, fmt.Errorf("PINRESET_PEPPERS #%d: %w", i+1, err)
		}
		peppers = append(peppers, p)
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
func NewFingerprinter(cfg config.Worker) (*pinhash.Fingerprinter, error) {
	return pinhash.ParseFingerprintKeys("PINRESET_FINGERPRINT_KEYS", cfg.FingerprintKeys)
}

// Run runs a worker until ctx ends, then finishes the commands in hand,
// commits them and returns. Shutdown order: stop fetching, drain and commit,
// leave the consumer group, flush the producer, disconnect the database.
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
	store, err := mongostore.Open(mongostore.Config{URI: cfg.MongoURI, Database: cfg.MongoDatabase})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = store.Close(cctx)
	}()
	trail := audit.New(store.Database())
	cluster, err := kafkabus.ClusterFromSettings(cfg.Kafka)
	if err != nil {
		return err
	}
	if err := retry(ctx, log, "prepare database and topics", func() error {
		if cfg.CreateTopics {
			if err := kafkabus.EnsureTopics(ctx, cluster, kafkabus.Topics(cfg.TopicPartitions, cfg.TopicReplication)); err != nil {
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
	rules.LockAfter, rules.LockFor = cfg.LockAfter, cfg.LockFor
	proc := &Processor{
		Members: store, Outcomes: store, Audit: trail, Contents: store, Fingerprinter: fingerprints, ReplayWindow: cfg.ReplayWindow, Publisher: producer, Sealer: ring, Hasher: hasher, Rules: rules,
		Log: log, WorkerID: cfg.WorkerID,
	}
	consumer := kafkabus.NewConsumer(kafkabus.ConsumerConfig{
		Cluster: cluster, Topic: kafkabus.TopicCommands, GroupID: cfg.ConsumerGroup,
		Concurrency: cfg.Concurrency, SessionTimeout: cfg.SessionTimeout,
	}, log)
	defer consumer.Close()
	reg := metrics.NewRegistry()
	proc.Metrics = metrics.NewWorker(reg, func() float64 { return float64(consumer.Lag()) })
	tp, stopTracing, err := tracing.Setup(ctx, cfg.TracesExporter, cfg.TracesFile, "pinreset-worker")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.WithoutCancel(ctx)) }() // after the consumer drained: flushes the last spans
	proc.Tracer = tp.Tracer("github.com/kmwallet/pinreset/internal/worker")
	proc.Hasher = LimitHashing(hasher, proc.Metrics, cfg.HashConcurrency)
	log.Info("worker started", zap.String("worker_id", cfg.WorkerID), zap.Int("concurrency", cfg.Concurrency),
		zap.Uint32("argon2_memory_kib", cfg.Argon2MemoryKiB), zap.Uint32("argon2_time", cfg.Argon2Time))
	// The sweeper and the relay stop with ctx; Run waits for them.
	var background sync.WaitGroup
	if cfg.AdminAddr != "" {
		ready := func(ctx context.Context) error {
			if err := store.Ping(ctx); err != nil {
				return err
			}
			return kafkabus.Ping(ctx, cluster, kafkabus.TopicCommands, kafkabus.TopicResults, kafkabus.TopicEvents)
		}
		background.Add(1)
		go func() {
			defer background.Done()
			err := admin.Serve(ctx, cfg.AdminAddr, admin.Handler(reg, ready, log), func(a string) {
				log.Info("admin listening", zap.String("addr", a))
			})
			if err != nil {
				log.Error("admin server", zap.Error(err))
			}
		}()
	}
	background.Add(2)
	go func() {
		defer background.Done()
		sweepOutcomes(ctx, store, cfg.OutcomeRetention, cfg.ReplayWindow, log)
	}()
	go func() {
		defer background.Done()
		relay(ctx, store, producer, log)
	}()
	err = consumer.Run(ctx, proc.Handle)
	background.Wait()
	log.Info("worker stopped", zap.Error(err))
	return err
}

// sweepOutcomes deletes outcome records older than retention and content
// claims older than the replay window, hourly (and once at start), until ctx
// ends. Several workers sweeping at once is harmless: deletes are idempotent.
func sweepOutcomes(ctx context.Context, store *mongostore.Store, retention, window time.Duration, log *zap.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := store.DeleteOutcomesBefore(ctx, time.Now().Add(-retention))
		if err != nil && ctx.Err() == nil {
			log.Warn("sweep outcomes", zap.Error(err))
		} else if n > 0 {
			log.Info("swept outcomes", zap.Int64("deleted", n), zap.Duration("retention", retention))
		}
		if _, err := store.DeleteContentsBefore(ctx, time.Now().Add(-window)); err != nil && ctx.Err() == nil {
			log.Warn("sweep request contents", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// retry runs fn until it succeeds or ctx ends, backing off from 200 ms to 5 s:
// at start a dependency may still be coming up.
func retry(ctx context.Context, log *zap.Logger, what string, fn func() error) error {
	backoff := 200 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		log.Warn(what+" failed, retrying", zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// relay publishes the events of changes whose writer died (or failed to
// publish) between committing and publishing, and voids the entries of
// changes that were never committed. Every worker runs one; two relays
// publishing the same entry send the same event ids, which consumers drop.
func relay(ctx context.Context, store *mongostore.Store, pub Publisher, log *zap.Logger) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// An entry younger than 10 s may belong to a writer still at work.
		committed, void, err := store.StaleOutbox(ctx, time.Now().Add(-10*time.Second), 500)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("relay: read outbox", zap.Error(err))
			}
			continue
		}
		for _, e := range committed {
			if err := PublishOutbox(ctx, pub, store, e); err != nil {
				log.Warn("relay: publish events", zap.String("outbox", e.ID), zap.Error(err))
				break
			}
			log.Info("relay: published events", zap.String("outbox", e.ID), zap.Int("events", len(e.Events)))
		}
		for _, e := range void {
			if err := store.DeleteOutbox(ctx, e.ID); err != nil {
				log.Warn("relay: void entry", zap.String("outbox", e.ID), zap.Error(err))
				break
			}
			log.Info("relay: voided the events of an uncommitted change", zap.String("outbox", e.ID))
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
	return audit.New(store.Database()).EnsureIndexes(ctx)
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
	return t.h.Verify(pin, encoded)
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
