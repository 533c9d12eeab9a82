package ingress

import (
	"sync"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// outcomeCache remembers the final outcomes this instance has seen on
// password.results. Every instance reads every result, so any instance can
// answer a status GET for a transaction decided since it started, without a
// round trip through Kafka and the worker; older ones, or any after a
// restart, still get the round trip. Bounded by count and age. The first
// final outcome of a transaction stays until it ages out (see put).
type outcomeCache struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	byKey map[string]cachedOutcome
	order []string // insertion order, oldest first, for eviction
}

type cachedOutcome struct {
	res pinreset.Result
	at  time.Time
}

func newOutcomeCache(max int, ttl time.Duration) *outcomeCache {
	return &outcomeCache{max: max, ttl: ttl, byKey: make(map[string]cachedOutcome)}
}

// isOutcome tells a transaction's own outcome from answers about a request:
// a 409 belongs to a request that reused the id, a 404 to a status query.
func isOutcome(c pinreset.Code) bool {
	switch c {
	case pinreset.CodeCorrelationReused, pinreset.CodeNotFound,
		pinreset.CodeAccepted, pinreset.CodeUnavailable, pinreset.CodeInternal:
		return false
	}
	return true
}

// put caches r when it is a transaction's outcome and returns the outcome
// that stands for it. The first final outcome of a transaction is its only
// answer: a later one of another code (the 000_422 a worker publishes when
// it drops a dead-lettered copy of a command already decided, say) is not
// cached, and put returns the cached one with conflict true. Answers about
// one request (see isOutcome) are never cached and never conflict; the
// pending 000_202 is one of them, so a final outcome always follows it.
func (c *outcomeCache) put(r pinreset.Result, now time.Time) (kept pinreset.Result, conflict bool) {
	if r.ASPID == "" || !isOutcome(r.Code) {
		return r, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := r.ASPID + ":" + r.CorrelationID
	if o, ok := c.byKey[k]; ok && now.Sub(o.at) <= c.ttl {
		return o.res, o.res.Code != r.Code
	}
	if _, ok := c.byKey[k]; !ok {
		c.order = append(c.order, k)
	}
	c.byKey[k] = cachedOutcome{res: r, at: now}
	for len(c.order) > 0 && (len(c.order) > c.max || now.Sub(c.byKey[c.order[0]].at) > c.ttl) {
		delete(c.byKey, c.order[0])
		c.order = c.order[1:]
	}
	return r, false
}

func (c *outcomeCache) get(aspID, correlationID string, now time.Time) (pinreset.Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.byKey[aspID+":"+correlationID]
	if !ok || now.Sub(o.at) > c.ttl {
		return pinreset.Result{}, false
	}
	return o.res, true
}
