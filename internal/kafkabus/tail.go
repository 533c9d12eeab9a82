package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/health"
)

// Tail reads every partition of a topic from the offsets that were its end
// when Start returned, outside any consumer group, and hands each message to
// a callback. Every ingress instance tails password.results this way and
// picks out the results its own requests wait for: a reply reaches whichever
// instance waits for it, at the cost of every instance reading every result.
type Tail struct {
	topic   string
	log     *zap.Logger
	readers []*kafka.Reader
}

// StartTail positions one reader per partition at the current end of topic.
// Once it returns, every message produced later is seen by Run.
func StartTail(ctx context.Context, c Cluster, topic string, log *zap.Logger) (*Tail, error) {
	client := c.Client()
	ids, err := partitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, id := range ids {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(id))
	}
	res, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	t := &Tail{topic: topic, log: log}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			t.Close()
			return nil, fmt.Errorf("end offset of %s/%d: %w", topic, po.Partition, po.Error)
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   c.Brokers,
			Dialer:    c.Dialer(),
			Topic:     topic,
			Partition: po.Partition,
			MinBytes:  1,
			MaxBytes:  1 << 20,
			// MaxWait is the broker's long-poll time: results arrive as soon
			// as they are written; this only bounds an idle fetch.
			MaxWait:        500 * time.Millisecond,
			ReadBackoffMin: 50 * time.Millisecond,
			ReadBackoffMax: time.Second,
			Logger:         zapLogger(log),
			ErrorLogger:    zapErrorLogger(log),
		})
		if err := r.SetOffset(po.LastOffset); err != nil {
			r.Close()
			t.Close()
			return nil, fmt.Errorf("seek %s/%d: %w", topic, po.Partition, err)
		}
		t.readers = append(t.readers, r)
	}
	return t, nil
}

// Run calls handle for every message until ctx ends. It returns nil on
// cancellation. handle must not block for long: it runs on the partition's
// reading goroutine. A read error (the broker away) is waited out: kafka-go's
// reader reconnects by itself, with backoff, and goes on from the offset it
// had, so no result is skipped; loop, when set, reports the wait to readiness.
func (t *Tail) Run(ctx context.Context, loop *health.Loop, handle func(kafka.Message)) error {
	var wg sync.WaitGroup
	for _, r := range t.readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failures := 0
			for {
				m, err := r.ReadMessage(ctx)
				switch {
				case ctx.Err() != nil:
					return
				case errors.Is(err, io.EOF): // closed
					return
				case err != nil:
					failures++
					loop.Waiting(fmt.Errorf("tail %s/%d: %w", t.topic, r.Config().Partition, err))
					if failures == 1 || failures%100 == 0 {
						t.log.Warn("tail read failed, retrying", zap.String("topic", t.topic), zap.Int("partition", r.Config().Partition),
							zap.Int("failures", failures), zap.Error(err))
					}
					// kafka-go paces its reconnection attempts and queues each
					// failure: a longer wait here leaves stale failures queued
					// after the broker is back (seen: 70 s of them).
					if !sleep(ctx, errorPause) {
						return
					}
					continue
				}
				if failures > 0 {
					t.log.Info("tail reading again", zap.String("topic", t.topic), zap.Int("partition", r.Config().Partition), zap.Int("failures", failures))
					failures = 0
					loop.Recovered()
				}
				handle(m)
			}
		}()
	}
	wg.Wait()
	return nil
}

// Close closes every reader.
func (t *Tail) Close() error {
	var errs []error
	for _, r := range t.readers {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}
