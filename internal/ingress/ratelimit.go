package ingress

import (
	"crypto/sha256"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Rate is a token bucket: N commands at once, refilled at N per Per. The
// zero Rate is off.
type Rate struct {
	N   int
	Per time.Duration
}

func (r Rate) off() bool { return r.N <= 0 || r.Per <= 0 }

// Defaults of the admission buckets.
const (
	// maxMemberBuckets bounds the member buckets one ingress keeps: about
	// 150 bytes each, so 100,000 are ~15 MiB. A bucket that has refilled
	// is the same as none and is swept; only members that sent commands
	// within one refill time (PINRESET_MEMBER_RATE's duration) have one,
	// and the ASP buckets bound how fast new ones appear (at the default
	// 100/s and 1 minute, 6,000 per ASP). Past the bound the ingress drops
	// buckets that are not full, which gives those members a fresh burst:
	// their ASP's bucket still holds.
	maxMemberBuckets = 100_000
	// sweepEvery: how often full buckets are swept even below the bound.
	sweepEvery = time.Minute
)

// memberKey names a member's bucket: a digest of ASP and loginId, so that
// the ingress's memory holds no loginId and every key has the same size.
type memberKey [16]byte

// limiter admits commands through two token buckets before anything is
// published: one per member (ASP and loginId) and one per ASP, per ingress
// instance (N ingresses admit N times the rate). A burst against one member
// (a guessing script, a storm of replayed captures) or from one ASP is
// refused with 429 000_429 and Retry-After, costing the workers nothing:
// nothing reaches Kafka, let alone argon2. It lives in the ingress because
// the ingress knows the ASP and the loginId before publishing and refusing
// there is free downstream; the worker's own defences (replayed wrong
// attempts answered without hashing, the hashing semaphore) do not depend
// on it. Safe for concurrent use; a nil *limiter admits everything.
type limiter struct {
	member, asp Rate

	mu        sync.Mutex
	members   map[memberKey]*rate.Limiter
	asps      map[string]*rate.Limiter // one per registered ASP: only authenticated requests get here
	max       int
	lastSweep time.Time

	refused *prometheus.CounterVec // nil: not measured
}

// newLimiter returns the limiter of the two rates, nil when both are off.
func newLimiter(member, asp Rate) *limiter {
	if member.off() && asp.off() {
		return nil
	}
	return &limiter{member: member, asp: asp, members: map[memberKey]*rate.Limiter{}, asps: map[string]*rate.Limiter{}, max: maxMemberBuckets}
}

// measure registers pinreset_ingress_limited_total{scope} on reg.
func (l *limiter) measure(reg prometheus.Registerer) {
	if l == nil {
		return
	}
	l.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pinreset_ingress_limited_total",
		Help: "Commands refused with 429 000_429 before publishing, by the bucket that was empty: member or asp.",
	}, []string{"scope"})
	reg.MustRegister(l.refused)
}

func newBucket(r Rate) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(r.N)/r.Per.Seconds()), r.N)
}

// admit takes a token from the ASP's and the member's buckets, or, when
// either is empty, takes none and answers 429 with Retry-After: the whole
// seconds until both have one again (at least 1).
func (l *limiter) admit(w http.ResponseWriter, aspID, loginID string, now time.Time) error {
	if l == nil {
		return nil
	}
	wait, scope := l.reserve(aspID, loginID, now)
	if wait <= 0 {
		return nil
	}
	if l.refused != nil {
		l.refused.WithLabelValues(scope).Inc()
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(max(1, math.Ceil(wait.Seconds())))))
	return pinreset.Errorf(pinreset.CodeTooManyRequests, "")
}

// reserve takes one token of each bucket, or none: it returns how long
// until both would have one and which was empty ("member" or "asp").
func (l *limiter) reserve(aspID, loginID string, now time.Time) (time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	var reservations []*rate.Reservation
	var wait time.Duration
	scope := ""
	take := func(b *rate.Limiter, per time.Duration, name string) {
		r := b.ReserveN(now, 1)
		reservations = append(reservations, r)
		d := r.DelayFrom(now)
		if !r.OK() {
			d = per
		}
		if d > wait {
			wait, scope = d, name
		}
	}
	if !l.asp.off() {
		b, ok := l.asps[aspID]
		if !ok {
			b = newBucket(l.asp)
			l.asps[aspID] = b
		}
		take(b, l.asp.Per, "asp")
	}
	if !l.member.off() {
		k := keyOf(aspID, loginID)
		b, ok := l.members[k]
		if !ok {
			b = newBucket(l.member)
			l.members[k] = b
		}
		take(b, l.member.Per, "member")
	}
	if wait > 0 {
		for _, r := range reservations {
			r.CancelAt(now)
		}
	}
	return wait, scope
}

// sweep drops member buckets that have refilled (the same as none), every
// sweepEvery or when the bound is reached; past the bound it drops
// arbitrary ones down to 90% of it. Called with l.mu held.
func (l *limiter) sweep(now time.Time) {
	if len(l.members) < l.max && now.Sub(l.lastSweep) < sweepEvery {
		return
	}
	l.lastSweep = now
	for k, b := range l.members {
		if b.TokensAt(now) >= float64(l.member.N) {
			delete(l.members, k)
		}
	}
	for k := range l.members {
		if len(l.members) < l.max*9/10 {
			break
		}
		delete(l.members, k)
	}
}

func keyOf(aspID, loginID string) memberKey {
	h := sha256.New()
	h.Write([]byte(aspID))
	h.Write([]byte{0})
	h.Write([]byte(loginID))
	var k memberKey
	copy(k[:], h.Sum(nil))
	return k
}
