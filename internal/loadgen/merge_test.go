package loadgen

import (
	"testing"
	"time"
)

// TestMerge: a merged report counts every run's answers once, and its
// percentiles and throughput are those of all their latencies and durations
// together, not an average of the runs' own.
func TestMerge(t *testing.T) {
	lat := func(msecs ...int) []time.Duration {
		out := make([]time.Duration, len(msecs))
		for i, m := range msecs {
			out[i] = time.Duration(m) * time.Millisecond
		}
		return out
	}
	a := Report{Requests: 3, Answered: 3, DurationS: 1, ByCode: map[string]int{"000_000": 3}, ByStatus: map[string]int{"200": 3}, Model: "closed: 2 workers", sorted: lat(10, 20, 30)}
	b := Report{Requests: 2, Answered: 1, Errors: 1, DurationS: 3, ByCode: map[string]int{"001_006": 1}, ByStatus: map[string]int{"400": 1},
		ErrorKinds: map[string]int{"timeout": 1}, FirstError: "late", sorted: lat(1000)}
	m := Merge(a, b)
	if m.Requests != 5 || m.Answered != 4 || m.Errors != 1 || m.DurationS != 4 || m.RPS != 1 {
		t.Errorf("counts: %+v", m)
	}
	if m.ByCode["000_000"] != 3 || m.ByCode["001_006"] != 1 || m.ByStatus["400"] != 1 || m.ErrorKinds["timeout"] != 1 || m.FirstError != "late" || m.Model != a.Model {
		t.Errorf("maps and firsts: %+v", m)
	}
	if m.P50ms != 20 || m.P99ms != 1000 || m.MaxMs != 1000 {
		t.Errorf("p50 %v p99 %v max %v, want 20, 1000, 1000", m.P50ms, m.P99ms, m.MaxMs)
	}
	if e := Merge(); e.Answered != 0 || e.RPS != 0 || e.P99ms != 0 {
		t.Errorf("an empty merge: %+v", e)
	}
}
