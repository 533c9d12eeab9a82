package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestUntilRetriesTransientErrors(t *testing.T) {
	calls := 0
	err := Until(context.Background(), zap.NewNop(), "step", nil, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Until = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestUntilStopsOnAFatalError(t *testing.T) {
	refused := errors.New("authentication refused")
	calls := 0
	err := Until(context.Background(), zap.NewNop(), "step", func(err error) bool { return errors.Is(err, refused) }, func() error {
		calls++
		return refused
	})
	if !errors.Is(err, refused) || calls != 1 {
		t.Errorf("Until = %v after %d calls, want the fatal error after 1", err, calls)
	}
}

func TestUntilStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := Until(ctx, zap.NewNop(), "step", nil, func() error { return errors.New("down") })
	if err == nil {
		t.Error("Until returned nil although the step never succeeded")
	}
}
