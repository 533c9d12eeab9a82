package worker

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// WatchLag exports the consumer lag of each topic's group every 10 s, read
// from the broker (committed offsets against high watermarks), until ctx
// ends. A failed read leaves the last figures and is retried at the next tick.
func WatchLag(ctx context.Context, c kafkabus.Cluster, m *metrics.Worker, groups map[string]string, log *zap.Logger) {
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

// QueueActionCounter counts the operators' queue actions
// (*mongostore.Store).
type QueueActionCounter interface {
	QueueActionCounts(ctx context.Context) ([]mongostore.QueueActionCount, error)
}

// WatchQueueActions exports the redrives and purges operators recorded
// (pwctl dlq|parked) every 30 s, until ctx ends: a CLI has no /metrics of
// its own, so the workers report what it did. A failed read leaves the
// last figures.
func WatchQueueActions(ctx context.Context, c QueueActionCounter, m *metrics.Worker, log *zap.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		if err := CountQueueActions(ctx, c, m); err != nil && ctx.Err() == nil {
			log.Warn("count queue actions", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CountQueueActions reads the counts once into m (pinreset_queue_actions,
// queue dlq or parked).
func CountQueueActions(ctx context.Context, c QueueActionCounter, m *metrics.Worker) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	counts, err := c.QueueActionCounts(ctx)
	if err != nil {
		return err
	}
	queues := map[string]string{kafkabus.TopicCommandsDLQ: "dlq", kafkabus.TopicCommandsRetry: "parked"}
	for _, n := range counts {
		if q, ok := queues[n.Topic]; ok {
			m.QueueActions.WithLabelValues(q, n.Action).Set(float64(n.N))
		}
	}
	return nil
}

// Relay delivers what dead workers left in members' outboxes and prunes
// what is delivered (decision.Service.Relay) every 5 s, a batch of 500
// members after another while batches come full, until ctx ends. Several
// workers relaying at once is harmless: delivery is idempotent and a prune
// is conditional on the member's version.
func Relay(ctx context.Context, svc *decision.Service, loop *health.Loop, log *zap.Logger) {
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
			n, err = svc.Relay(rctx, batch)
			cancel()
			if err != nil && ctx.Err() == nil {
				log.Warn("relay undelivered decisions", zap.Int("pruned", n), zap.Error(err))
				break
			}
		}
		end()
	}
}

// SweepOutcomes deletes outcomes and parked markers older than retention,
// hourly (and once at start), until ctx ends. Several workers sweeping at
// once is harmless: deletes are idempotent. (Replay claims live in the
// member's state and expire there.)
func SweepOutcomes(ctx context.Context, store *mongostore.Store, retention time.Duration, loop *health.Loop, log *zap.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := Sweep(ctx, store.OutcomeSweep(), time.Now().Add(-retention), loop)
		if err != nil && ctx.Err() == nil {
			log.Warn("sweep outcomes", zap.Error(err))
		} else if n > 0 {
			log.Info("swept outcomes", zap.Int64("deleted", n), zap.Duration("retention", retention))
		}
		if _, err := Sweep(ctx, store.ParkedSweep(), time.Now().Add(-retention), loop); err != nil && ctx.Err() == nil {
			log.Warn("sweep parked markers", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweepable is what the retention sweep deletes from, by time
// (mongostore.Sweepable).
type Sweepable interface {
	// DeleteBetween deletes the records of [from, to).
	DeleteBetween(ctx context.Context, from, to time.Time) (int64, error)
	// AnyBefore reports whether a record older than t is left.
	AnyBefore(ctx context.Context, t time.Time) (bool, error)
}

// SweepBatch is about how many records one delete of the retention sweep
// removes.
const SweepBatch = 1000

// maxSweepSlice bounds a slice of time, far beyond any retention, so that
// a record with a nonsense time (year 1) is still reached without overflow.
const maxSweepSlice = 100 * 365 * 24 * time.Hour

// Sweep deletes c's records older than t, one slice of time after another,
// walking back from t until nothing older is left: each slice is sized
// from the last one's count to hold about SweepBatch records, and after
// each delete the sweep pauses as long as the delete took. One delete of
// an hour's records would hold the database for as long as it runs, while
// the commands wait behind it; paced, the sweep takes at most about half
// of the database's time. Walking back, no slice reads the index entries
// of the records deleted before it. Each slice is one piece of loop's
// work. It returns how many records it deleted.
func Sweep(ctx context.Context, c Sweepable, t time.Time, loop *health.Loop) (int64, error) {
	var total int64
	hi, width := t, time.Second
	for {
		lo := hi.Add(-width)
		start := time.Now()
		end := loop.Begin()
		n, err := c.DeleteBetween(ctx, lo, hi)
		more := true
		if err == nil && n == 0 {
			more, err = c.AnyBefore(ctx, lo)
		}
		end()
		total += n
		if err != nil || !more {
			return total, err
		}
		hi = lo
		next := 4 * float64(width) // in float64: no overflow
		if n > 0 {
			next = min(next, float64(width)*SweepBatch/float64(n))
		}
		width = time.Duration(min(max(next, float64(time.Millisecond)), float64(maxSweepSlice)))
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(time.Since(start)):
		}
	}
}

// LimitHashing returns h admitting at most concurrency argon2id
// computations at once, so that CPU and memory stay bounded under any load
// (more commands wait, none allocates), measuring each one in m,
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
	t.m.HashesAhead.WithLabelValues("started").Inc()
	running := t.m.Hashes.WithLabelValues("running")
	running.Inc()
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		h, err := t.h.Hash(pin)
		t.observe(start)
		running.Dec()
		<-t.slots
		done <- result{h, err}
	}()
	return func() (string, error) {
		t.m.HashesAhead.WithLabelValues("used").Inc()
		r := <-done
		return r.hash, r.err
	}
}

// admit waits for a slot and returns the func that frees it and records
// the time; the hashes gauge shows it waiting, then running.
func (t timedHasher) admit() func() {
	waiting, running := t.m.Hashes.WithLabelValues("waiting"), t.m.Hashes.WithLabelValues("running")
	waiting.Inc()
	t.slots <- struct{}{}
	waiting.Dec()
	running.Inc()
	start := time.Now()
	return func() {
		t.observe(start)
		running.Dec()
		<-t.slots
	}
}

func (t timedHasher) observe(start time.Time) {
	t.m.HashDuration.Observe(time.Since(start).Seconds())
}
