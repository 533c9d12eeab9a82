package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/health"
)

// Handler processes one message. A nil error means the message is done and
// its offset may be committed. An error means "not now" (a dependency is
// down, a key not deployed yet): the consumer retries the same message with
// backoff, and parks it once its retry budget is spent (see
// handleWithRetry). A message that can never succeed is the handler's to
// dead-letter and acknowledge with nil.
type Handler func(ctx context.Context, m kafka.Message) error

// Parker takes a message whose retry budget is spent out of its lane (a
// retry topic), so that other keys keep flowing. nil means parked: the
// message is done here. An error (Kafka itself down) keeps it in its lane,
// retried as before. It runs as a step of the lane, under HandleTimeout.
type Parker func(ctx context.Context, m kafka.Message, cause error) error

// ConsumerConfig tunes the consumer group loop. The zero value of every
// field but Cluster, Topic and GroupID is usable.
type ConsumerConfig struct {
	Cluster Cluster
	Topic   string
	GroupID string
	// Concurrency is how many messages are processed at once. Messages with
	// the same key always go to the same lane, in order. Default 1.
	Concurrency int
	// LaneDepth is how many fetched messages may wait per lane. Default 16.
	LaneDepth int
	// RetryMin and RetryMax bound the backoff between retries of a failed
	// message, and between failed fetches. Defaults 100 ms and 5 s.
	RetryMin, RetryMax time.Duration
	// HandleTimeout bounds each step of a lane: one attempt at one message
	// (a handler stuck on a dead connection is cancelled and the message
	// retried), and one call of Park. Default 30 s.
	HandleTimeout time.Duration
	// StuckGrace is how long a step of a lane may outlive HandleTimeout
	// before the lane counts as stuck (liveness fails): a step that runs on
	// past its deadline ignores its context, and only a restart frees the
	// lane. Default 1 min.
	StuckGrace time.Duration
	// RetryBudget is how long a message is retried in its lane before it is
	// handed to Park. Default 30 s. Without Park it is retried for ever.
	RetryBudget time.Duration
	// Park takes a message out of its lane once its budget is spent; a
	// refusal restarts the budget. Optional.
	Park Parker
	// CrowdedBudget replaces RetryBudget, when shorter, for a message whose
	// lane's buffer is full: the fetch loop then waits on that lane, so
	// every other lane waits for it too, and one command that always fails
	// would hold the whole consumer for its budget. Default 3 s.
	CrowdedBudget time.Duration
	// ParkAtOnce, when set, names the failures that waiting in the lane
	// cannot end: one that waits for another message, which may be queued
	// behind this one (a worker that died between two steps of a decision
	// leaves a member busy until its command comes back), or one that no
	// retry in this process can fix. Such a message is handed to Park at
	// its first failure, not after its retry budget.
	ParkAtOnce func(error) bool
	// NotBefore, when set, gives the time before which a message must not
	// be tried (a parked message on the retry topic); its lane waits until
	// then. Messages of a retry topic are in not-before order per partition
	// give or take the delays' growth, so waiting for the head is fair.
	NotBefore func(kafka.Message) time.Time
	// SessionTimeout is how long the group waits for a silent member before
	// it gives its partitions to others (a killed worker). Default 10 s.
	SessionTimeout time.Duration
	// DrainTimeout bounds how long Run waits, after ctx ends, for messages in
	// hand to finish and be committed. Default 10 s.
	DrainTimeout time.Duration
	// RenewAfter is how long fetching may fail without a break before the
	// reader is closed and a new one joins the group afresh (a group
	// connection that never heals). Default 30 s.
	RenewAfter time.Duration
	// Health, when set, gets the fetch loop (waiting while fetches fail) and
	// the lanes (stuck when one step outlives HandleTimeout by StuckGrace).
	Health *health.Monitor
}

// Consumer runs a handler over a topic as a member of a consumer group.
type Consumer struct {
	cfg   ConsumerConfig
	log   *zap.Logger
	fetch *health.Loop
	lanes *health.Loop

	mu sync.Mutex
	r  *kafka.Reader
}

// NewConsumer joins the group lazily, on the first fetch.
func NewConsumer(cfg ConsumerConfig, log *zap.Logger) *Consumer {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.LaneDepth <= 0 {
		cfg.LaneDepth = 16
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if cfg.HandleTimeout <= 0 {
		cfg.HandleTimeout = 30 * time.Second
	}
	if cfg.StuckGrace <= 0 {
		cfg.StuckGrace = time.Minute
	}
	if cfg.RetryBudget <= 0 {
		cfg.RetryBudget = 30 * time.Second
	}
	if cfg.CrowdedBudget <= 0 {
		cfg.CrowdedBudget = 3 * time.Second
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.RenewAfter <= 0 {
		cfg.RenewAfter = 30 * time.Second
	}
	c := &Consumer{cfg: cfg, log: log}
	if cfg.Health != nil {
		c.fetch = cfg.Health.Loop("kafka consumer "+cfg.Topic, time.Hour)
		c.lanes = cfg.Health.Loop("lanes "+cfg.Topic, cfg.HandleTimeout+cfg.StuckGrace)
	}
	c.r = c.newReader()
	return c
}

func (c *Consumer) newReader() *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           c.cfg.Cluster.Brokers,
		Dialer:            c.cfg.Cluster.Dialer(),
		GroupID:           c.cfg.GroupID,
		Topic:             c.cfg.Topic,
		MinBytes:          1,
		MaxBytes:          1 << 20,
		MaxWait:           250 * time.Millisecond,
		QueueCapacity:     c.cfg.Concurrency * c.cfg.LaneDepth,
		HeartbeatInterval: time.Second,
		SessionTimeout:    c.cfg.SessionTimeout,
		RebalanceTimeout:  c.cfg.SessionTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		// Synchronous commits: CommitMessages returns once the broker has the offset.
		CommitInterval: 0,
		StartOffset:    kafka.FirstOffset,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		Logger:         zapLogger(c.log),
		ErrorLogger:    zapErrorLogger(c.log),
	})
}

func (c *Consumer) reader() *kafka.Reader {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r
}

// renew replaces the reader with a new one, which joins the group afresh,
// and closes the old one in the background, bounded by closing.
func (c *Consumer) renew(closing *sync.WaitGroup) {
	c.mu.Lock()
	old := c.r
	c.r = c.newReader()
	c.mu.Unlock()
	closing.Add(1)
	go func() {
		defer closing.Done()
		_ = old.Close()
	}()
}

// Close leaves the group.
func (c *Consumer) Close() error { return c.reader().Close() }

// Run fetches and handles messages until ctx ends, then lets the messages
// in hand finish (up to DrainTimeout), commits them and returns nil. It
// returns an error only for what retrying cannot fix (authentication or
// authorization refused); every other fetch error is waited out with
// backoff, and a reader that keeps failing is replaced.
//
// Messages are spread over Concurrency lanes by key, so one key's messages
// are handled in order while different keys run in parallel. An offset is
// committed only when it and every offset before it on its partition are
// done, so a crash never skips an unfinished message (at-least-once).
func (c *Consumer) Run(ctx context.Context, handle Handler) error {
	// Handlers run on a context that outlives ctx by DrainTimeout, so the
	// message in hand finishes on shutdown instead of being cut in half.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	// (A timer left running after Run returns only cancels a finished context.)
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.DrainTimeout, cancelWork) })
	defer stopDrain()

	tr := newTracker()
	done := make(chan kafka.Message, c.cfg.Concurrency*c.cfg.LaneDepth)
	lanes := make([]chan kafka.Message, c.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan kafka.Message, c.cfg.LaneDepth)
		wg.Add(1)
		go func(in <-chan kafka.Message) {
			defer wg.Done()
			for m := range in {
				if c.handleWithRetry(ctx, work, handle, m, in) {
					done <- m
				}
			}
		}(lanes[i])
	}

	committed := make(chan struct{})
	go func() {
		defer close(committed)
		c.commit(work, tr, done)
	}()

	var closing sync.WaitGroup
	fetchErr := c.fetchLoop(ctx, tr, lanes, &closing)
	for _, l := range lanes {
		close(l)
	}
	wg.Wait()
	close(done)
	<-committed
	closing.Wait()
	if fetchErr != nil {
		c.fetch.Exited(fetchErr)
	}
	return fetchErr
}

// fetchLoop feeds the lanes until ctx ends or a fatal error.
func (c *Consumer) fetchLoop(ctx context.Context, tr *tracker, lanes []chan kafka.Message, closing *sync.WaitGroup) error {
	var failingSince time.Time
	failures := 0
	for {
		m, err := c.reader().FetchMessage(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if Fatal(err) {
				c.log.Error("kafka refused the consumer; retrying cannot fix this", zap.String("topic", c.cfg.Topic), zap.Error(err))
				return fmt.Errorf("fetch from %s: %w", c.cfg.Topic, err)
			}
			if failures == 0 {
				failingSince = time.Now()
			}
			failures++
			c.fetch.Waiting(fmt.Errorf("fetch from %s: %w", c.cfg.Topic, err))
			if failures == 1 || failures%100 == 0 {
				c.log.Warn("fetch failed, retrying", zap.String("topic", c.cfg.Topic), zap.Int("failures", failures), zap.Error(err))
			}
			if errors.Is(err, io.EOF) || time.Since(failingSince) > c.cfg.RenewAfter {
				c.log.Warn("fetching keeps failing: a new reader joins the group", zap.String("topic", c.cfg.Topic),
					zap.Duration("failing_for", time.Since(failingSince).Round(time.Second)))
				c.renew(closing)
				failingSince = time.Now()
			}
			// kafka-go's readers back off between their own reconnection
			// attempts and queue each failure for FetchMessage: waiting
			// longer here would only leave stale failures queued after
			// the broker is back. The pause only bounds a tight loop.
			if !sleep(ctx, errorPause) {
				return nil
			}
			continue
		}
		if failures > 0 {
			c.log.Info("fetching again", zap.String("topic", c.cfg.Topic), zap.Int("failures", failures),
				zap.Duration("after", time.Since(failingSince).Round(time.Millisecond)))
			failures = 0
		}
		c.fetch.Recovered()
		// kafka-go counts a new generation before it fetches in it, so a
		// message of the new one always finds it counted. (It counts a
		// partition's leader moving too: the partitions then wait for
		// their next fetch to commit again.)
		if c.reader().Stats().Rebalances > 0 {
			tr.rebalanced()
		}
		tr.fetched(m)
		select {
		case lanes[lane(m.Key, len(lanes))] <- m:
		case <-ctx.Done():
			// The message is not handled; it is redelivered to whoever owns
			// the partition next.
			return nil
		}
	}
}

// commitEvery is how often the commit point is sent to the broker: one
// OffsetCommit for every partition that moved, instead of one per message.
// Work done since the last commit is redelivered after a crash, which
// handlers, idempotent by correlation id, answer from what they recorded;
// no decision depends on it.
const commitEvery = 100 * time.Millisecond

// commit commits behind completed work until done is closed, every
// commitEvery. A failed commit (the broker away) is retried at the next
// tick: commits are cumulative, so only the latest point per partition
// matters.
func (c *Consumer) commit(ctx context.Context, tr *tracker, done <-chan kafka.Message) {
	type point struct {
		m   kafka.Message
		gen int
	}
	pending := map[partKey]point{}
	failures := 0
	const dropAfter = int(time.Minute / commitEvery) // a minute of failed tries
	tick := time.NewTicker(commitEvery)
	defer tick.Stop()
	flush := func() {
		if len(pending) == 0 {
			return
		}
		msgs := make([]kafka.Message, 0, len(pending))
		for k, p := range pending {
			if !tr.current(p.gen) {
				// Its partition may be another member's now (tracker).
				delete(pending, k)
				continue
			}
			msgs = append(msgs, p.m)
		}
		if len(msgs) == 0 {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.reader().CommitMessages(cctx, msgs...)
		cancel()
		if err != nil {
			// A failed commit only means redelivery: handlers are
			// idempotent. Points that keep failing (a coordinator away,
			// a group that keeps rebalancing) are dropped after a minute
			// of tries.
			failures++
			if failures == 1 || failures >= dropAfter {
				c.log.Warn("commit offsets", zap.Int("partitions", len(msgs)), zap.Int("failures", failures),
					zap.Bool("dropped", failures >= dropAfter), zap.Error(err))
			}
			if failures >= dropAfter {
				clear(pending)
				failures = 0
			}
			return
		}
		clear(pending)
		failures = 0
	}
	for {
		select {
		case m, ok := <-done:
			if !ok {
				flush()
				return
			}
			if next, gen, ok := tr.doneIn(m); ok {
				pending[partKey{next.Topic, next.Partition}] = point{next, gen}
			}
		case <-tick.C:
			flush()
		}
	}
}

// handleWithRetry runs handle until it succeeds, each attempt under
// HandleTimeout, with capped exponential backoff and jitter between them.
// Once the retry budget is spent (the shorter CrowdedBudget when its lane's
// buffer is full, or at once for a failure ParkAtOnce names) the message
// is parked, if a Parker is set, so that the keys behind it in its lane go
// on. It gives up, without acknowledging, only when the consumer is
// stopping (ctx done): the message is then redelivered to whoever owns the
// partition next.
func (c *Consumer) handleWithRetry(ctx, work context.Context, handle Handler, m kafka.Message, lane <-chan kafka.Message) bool {
	if c.cfg.NotBefore != nil {
		if !sleep(ctx, time.Until(c.cfg.NotBefore(m))) {
			return false
		}
	}
	backoff := c.cfg.RetryMin
	first := time.Now()
	for attempt := 1; ; attempt++ {
		err := c.step(work, func(ctx context.Context) error { return handle(ctx, m) })
		if err == nil {
			return true
		}
		budget, crowded := c.cfg.RetryBudget, len(lane) == cap(lane)
		if crowded {
			budget = min(budget, c.cfg.CrowdedBudget)
		}
		if c.cfg.Park != nil && (time.Since(first) >= budget || c.cfg.ParkAtOnce != nil && c.cfg.ParkAtOnce(err)) {
			cause := err
			perr := c.step(work, func(ctx context.Context) error { return c.cfg.Park(ctx, m, cause) })
			if perr == nil {
				c.log.Warn("message parked out of its lane",
					zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset),
					zap.ByteString("key", m.Key), zap.Int("attempts", attempt), zap.Duration("tried_for", time.Since(first)),
					zap.Bool("lane_full", crowded), zap.Error(err))
				return true
			}
			err = fmt.Errorf("%w (and parking it failed: %v)", err, perr)
			// Not parked (a dependency is down, or Kafka refused): the
			// budget starts again, so that once the outage ends the
			// command gets a whole budget before it is moved aside.
			first = time.Now()
		}
		if attempt == 1 || attempt%10 == 0 {
			c.log.Warn("message failed, will retry",
				zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset),
				zap.ByteString("key", m.Key), zap.Int("attempt", attempt), zap.Duration("backoff", backoff), zap.Error(err))
		}
		if !sleep(ctx, jitter(backoff)) {
			return false
		}
		backoff = min(backoff*2, c.cfg.RetryMax)
	}
}

// step runs one step of a lane (an attempt at a message, or parking it)
// under HandleTimeout and the lanes' watchdog. Every step waits on the
// network, and a lane, then (once its buffer is full) the fetch loop and
// every lane, waits on it: none may run without a deadline, and one that
// outlives it by StuckGrace fails liveness.
func (c *Consumer) step(work context.Context, f func(context.Context) error) error {
	end := c.lanes.Begin()
	defer end()
	ctx, cancel := context.WithTimeout(work, c.cfg.HandleTimeout)
	defer cancel()
	return f(ctx)
}

// Fatal is true for what a retry cannot fix: the cluster refused
// our credentials or our rights. An orchestrator's restart with corrected
// configuration is the answer.
func Fatal(err error) bool {
	for _, e := range []kafka.Error{kafka.SASLAuthenticationFailed, kafka.TopicAuthorizationFailed,
		kafka.GroupAuthorizationFailed, kafka.ClusterAuthorizationFailed, kafka.IllegalSASLState, kafka.UnsupportedSASLMechanism} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// errorPause is the pause after a read error that kafka-go reported: its
// readers pace their reconnection attempts themselves (ReadBackoffMin/Max).
const errorPause = 25 * time.Millisecond

// jitter spreads d over [d/2, d), so that instances that failed together do
// not retry together.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// sleep waits d or until ctx ends; false means ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func lane(key []byte, n int) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(n))
}
