package ingress

import (
	"math"
	"sync"
	"time"
)

// Defaults of the load shedding rule (see Options).
const (
	// shedFloor: below this many commands waiting here a request is always
	// admitted. It keeps requests probing a backlog, whose answers bring the
	// estimate back up, and keeps a low first estimate (a few results after
	// an idle period, rated over at least a second) from refusing traffic
	// the pipeline can take.
	shedFloor = 32
	// minEvidence: a rate measured from fewer results than this is not acted
	// on. Low enough that a cold instance hit by an overload starts shedding
	// within a fraction of a second (at 20 results/s, 0.4 s: the commands
	// admitted meanwhile are a few seconds of work), high enough that one
	// stray result after an outage does not count as a rate.
	minEvidence = 8
	// admissionBuckets one-second buckets make the sliding window: long
	// enough to smooth out bursts, short enough to follow a worker slowing
	// down within a few seconds.
	admissionBuckets = 10
	// maxRetryAfter bounds the Retry-After sent: past it an estimate from a
	// 10 s window means little, and clients should come back to find out.
	maxRetryAfter = 30 * time.Second
)

// admission estimates how fast results come back to the requests waiting
// on this instance, and refuses a command whose result would not come within
// the wait anyway.
//
// By Little's law, with n commands waiting here and results arriving at a
// rate of λ per second, a new command's result comes after about n/λ. When
// n ≥ λ × ResultWait the client would get a 202 anyway, while the command
// adds to the Kafka backlog and costs the worker a hash for nobody waiting;
// a 503 with a Retry-After now is cheaper for everyone.
//
// It is told the time (no hidden clock) so that tests can drive it, and is
// safe for concurrent use.
type admission struct {
	floor int

	mu      sync.Mutex
	buckets [admissionBuckets]bucket
}

// bucket counts the completions of one Unix second.
type bucket struct {
	sec   int64 // the second counted; a bucket outside the window is stale
	count int
}

// verdict is one admission decision, with the estimate behind it for the log.
type verdict struct {
	admit      bool
	inFlight   int           // commands waiting here when asked
	rate       float64       // completions per second, 0 without any in the window
	answerable float64       // rate × wait: the waiting commands the wait can answer
	retryAfter time.Duration // whole seconds, 1 to maxRetryAfter
}

func newAdmission(floor int) *admission { return &admission{floor: floor} }

// completed records a result delivered to a request waiting here.
func (a *admission) completed(now time.Time) {
	sec := now.Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	b := &a.buckets[bucketIndex(sec)]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	b.count++
}

// rate is the completions per second over the window ending at now, and
// how many completions it is measured from.
//
// It divides by the span the window's completions actually cover (from the
// start of the oldest second holding one), not by the whole window. After an
// idle period the window is mostly empty: dividing 1 s of a 50/s burst by 10 s
// would estimate 5/s, hold the instance to the floor and refuse most of a
// burst it can serve. The span is at least one second, so that the first few
// results of a second are not extrapolated into a huge rate.
//
// Seconds after now (the wall clock stepped back) are ignored until they age
// out: the estimate is off for at most the window, never stuck.
func (a *admission) rate(now time.Time) (float64, int) {
	nowSec := now.Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	total, oldest := 0, nowSec
	for _, b := range a.buckets {
		if b.count == 0 || b.sec > nowSec || b.sec <= nowSec-admissionBuckets {
			continue
		}
		total += b.count
		oldest = min(oldest, b.sec)
	}
	if total == 0 {
		return 0, 0
	}
	span := max(now.Sub(time.Unix(oldest, 0)), time.Second)
	return float64(total) / span.Seconds(), total
}

// check decides whether to admit a command while inFlight commands are
// already waiting here for at most wait each. The retry delay is computed
// either way: a refusal for another reason (MaxInFlight) sends it too.
func (a *admission) check(inFlight int, wait time.Duration, now time.Time) verdict {
	r, n := a.rate(now)
	v := verdict{inFlight: inFlight, rate: r, answerable: r * wait.Seconds()}
	// Too few results in the window are no evidence of a slow pipeline: a
	// worker outage (commands wait on Kafka and are answered 202, as the
	// asynchronous contract says, up to MaxInFlight), or the first moments
	// after an idle period. Shedding starts when results do come back, only
	// slower than the queue grows.
	v.admit = inFlight < a.floor || n < minEvidence || float64(inFlight) < v.answerable
	// The excess drain time: how long until the queue ahead is down to what
	// the wait can answer, n/λ − wait. Without a rate there is no estimate;
	// the wait is a bound of sorts, as by then every request waiting now has
	// had its answer or its 202.
	retry := wait.Seconds()
	if r > 0 {
		retry = float64(inFlight)/r - wait.Seconds()
	}
	retry = min(max(math.Ceil(retry), 1), maxRetryAfter.Seconds())
	v.retryAfter = time.Duration(retry) * time.Second
	return v
}

func bucketIndex(sec int64) int {
	return int((sec%admissionBuckets + admissionBuckets) % admissionBuckets)
}
