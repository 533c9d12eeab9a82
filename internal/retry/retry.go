// Package retry runs a step that depends on servers still coming up (topic
// creation, indexes, positioning a reader) until it succeeds, with capped
// exponential backoff and jitter, on cenkalti/backoff: what a process does
// at start instead of exiting because Kafka or MongoDB answers a second late.
package retry

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
)

// Until runs fn until it returns nil, fatal(err) is true (retrying cannot
// fix it: bad credentials), or ctx ends. It waits 200 ms after the first
// failure, doubling up to 5 s, each wait spread by ±50%, and logs each failure.
func Until(ctx context.Context, log *zap.Logger, what string, fatal func(error) bool, fn func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.RandomizationFactor, b.Multiplier = 200*time.Millisecond, 5*time.Second, 0.5, 2
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := fn()
		if err != nil && fatal != nil && fatal(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
		log.Warn(what+" failed, retrying", zap.Duration("backoff", next), zap.Error(err))
	}))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
