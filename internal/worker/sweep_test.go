package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/worker"
)

// TestSweepBatches: the retention sweep goes batch by batch until one is
// not full, and stops at an error or when its context ends.
func TestSweepBatches(t *testing.T) {
	t.Parallel()
	cutoff := time.Now().Add(-time.Hour)
	sweep := func(ctx context.Context, batches []int64, fail error) (int64, []int, error) {
		var limits []int
		n, err := worker.Sweep(ctx, func(_ context.Context, before time.Time, limit int) (int64, error) {
			if !before.Equal(cutoff) {
				t.Errorf("before %v, want %v", before, cutoff)
			}
			limits = append(limits, limit)
			if len(limits) > len(batches) {
				return 0, fail
			}
			return batches[len(limits)-1], nil
		}, cutoff, nil)
		return n, limits, err
	}
	full := int64(worker.SweepBatch)
	if n, limits, err := sweep(context.Background(), []int64{full, full, 7}, nil); err != nil || n != 2*full+7 || len(limits) != 3 || limits[0] != worker.SweepBatch {
		t.Fatalf("three batches: %d deleted, limits %v, %v", n, limits, err)
	}
	boom := errors.New("connection reset")
	if n, limits, err := sweep(context.Background(), []int64{full}, boom); !errors.Is(err, boom) || n != full || len(limits) != 2 {
		t.Fatalf("a failing batch: %d deleted, limits %v, %v", n, limits, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, limits, err := sweep(ctx, []int64{full, full, full}, nil); !errors.Is(err, context.Canceled) || n != full || len(limits) != 1 {
		t.Fatalf("an ended context: %d deleted, limits %v, %v", n, limits, err)
	}
}
