package loadgen

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Report is the result of a run; its JSON is pwctl load's -json output
// (and what make bench reads). Times are in milliseconds and seconds, as
// the field names say.
type Report struct {
	Requests        int            `json:"requests"` // sent
	DurationS       float64        `json:"duration_s"`
	RPS             float64        `json:"rps"` // answered requests per second
	P50ms           float64        `json:"p50_ms"`
	P95ms           float64        `json:"p95_ms"`
	P99ms           float64        `json:"p99_ms"`
	MaxMs           float64        `json:"max_ms"`
	ByStatus        map[string]int `json:"by_status"`
	ByCode          map[string]int `json:"by_code"`
	Dropped         int            `json:"dropped"`
	Errors          int            `json:"errors"`
	Answered        int            `json:"answered"`
	Unexpected      int            `json:"unexpected"` // answered with another code than the one aimed for
	Polled          int            `json:"polled"`     // first answered 202
	Canceled        int            `json:"canceled,omitempty"`
	DroppedNoMember int            `json:"dropped_no_member,omitempty"`
	ErrorKinds      map[string]int `json:"error_kinds,omitempty"`
	FirstError      string         `json:"first_error,omitempty"`
	Model           string         `json:"model"`
	// ArrivalLagP50ms and ArrivalLagMaxMs (open model): how late the
	// generator sent its arrivals, an error of its own that the latency,
	// run from the scheduled arrival, includes.
	ArrivalLagP50ms float64 `json:"arrival_lag_p50_ms,omitempty"`
	ArrivalLagMaxMs float64 `json:"arrival_lag_max_ms,omitempty"`

	sorted []time.Duration
}

func (r *loadRun) report() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	sorted := slices.Clone(r.lat)
	slices.Sort(sorted)
	d := r.end.Sub(r.start)
	rep := Report{
		Requests: int(r.sent.Load()), DurationS: d.Seconds(), RPS: float64(len(sorted)) / d.Seconds(),
		ByStatus: map[string]int{}, ByCode: copyCounts(r.byCode), Dropped: int(r.dropped.Load()), Errors: int(r.errCount.Load()),
		Answered: len(sorted), Unexpected: r.unexpected, Polled: r.polled, Canceled: r.canceled,
		DroppedNoMember: r.droppedNoMember, FirstError: r.firstErr, sorted: sorted,
	}
	if len(r.errKinds) > 0 {
		rep.ErrorKinds = copyCounts(r.errKinds)
	}
	for s, n := range r.byStatus {
		rep.ByStatus[strconv.Itoa(s)] = n
	}
	if r.o.Rate > 0 {
		rep.Model = fmt.Sprintf("open: %g arrivals/s, at most %d in flight", r.o.Rate, r.o.MaxInflight)
	} else {
		rep.Model = fmt.Sprintf("closed: %d workers", r.o.Concurrency)
	}
	rep.P50ms, rep.P95ms, rep.P99ms = ms(percentile(sorted, 0.50)), ms(percentile(sorted, 0.95)), ms(percentile(sorted, 0.99))
	if len(sorted) > 0 {
		rep.MaxMs = ms(sorted[len(sorted)-1])
	}
	if lag := slices.Sorted(slices.Values(r.lag)); len(lag) > 0 {
		rep.ArrivalLagP50ms, rep.ArrivalLagMaxMs = ms(percentile(lag, 0.50)), ms(lag[len(lag)-1])
	}
	return rep
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// percentile is the nearest-rank percentile of sorted (0 when empty).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// Print writes rep as pwctl load's text report; o are the options of the
// run, for the lines that tell how it was made.
func (rep Report) Print(w io.Writer, o Options) {
	fmt.Fprintf(w, "model        %s; %.0f%% resets, %.0f%% meant to fail\n", rep.Model, 100*o.Mix, 100*o.FailShare)
	fmt.Fprintf(w, "requests     %d sent, %d answered, %d errors, %d dropped", rep.Requests, rep.Answered, rep.Errors, rep.Dropped)
	if rep.DroppedNoMember > 0 {
		fmt.Fprintf(w, " (%d for want of a free member)", rep.DroppedNoMember)
	}
	if rep.Canceled > 0 {
		fmt.Fprintf(w, ", %d canceled", rep.Canceled)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "duration     %.3f s\n", rep.DurationS)
	fmt.Fprintf(w, "throughput   %.1f answers/s\n", rep.RPS)
	fmt.Fprintf(w, "latency      p50 %.1f ms   p95 %.1f ms   p99 %.1f ms   max %.1f ms\n", rep.P50ms, rep.P95ms, rep.P99ms, rep.MaxMs)
	if o.Rate > 0 {
		fmt.Fprintf(w, "arrivals     sent %.2f ms late at the median, %.2f ms at most (the generator's own lag, in the latency)\n", rep.ArrivalLagP50ms, rep.ArrivalLagMaxMs)
	}
	fmt.Fprintf(w, "by status    %s\n", countList(rep.ByStatus))
	fmt.Fprintf(w, "by code      %s\n", countList(rep.ByCode))
	fmt.Fprintf(w, "unexpected   %d (answered with another code than the one aimed for)\n", rep.Unexpected)
	fmt.Fprintf(w, "polled       %d (answered 202 first, then polled to the final answer)\n", rep.Polled)
	if rep.Errors > 0 {
		fmt.Fprintf(w, "errors       %s; first: %s\n", countList(rep.ErrorKinds), rep.FirstError)
	}
	if o.PlotFile != "" {
		fmt.Fprintf(w, "plot         %s\n", o.PlotFile)
	}
}

func countList(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, "   ")
}

// writePlot draws the latency histogram, the latency CDF and the answers

// Merge is one report of several runs, as if their answers had come in one
// run as long as theirs together: counts add up, the percentiles are
// those of every latency of them all, the throughput is the answers over
// the summed durations. make bench-scale alternates short runs of two
// setups on a shared machine and compares each setup's merged report.
func Merge(reps ...Report) Report {
	var m Report
	m.ByStatus, m.ByCode = map[string]int{}, map[string]int{}
	kinds := map[string]int{}
	var all []time.Duration
	for _, r := range reps {
		m.Requests += r.Requests
		m.DurationS += r.DurationS
		m.Dropped += r.Dropped
		m.Errors += r.Errors
		m.Answered += r.Answered
		m.Unexpected += r.Unexpected
		m.Polled += r.Polled
		m.Canceled += r.Canceled
		m.DroppedNoMember += r.DroppedNoMember
		for k, n := range r.ByStatus {
			m.ByStatus[k] += n
		}
		for k, n := range r.ByCode {
			m.ByCode[k] += n
		}
		for k, n := range r.ErrorKinds {
			kinds[k] += n
		}
		if m.FirstError == "" {
			m.FirstError = r.FirstError
		}
		if m.Model == "" {
			m.Model = r.Model
		}
		all = append(all, r.sorted...)
	}
	if len(kinds) > 0 {
		m.ErrorKinds = kinds
	}
	slices.Sort(all)
	m.sorted = all
	if m.DurationS > 0 {
		m.RPS = float64(len(all)) / m.DurationS
	}
	m.P50ms, m.P95ms, m.P99ms = ms(percentile(all, 0.50)), ms(percentile(all, 0.95)), ms(percentile(all, 0.99))
	if len(all) > 0 {
		m.MaxMs = ms(all[len(all)-1])
	}
	return m
}
