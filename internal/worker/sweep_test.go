package worker_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/worker"
)

// records is a Sweepable in memory: record times, and each delete's count.
type records struct {
	at      []time.Time
	deletes []int64
	fail    error
}

func (r *records) DeleteBetween(_ context.Context, from, to time.Time) (int64, error) {
	if r.fail != nil && len(r.deletes) == 2 {
		return 0, r.fail
	}
	before := len(r.at)
	r.at = slices.DeleteFunc(r.at, func(t time.Time) bool { return !t.Before(from) && t.Before(to) })
	n := int64(before - len(r.at))
	r.deletes = append(r.deletes, n)
	return n, nil
}

func (r *records) AnyBefore(_ context.Context, t time.Time) (bool, error) {
	return slices.ContainsFunc(r.at, func(x time.Time) bool { return x.Before(t) }), nil
}

// TestSweep: the retention sweep deletes everything before its cutoff and
// nothing after, in slices of about SweepBatch records, across gaps and
// to a nonsense time; it stops at an error or when its context ends.
func TestSweep(t *testing.T) {
	t.Parallel()
	cutoff := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	build := func() *records {
		r := &records{}
		for i := range 20_000 { // 10 a second before the cutoff, over 2,000 s
			r.at = append(r.at, cutoff.Add(-time.Duration(i+1)*100*time.Millisecond))
		}
		for i := range 50 { // kept
			r.at = append(r.at, cutoff.Add(time.Duration(i)*time.Second))
		}
		r.at = append(r.at, cutoff.Add(-30*24*time.Hour), time.Time{}) // after a gap of a month; year 1
		return r
	}
	r := build()
	n, err := worker.Sweep(context.Background(), r, cutoff, nil)
	if err != nil || n != 20_002 || len(r.at) != 50 {
		t.Fatalf("Sweep: %d deleted, %d left, %v; want 20002 and the 50 after the cutoff", n, len(r.at), err)
	}
	if m := slices.Max(r.deletes); m > 4*worker.SweepBatch {
		t.Errorf("largest slice %d records, want at most 4 × %d (slices %v)", m, worker.SweepBatch, r.deletes)
	}
	if len(r.deletes) > 200 {
		t.Errorf("%d slices for 20,002 records", len(r.deletes))
	}

	r = build()
	r.fail = errors.New("connection reset")
	if _, err := worker.Sweep(context.Background(), r, cutoff, nil); !errors.Is(err, r.fail) {
		t.Fatalf("a failing delete: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = build()
	if _, err := worker.Sweep(ctx, r, cutoff, nil); !errors.Is(err, context.Canceled) || len(r.deletes) != 1 {
		t.Fatalf("an ended context: %v after %d slices", err, len(r.deletes))
	}
}
