package ingress

import (
	"math"
	"sync"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

// every returns the offsets from from to to (excluded), step apart.
func every(from, to, step time.Duration) []time.Duration {
	var ds []time.Duration
	for d := from; d < to; d += step {
		ds = append(ds, d)
	}
	return ds
}

func TestAdmissionRule(t *testing.T) {
	const wait = 5 * time.Second
	steady := every(0, 20*time.Second, 50*time.Millisecond) // 20/s for 20 s
	// 20/s for 3 s, 27 s idle, then a burst of 50/s for a second.
	idleThenBurst := append(every(0, 3*time.Second, 50*time.Millisecond), every(30*time.Second, 31*time.Second, 20*time.Millisecond)...)
	cases := []struct {
		name        string
		completions []time.Duration // offsets from t0
		now         time.Duration
		inFlight    int
		admit       bool
		rate        float64       // results per second
		retryAfter  time.Duration // checked when refused
	}{
		{"no results: below the floor admitted", nil, 0, shedFloor - 1, true, 0, 0},
		{"no results: no estimate, admitted (MaxInFlight is the cap)", nil, 0, 1000, true, 0, 0},
		{"steady 20/s: below the floor admitted", steady, 20*time.Second - 1, 10, true, 20, 0},
		{"steady 20/s: past the floor, under rate × wait (100) admitted", steady, 20*time.Second - 1, 99, true, 20, 0},
		{"steady 20/s: past rate × wait refused, excess drain 120/20 − 5 = 1 s", steady, 20*time.Second - 1, 120, false, 20, time.Second},
		{"steady 20/s: excess drain 150/20 − 5 = 2.5 s rounds up", steady, 20*time.Second - 1, 150, false, 20, 3 * time.Second},
		{"steady 20/s: a long drain is clamped to 30 s", steady, 20*time.Second - 1, 1000, false, 20, maxRetryAfter},
		{"results older than the window count for nothing", steady, 40 * time.Second, 1000, true, 0, 0},
		{"a few results are no evidence", every(0, (minEvidence-1)*10*time.Millisecond, 10*time.Millisecond), time.Second, 1000, true, minEvidence - 1, 0},
		{"8 results in a cold second are: 8/s allows 40", every(0, minEvidence*10*time.Millisecond, 10*time.Millisecond), 500 * time.Millisecond, 41, false, minEvidence, time.Second},
		{"32 results in 9 s: 3.6/s allows 18 waiting, the floor 32", every(time.Second, 10*time.Second, 9*time.Second/shedFloor), 10 * time.Second, shedFloor, false, float64(shedFloor) / 9, 4 * time.Second},
		// Over the whole 10 s window this burst would be 5/s, allowing 25:
		// the floor. Over the second it covers it is 50/s, allowing 250.
		{"idle then burst: rated over the span it covers", idleThenBurst, 31 * time.Second, 200, true, 50, 0},
		{"idle then burst: still refused past its own rate × wait", idleThenBurst, 31 * time.Second, 260, false, 50, time.Second},
		{"first results of a second are not extrapolated", every(0, 32*time.Millisecond, time.Millisecond), 40 * time.Millisecond, 200, false, 32, 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAdmission(shedFloor)
			for _, d := range tc.completions {
				a.completed(t0.Add(d))
			}
			v := a.check(tc.inFlight, wait, t0.Add(tc.now))
			if v.admit != tc.admit || math.Abs(v.rate-tc.rate) > tc.rate*0.01 {
				t.Fatalf("got %+v, want admit %v at %.1f/s", v, tc.admit, tc.rate)
			}
			if v.retryAfter < time.Second || v.retryAfter > maxRetryAfter || v.retryAfter%time.Second != 0 {
				t.Fatalf("Retry-After %v: want whole seconds from 1 to 30", v.retryAfter)
			}
			if !tc.admit && v.retryAfter != tc.retryAfter {
				t.Fatalf("Retry-After %v, want %v", v.retryAfter, tc.retryAfter)
			}
		})
	}
}

// TestAdmissionConcurrent is meant for go test -race.
func TestAdmissionConcurrent(t *testing.T) {
	a := newAdmission(shedFloor)
	now := t0.Add(500 * time.Millisecond)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				a.completed(now)
				a.check(100, 5*time.Second, now)
			}
		})
	}
	wg.Wait()
	// 8000 results within one second, rated over at least a second.
	if r, _ := a.rate(now); r != 8000 {
		t.Fatalf("rate %v, want 8000 (a completion lost?)", r)
	}
}
