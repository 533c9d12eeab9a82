package loadgen

import (
	"context"
	"testing"
	"time"
)

// waitUntil never returns before the arrival, spinning or not, and gives
// up when the run ends, asleep or spinning.
func TestWaitUntil(t *testing.T) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for _, spin := range []time.Duration{0, spinFor, time.Hour} {
		for _, ahead := range []time.Duration{-time.Millisecond, 0, 3 * time.Millisecond} {
			at := time.Now().Add(ahead)
			if !waitUntil(context.Background(), timer, at, spin) {
				t.Fatalf("spin %v, arrival in %v: gave up with no reason", spin, ahead)
			}
			if now := time.Now(); now.Before(at) {
				t.Errorf("spin %v: returned %v before the arrival", spin, at.Sub(now))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if waitUntil(ctx, timer, time.Now().Add(time.Hour), spin) {
			t.Errorf("spin %v: waited out an arrival an hour away after its run ended", spin)
		}
		cancel()
	}
}
