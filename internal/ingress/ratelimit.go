package ingress

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
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
	// maxAdmitted bounds the transactions remembered as charged (see
	// limiter.admitted).
	maxAdmitted = 100_000
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
//
// Only a new command that was published costs a token. A command admitted
// holds a token of each bucket (not taken, not available to others) until
// its publish: published, the token is taken; refused afterwards (shed,
// MaxInFlight) or not published, the hold is let go and nothing was spent.
// A retry of a transaction charged within the last period (the same ASP,
// correlation id and content: what the worker answers with the recorded
// outcome) costs nothing, nor does one that arrives while the first is
// still being published: it shares its hold.
type limiter struct {
	member, asp Rate

	mu        sync.Mutex
	members   map[memberKey]*tokenBucket
	asps      map[string]*tokenBucket // one per registered ASP: only authenticated requests get here
	max       int
	lastSweep time.Time

	// holds are the transactions admitted and not yet published, with the
	// requests that share each; settled by every request (commit or release).
	holds map[txKey]*hold
	// admitted are the transactions charged within the last period (the
	// longer Per of the two rates), so that their retries go free. Bounded:
	// at most maxAdmitted (100,000) entries of a 16-byte digest and an
	// 8-byte expiry, held in a map and an insertion-order queue, about 100
	// bytes each with the map's and the queue's slack, so ~10 MiB at the
	// bound. Commands enter at most at the ASP buckets' rates (at the
	// default 1000/10s and 1 minute, 6,000 per ASP); past the bound the
	// oldest is forgotten early, and its retry costs a token again.
	admitted admittedSet
	// txSecret keys the transaction digests: drawn at start, never stored,
	// so that a digest of a request's content (PINs included) cannot be
	// tested against guesses by anyone reading this process's memory later.
	txSecret [32]byte

	refused *prometheus.CounterVec // nil: not measured
}

// tokenBucket is one token bucket and the tokens held from it for commands
// being published.
type tokenBucket struct {
	lim  *rate.Limiter
	held int
}

// hold is one admitted transaction's claim on a token of each bucket (nil:
// that rate is off), shared by the requests carrying it.
type hold struct {
	refs        int  // requests sharing it, not yet settled
	done        bool // taken (published) or let go
	asp, member *tokenBucket
}

// newLimiter returns the limiter of the two rates, nil when both are off.
func newLimiter(member, asp Rate) *limiter {
	if member.off() && asp.off() {
		return nil
	}
	period := member.Per
	if !asp.off() && (member.off() || asp.Per > period) {
		period = asp.Per
	}
	l := &limiter{member: member, asp: asp, members: map[memberKey]*tokenBucket{}, asps: map[string]*tokenBucket{}, max: maxMemberBuckets,
		holds: map[txKey]*hold{}, admitted: newAdmittedSet(maxAdmitted, period)}
	_, _ = rand.Read(l.txSecret[:]) // never fails since Go 1.24
	return l
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

func newBucket(r Rate) *tokenBucket {
	return &tokenBucket{lim: rate.NewLimiter(rate.Limit(float64(r.N)/r.Per.Seconds()), r.N)}
}

// wait is how long until the bucket has a token that is not held, 0 if it
// has one now.
func (b *tokenBucket) wait(now time.Time) time.Duration {
	short := float64(b.held) + 1 - b.lim.TokensAt(now)
	if short <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) * short / float64(b.lim.Limit()))
}

// charge is one request's admission: settle it with commit once its
// command is published, and release in any case (a no-op after commit). A
// nil *charge (no limiter) and a free one (a retry) cost nothing.
type charge struct {
	l    *limiter
	hold *hold // nil: free
	tx   txKey
	done bool
}

// admit admits cmd, or, when a bucket has no free token, holds none and
// answers 429 with Retry-After: the whole seconds until both have one again
// (at least 1).
func (l *limiter) admit(w http.ResponseWriter, cmd pinreset.Command, now time.Time) (*charge, error) {
	if l == nil {
		return nil, nil
	}
	c, wait, scope := l.reserve(l.txOf(cmd), cmd.ASPID, cmd.LoginID, now)
	if c != nil {
		return c, nil
	}
	if l.refused != nil {
		l.refused.WithLabelValues(scope).Inc()
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(max(1, math.Ceil(wait.Seconds())))))
	return nil, pinreset.Errorf(pinreset.CodeTooManyRequests, "")
}

// reserve admits the transaction tx for the member loginID of aspID: free
// when it was charged within the period or is being published, else with a
// hold on a free token of each bucket. When either has none it holds
// nothing and returns how long until both would have one and which was
// short ("member" or "asp").
func (l *limiter) reserve(tx txKey, aspID, loginID string, now time.Time) (*charge, time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	if l.admitted.has(tx, now) {
		return &charge{l: l, tx: tx}, 0, ""
	}
	if h := l.holds[tx]; h != nil {
		h.refs++
		return &charge{l: l, hold: h, tx: tx}, 0, ""
	}
	h := &hold{refs: 1}
	var wait time.Duration
	scope := ""
	if !l.asp.off() {
		h.asp = l.asps[aspID]
		if h.asp == nil {
			h.asp = newBucket(l.asp)
			l.asps[aspID] = h.asp
		}
		if d := h.asp.wait(now); d > wait {
			wait, scope = d, "asp"
		}
	}
	if !l.member.off() {
		k := keyOf(aspID, loginID)
		h.member = l.members[k]
		if h.member == nil {
			h.member = newBucket(l.member)
			l.members[k] = h.member
		}
		if d := h.member.wait(now); d > wait {
			wait, scope = d, "member"
		}
	}
	if wait > 0 {
		return nil, wait, scope
	}
	for _, b := range []*tokenBucket{h.asp, h.member} {
		if b != nil {
			b.held++
		}
	}
	l.holds[tx] = h
	return &charge{l: l, hold: h, tx: tx}, 0, ""
}

// commit takes the held tokens: the command was published. The transaction
// is remembered as charged for the period from now.
func (c *charge) commit(now time.Time) { c.end(true, now) }

// release lets the hold go unless the command was published (by this
// request or another sharing the hold): nothing is spent.
func (c *charge) release() { c.end(false, time.Time{}) }

// end settles this request's share of the hold, once: published, the
// tokens are taken; otherwise the last request sharing an unpublished hold
// lets it go.
func (c *charge) end(published bool, now time.Time) {
	if c == nil || c.done {
		return
	}
	c.done = true
	if c.hold == nil {
		return
	}
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	c.hold.refs--
	if c.hold.done || !published && c.hold.refs > 0 {
		return
	}
	l.settle(c.tx, c.hold)
	if !published {
		return
	}
	for _, b := range []*tokenBucket{c.hold.asp, c.hold.member} {
		if b != nil {
			b.lim.AllowN(now, 1) // there is one: it was held
		}
	}
	l.admitted.add(c.tx, now)
}

// settle ends the hold h of tx. Called with l.mu held.
func (l *limiter) settle(tx txKey, h *hold) {
	h.done = true
	delete(l.holds, tx)
	for _, b := range []*tokenBucket{h.asp, h.member} {
		if b != nil {
			b.held--
		}
	}
}

// sweep drops member buckets that have refilled (the same as none), every
// sweepEvery or when the bound is reached; past the bound it drops
// arbitrary ones down to 90% of it. A bucket with a token held for a
// command being published stays. Called with l.mu held.
func (l *limiter) sweep(now time.Time) {
	if len(l.members) < l.max && now.Sub(l.lastSweep) < sweepEvery {
		return
	}
	l.lastSweep = now
	for k, b := range l.members {
		if b.held == 0 && b.lim.TokensAt(now) >= float64(l.member.N) {
			delete(l.members, k)
		}
	}
	for k, b := range l.members {
		if len(l.members) < l.max*9/10 {
			break
		}
		if b.held == 0 {
			delete(l.members, k)
		}
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

// txKey names one transaction as admitted: the first 16 bytes of
// HMAC-SHA256 under limiter.txSecret of its correlation id and its content
// (pinreset.Command.Content: ASP, kind, member, PINs; what the worker calls
// the same request), so that memory holds no id, loginId or PIN.
type txKey [16]byte

func (l *limiter) txOf(cmd pinreset.Command) txKey {
	m := hmac.New(sha256.New, l.txSecret[:])
	for _, part := range [][]byte{[]byte(cmd.CorrelationID), cmd.Content()} {
		m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(part))))
		m.Write(part)
	}
	var k txKey
	copy(k[:], m.Sum(nil))
	return k
}

// admittedSet remembers transactions for ttl after they were charged, at
// most max of them: a map for the look-up and a queue in insertion order
// (so in expiry order) from which the expired, and past the bound the
// oldest, are dropped. Not safe for concurrent use (limiter.mu guards it).
type admittedSet struct {
	max   int
	ttl   time.Duration
	until map[txKey]int64 // expiry, Unix nanoseconds
	queue []admittedEntry
}

type admittedEntry struct {
	tx    txKey
	until int64
}

func newAdmittedSet(max int, ttl time.Duration) admittedSet {
	return admittedSet{max: max, ttl: ttl, until: map[txKey]int64{}}
}

func (a *admittedSet) has(tx txKey, now time.Time) bool {
	until, ok := a.until[tx]
	return ok && now.UnixNano() < until
}

func (a *admittedSet) add(tx txKey, now time.Time) {
	for len(a.queue) > 0 && (len(a.queue) >= a.max || a.queue[0].until <= now.UnixNano()) {
		e := a.queue[0]
		if a.until[e.tx] == e.until { // else added again since: that entry is later in the queue
			delete(a.until, e.tx)
		}
		a.queue = a.queue[1:]
	}
	e := admittedEntry{tx: tx, until: now.Add(a.ttl).UnixNano()}
	a.until[tx] = e.until
	a.queue = append(a.queue, e)
}
