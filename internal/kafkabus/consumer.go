package kafkabus

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// Handler processes one message. A nil error means the message is done and
// its offset may be committed. An error means "not now" (a dependency is
// down): the consumer retries the same message with backoff, never skipping
// it. A message that can never succeed is the handler's to dead-letter and
// acknowledge with nil.
type Handler func(ctx context.Context, m kafka.Message) error

// ConsumerConfig tunes the consumer group loop.
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
	// message. Defaults 100 ms and 5 s.
	RetryMin, RetryMax time.Duration
	// SessionTimeout is how long the group waits for a silent member before
	// it gives its partitions to others (a killed worker). Default 10 s.
	SessionTimeout time.Duration
	// DrainTimeout bounds how long Run waits, after ctx ends, for messages in
	// hand to finish and be committed. Default 10 s.
	DrainTimeout time.Duration
}

// Consumer runs a handler over a topic as a member of a consumer group.
type Consumer struct {
	cfg ConsumerConfig
	log *zap.Logger
	r   *kafka.Reader
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
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           cfg.Cluster.Brokers,
		Dialer:            cfg.Cluster.Dialer(),
		GroupID:           cfg.GroupID,
		Topic:             cfg.Topic,
		MinBytes:          1,
		MaxBytes:          1 << 20,
		MaxWait:           250 * time.Millisecond,
		QueueCapacity:     cfg.Concurrency * cfg.LaneDepth,
		HeartbeatInterval: time.Second,
		SessionTimeout:    cfg.SessionTimeout,
		RebalanceTimeout:  cfg.SessionTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		// Synchronous commits: CommitMessages returns once the broker has the offset.
		CommitInterval: 0,
		StartOffset:    kafka.FirstOffset,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		Logger:         zapLogger(log),
		ErrorLogger:    zapErrorLogger(log),
	})
	return &Consumer{cfg: cfg, log: log, r: r}
}

// Close leaves the group.
func (c *Consumer) Close() error { return c.r.Close() }

// Lag is the reader's last known lag, for readiness and metrics.
func (c *Consumer) Lag() int64 { return c.r.Lag() }

// Run fetches and handles messages until ctx ends, then lets the messages
// in hand finish (up to DrainTimeout), commits them and returns nil.
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
				if c.handleWithRetry(ctx, work, handle, m) {
					done <- m
				}
			}
		}(lanes[i])
	}

	// The committer owns the tracker; it stops when every lane has finished.
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		for m := range done {
			if next, ok := tr.done(m); ok {
				if err := c.r.CommitMessages(work, next); err != nil {
					// A failed commit only means redelivery: handlers are idempotent.
					c.log.Warn("commit offset", zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", next.Offset), zap.Error(err))
				}
			}
		}
	}()

	var fetchErr error
	for {
		m, err := c.r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				fetchErr = fmt.Errorf("fetch from %s: %w", c.cfg.Topic, err)
			}
			break
		}
		tr.fetched(m)
		lanes[lane(m.Key, len(lanes))] <- m
	}
	for _, l := range lanes {
		close(l)
	}
	wg.Wait()
	close(done)
	<-committed
	return fetchErr
}

// handleWithRetry runs handle until it succeeds. It gives up, without
// acknowledging, only when the consumer is stopping (ctx done): the message
// is then redelivered to whoever owns the partition next.
func (c *Consumer) handleWithRetry(ctx, work context.Context, handle Handler, m kafka.Message) bool {
	backoff := c.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := handle(work, m)
		if err == nil {
			return true
		}
		c.log.Warn("message failed, will retry",
			zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset),
			zap.ByteString("key", m.Key), zap.Int("attempt", attempt), zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, c.cfg.RetryMax)
	}
}

func lane(key []byte, n int) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(n))
}

// tracker finds, per partition, the highest offset below which every
// fetched message is done: the offset that may be committed.
type tracker struct {
	mu    sync.Mutex
	parts map[partKey]*partState
}

type partKey struct {
	topic     string
	partition int
}

type partState struct {
	pending []int64 // fetched offsets in fetch order (ascending)
	done    map[int64]kafka.Message
}

func newTracker() *tracker { return &tracker{parts: map[partKey]*partState{}} }

func (t *tracker) fetched(m kafka.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := partKey{m.Topic, m.Partition}
	p := t.parts[k]
	if p == nil {
		p = &partState{done: map[int64]kafka.Message{}}
		t.parts[k] = p
	}
	p.pending = append(p.pending, m.Offset)
}

// done marks m finished and returns the message to commit, if the
// committable point moved.
func (t *tracker) done(m kafka.Message) (kafka.Message, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partKey{m.Topic, m.Partition}]
	if p == nil {
		return kafka.Message{}, false
	}
	p.done[m.Offset] = m
	var last kafka.Message
	moved := false
	for len(p.pending) > 0 {
		dm, ok := p.done[p.pending[0]]
		if !ok {
			break
		}
		delete(p.done, p.pending[0])
		p.pending = p.pending[1:]
		last, moved = dm, true
	}
	return last, moved
}
