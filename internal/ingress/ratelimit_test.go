package ingress

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

var limitT0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// TestLimiterBuckets: the rules of the per-member and per-ASP buckets.
func TestLimiterBuckets(t *testing.T) {
	t.Parallel()
	// admitted asks for a new transaction's admission and, admitted,
	// publishes it at once.
	admitted := func(l *limiter, asp, login string, at time.Time) (bool, time.Duration, string) {
		c, d, scope := l.reserve(newTx(), asp, login, at)
		c.commit(at)
		return c != nil, d, scope
	}
	t.Run("a member's burst is admitted, the next command refused until a token refills", func(t *testing.T) {
		l := newLimiter(Rate{N: 3, Per: 30 * time.Second}, Rate{})
		for i := range 3 {
			if ok, _, _ := admitted(l, "A", "m@x", limitT0); !ok {
				t.Fatalf("command %d of a burst of 3 refused", i+1)
			}
		}
		ok, wait, scope := admitted(l, "A", "m@x", limitT0)
		if ok || scope != "member" || wait != 10*time.Second {
			t.Fatalf("4th: admitted %v wait %v scope %q; want refused, 10s (one token of 3/30s), member", ok, wait, scope)
		}
		if ok, _, _ := admitted(l, "A", "m@x", limitT0.Add(10*time.Second)); !ok {
			t.Fatal("refused after a token refilled")
		}
	})
	t.Run("a refusal takes no token", func(t *testing.T) {
		l := newLimiter(Rate{N: 1, Per: 10 * time.Second}, Rate{})
		admitted(l, "A", "m@x", limitT0)
		for range 5 {
			admitted(l, "A", "m@x", limitT0.Add(time.Second)) // refused
		}
		if ok, _, _ := admitted(l, "A", "m@x", limitT0.Add(10*time.Second)); !ok {
			t.Fatal("refusals used up tokens: refused after the refill time")
		}
	})
	t.Run("members have their own buckets, also across ASPs", func(t *testing.T) {
		l := newLimiter(Rate{N: 1, Per: time.Minute}, Rate{})
		for _, k := range [][2]string{{"A", "m@x"}, {"A", "n@x"}, {"B", "m@x"}} {
			if ok, _, _ := admitted(l, k[0], k[1], limitT0); !ok {
				t.Errorf("%v refused on its first command", k)
			}
		}
	})
	t.Run("an ASP's bucket holds across its members", func(t *testing.T) {
		l := newLimiter(Rate{N: 5, Per: time.Minute}, Rate{N: 2, Per: time.Second})
		admitted(l, "A", "m1@x", limitT0)
		admitted(l, "A", "m2@x", limitT0)
		ok, wait, scope := admitted(l, "A", "m3@x", limitT0)
		if ok || scope != "asp" || wait != 500*time.Millisecond {
			t.Fatalf("3rd member of the ASP: admitted %v wait %v scope %q; want refused, 500ms, asp", ok, wait, scope)
		}
		if ok, _, _ := admitted(l, "B", "m3@x", limitT0); !ok {
			t.Error("another ASP refused")
		}
	})
	t.Run("a command refused by the ASP's bucket takes no token of the member's", func(t *testing.T) {
		l := newLimiter(Rate{N: 1, Per: time.Hour}, Rate{N: 1, Per: time.Second})
		admitted(l, "A", "other@x", limitT0)
		if ok, _, _ := admitted(l, "A", "m@x", limitT0); ok {
			t.Fatal("the ASP's bucket was empty, yet admitted")
		}
		if ok, _, _ := admitted(l, "A", "m@x", limitT0.Add(time.Second)); !ok {
			t.Fatal("the member's only token was taken by a refused command")
		}
	})
	t.Run("both rates off is no limiter at all", func(t *testing.T) {
		if l := newLimiter(Rate{}, Rate{}); l != nil {
			t.Fatalf("newLimiter(off, off) = %v, want nil", l)
		}
		var l *limiter
		if _, err := l.admit(httptest.NewRecorder(), pinreset.Command{ASPID: "A", LoginID: "m@x"}, limitT0); err != nil {
			t.Fatalf("nil limiter refused: %v", err)
		}
	})
	t.Run("the member buckets stay bounded, full ones swept first", func(t *testing.T) {
		l := newLimiter(Rate{N: 2, Per: time.Minute}, Rate{})
		l.max = 100
		for i := range 1000 {
			admitted(l, "A", fmt.Sprintf("m%d@x", i), limitT0.Add(time.Duration(i)*time.Millisecond))
			if len(l.members) > l.max {
				t.Fatalf("%d buckets after %d members, bound %d", len(l.members), i+1, l.max)
			}
		}
		// An hour later every bucket has refilled: the next sweep drops all.
		admitted(l, "A", "late@x", limitT0.Add(time.Hour))
		if len(l.members) != 1 {
			t.Fatalf("%d buckets after every one refilled, want 1 (the new one)", len(l.members))
		}
	})
}

// TestTooManyRequests: through the HTTP handler, a burst against one member
// is refused with 429 000_429 and Retry-After, before anything is published,
// and counted by bucket.
func TestTooManyRequests(t *testing.T) {
	f := newFixture(t, always(pinreset.CodeInvalidUserInfo), func(o *Options) {
		o.MemberRate = Rate{N: 2, Per: time.Minute}
		o.ASPRate = Rate{N: 100, Per: time.Second}
	})
	reg := prometheus.NewRegistry()
	f.srv.Measure(reg)
	for i := range 2 {
		if w, b := f.do(t, request(goodBody, nil)); w.Code != 400 || b.Code != pinreset.CodeInvalidUserInfo {
			t.Fatalf("command %d: %d %+v, want it decided (400 001_035)", i+1, w.Code, b)
		}
	}
	w, b := f.do(t, request(goodBody, nil))
	if w.Code != 429 || b.Code != pinreset.CodeTooManyRequests || b.Message != pinreset.CodeTooManyRequests.Message() {
		t.Fatalf("third command: %d %+v, want 429 000_429", w.Code, b)
	}
	if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 30 {
		t.Errorf("Retry-After %q, want 1 to 30 seconds (one token of 2/min: 30)", w.Header().Get("Retry-After"))
	}
	f.pub.mu.Lock()
	published := len(f.pub.cmds)
	f.pub.mu.Unlock()
	if published != 2 {
		t.Errorf("%d commands published, want 2: a refused one must not reach Kafka", published)
	}
	other := `{"loginId":"other@example.com","currentPassword":"246810","newPassword":"581379"}`
	if w, b := f.do(t, request(other, nil)); w.Code != 400 {
		t.Errorf("another member: %d %+v, want it admitted", w.Code, b)
	}
	var m dto.Metric
	c, err := f.srv.limits.refused.GetMetricWithLabelValues("member")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Errorf("pinreset_ingress_limited_total{scope=member} = %v, want 1", m.GetCounter().GetValue())
	}
}

// newTx is a transaction of its own.
func newTx() txKey {
	var k txKey
	_, _ = rand.Read(k[:])
	return k
}

// TestLimiterCharges: only a new command that was published costs a token.
func TestLimiterCharges(t *testing.T) {
	t.Parallel()
	reserve := func(l *limiter, tx txKey, at time.Time) *charge {
		c, _, _ := l.reserve(tx, "A", "m@x", at)
		return c
	}
	publish := func(l *limiter, tx txKey, at time.Time) bool {
		c := reserve(l, tx, at)
		c.commit(at)
		c.release()
		return c != nil
	}
	t.Run("retries of a transaction charged within the period are free", func(t *testing.T) {
		l := newLimiter(Rate{N: 2, Per: time.Minute}, Rate{N: 1000, Per: 10 * time.Second})
		a := newTx()
		for i := range 31 {
			if !publish(l, a, limitT0.Add(time.Duration(i)*time.Second)) {
				t.Fatalf("try %d of one transaction refused", i+1)
			}
		}
		if !publish(l, newTx(), limitT0.Add(31*time.Second)) {
			t.Fatal("the member's next new command refused after retries")
		}
	})
	t.Run("past the period a retry is charged as a new command", func(t *testing.T) {
		l := newLimiter(Rate{N: 2, Per: time.Minute}, Rate{})
		a := newTx()
		publish(l, a, limitT0)
		publish(l, newTx(), limitT0)
		later := limitT0.Add(61 * time.Second) // both tokens back
		publish(l, a, later)
		publish(l, newTx(), later)
		if publish(l, newTx(), later) {
			t.Fatal("the late retry took no token")
		}
	})
	t.Run("a held token is not free; released, it is", func(t *testing.T) {
		l := newLimiter(Rate{N: 1, Per: 10 * time.Second}, Rate{})
		held := reserve(l, newTx(), limitT0)
		c, wait, scope := l.reserve(newTx(), "A", "m@x", limitT0)
		if c != nil || wait != 10*time.Second || scope != "member" {
			t.Fatalf("while the only token is held: %v %v %q, want refused, 10s, member", c, wait, scope)
		}
		held.release()
		if !publish(l, newTx(), limitT0) {
			t.Fatal("refused after the hold was released")
		}
	})
	t.Run("identical requests share one hold, charged once if any is published", func(t *testing.T) {
		for _, order := range []string{"commit first", "release first"} {
			l := newLimiter(Rate{N: 2, Per: time.Hour}, Rate{})
			a := newTx()
			c1, c2 := reserve(l, a, limitT0), reserve(l, a, limitT0)
			if c1 == nil || c2 == nil {
				t.Fatalf("%s: identical requests refused", order)
			}
			if order == "commit first" {
				c1.commit(limitT0)
				c2.release()
			} else {
				c1.release()
				c2.commit(limitT0)
			}
			if !publish(l, newTx(), limitT0) || publish(l, newTx(), limitT0) {
				t.Fatalf("%s: want one token left of 2", order)
			}
		}
	})
	t.Run("identical requests none of which is published spend nothing", func(t *testing.T) {
		l := newLimiter(Rate{N: 1, Per: time.Hour}, Rate{})
		a := newTx()
		c1, c2 := reserve(l, a, limitT0), reserve(l, a, limitT0)
		c1.release()
		c2.release()
		if !publish(l, newTx(), limitT0) {
			t.Fatal("the token was spent")
		}
		if len(l.holds) != 0 {
			t.Fatalf("%d holds left", len(l.holds))
		}
	})
	t.Run("the admitted transactions stay bounded, expired ones dropped", func(t *testing.T) {
		l := newLimiter(Rate{N: 1_000_000, Per: time.Minute}, Rate{})
		l.admitted.max = 100
		for i := range 1000 {
			publish(l, newTx(), limitT0.Add(time.Duration(i)*time.Millisecond))
			if len(l.admitted.until) > 100 || len(l.admitted.queue) > 100 {
				t.Fatalf("%d admitted (%d queued) after %d, bound 100", len(l.admitted.until), len(l.admitted.queue), i+1)
			}
		}
		publish(l, newTx(), limitT0.Add(time.Hour))
		if len(l.admitted.until) != 1 || len(l.admitted.queue) != 1 {
			t.Fatalf("%d admitted an hour later, want 1 (the new one)", len(l.admitted.until))
		}
	})
}

// TestLimiterConcurrent is meant for go test -race: in each round 16
// requests are admitted at once (retries of one transaction and distinct
// commands), then some are published and the rest given back; no more
// tokens are spent than the bucket holds.
func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	const n = 3
	l := newLimiter(Rate{N: n, Per: time.Hour}, Rate{})
	a := newTx()
	var published, aPublished atomic.Int32
	for round := range 20 {
		var reserved, wg sync.WaitGroup
		reserved.Add(16)
		for g := range 16 {
			wg.Go(func() {
				tx, isA := newTx(), g%4 == 0
				if isA {
					tx = a
				}
				c, _, _ := l.reserve(tx, "A", "m@x", limitT0)
				reserved.Done()
				reserved.Wait() // every request holds what it was given
				if c == nil {
					return
				}
				if isA || (g+round)%3 == 0 {
					c.commit(limitT0)
					if isA {
						aPublished.Store(1)
					} else {
						published.Add(1)
					}
				}
				c.release()
			})
		}
		wg.Wait()
	}
	if spent := published.Load() + aPublished.Load(); spent > n || published.Load() == 0 {
		t.Fatalf("%d commands published on a bucket of %d", spent, n)
	}
	if len(l.holds) != 0 {
		t.Fatalf("%d holds left", len(l.holds))
	}
	for _, b := range l.members {
		if b.held != 0 {
			t.Fatalf("%d tokens still held", b.held)
		}
	}
}

// TestRetryStormIsFree: through the handler, with the default buckets, a
// client retrying one transaction (same correlation id and body) is never
// refused, gets the same outcome each time, and the member's next new
// command is admitted; identical retries racing are charged once.
func TestRetryStormIsFree(t *testing.T) {
	defaults := func(o *Options) {
		o.MemberRate = Rate{N: config.DefaultMemberRate.N, Per: config.DefaultMemberRate.Per}
		o.ASPRate = Rate{N: config.DefaultASPRate.N, Per: config.DefaultASPRate.Per}
	}
	t.Run("30 retries of one transaction", func(t *testing.T) {
		f := newFixture(t, always(pinreset.CodeSuccess), defaults)
		cid := kmheader.NewCorrelationID(time.Now(), nil)
		for i := range 31 {
			if w, b := f.do(t, retryOf(goodBody, cid)); w.Code != 200 || b.Code != pinreset.CodeSuccess {
				t.Fatalf("try %d: %d %+v, want 200 000_000 each time", i+1, w.Code, b)
			}
		}
		if w, b := f.do(t, request(goodBody, nil)); w.Code != 200 {
			t.Fatalf("the member's next new command: %d %+v, want it admitted", w.Code, b)
		}
	})
	t.Run("identical retries racing are charged once", func(t *testing.T) {
		f := newFixture(t, always(pinreset.CodeSuccess), func(o *Options) { o.MemberRate = Rate{N: 2, Per: time.Hour} })
		cid := kmheader.NewCorrelationID(time.Now(), nil)
		codes := make(chan int, 10)
		var wg sync.WaitGroup
		for range cap(codes) {
			wg.Go(func() {
				w := httptest.NewRecorder()
				f.h.ServeHTTP(w, retryOf(goodBody, cid))
				codes <- w.Code
			})
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != 200 {
				t.Fatalf("a racing retry answered %d, want 200", c)
			}
		}
		if w, b := f.do(t, request(goodBody, nil)); w.Code != 200 {
			t.Fatalf("the next new command: %d %+v, want the bucket's second token", w.Code, b)
		}
		if w, _ := f.do(t, request(goodBody, nil)); w.Code != 429 {
			t.Fatalf("the one after: %d, want 429: the racing retries were charged once", w.Code)
		}
	})
}

// TestRefusedCostsNothing: a request the ingress refuses after admission
// (shed for the backlog, MaxInFlight) or cannot publish takes no token:
// after three of them a bucket of two still admits two new commands.
func TestRefusedCostsNothing(t *testing.T) {
	cases := []struct {
		name     string
		overload func(f *fixture) (undo func())
	}{
		{"publish failures", func(f *fixture) func() {
			f.pub.err = errors.New("broker unreachable")
			return func() { f.pub.err = nil }
		}},
		{"shed for the backlog", func(f *fixture) func() {
			// 8 results in the last second: 8/s answers 16 waiting within 2 s; 16 wait.
			for range minEvidence {
				f.srv.admission.completed(time.Now())
			}
			f.srv.admission.floor = 0
			for range 16 {
				f.srv.slots <- struct{}{}
			}
			return func() {
				for range 16 {
					<-f.srv.slots
				}
			}
		}},
		{"MaxInFlight", func(f *fixture) func() {
			f.srv.slots = make(chan struct{}, 1)
			f.srv.slots <- struct{}{}
			return func() { <-f.srv.slots }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, always(pinreset.CodeSuccess), func(o *Options) { o.MemberRate = Rate{N: 2, Per: time.Hour} })
			undo := tc.overload(f)
			for i := range 3 {
				if w, b := f.do(t, request(goodBody, nil)); w.Code != 503 || b.Code != pinreset.CodeUnavailable {
					t.Fatalf("refused command %d: %d %+v, want 503 000_503", i+1, w.Code, b)
				}
			}
			undo()
			for i := range 2 {
				if w, b := f.do(t, request(goodBody, nil)); w.Code != 200 {
					t.Fatalf("new command %d after 3 refused: %d %+v, want it admitted", i+1, w.Code, b)
				}
			}
			if w, _ := f.do(t, request(goodBody, nil)); w.Code != 429 {
				t.Fatalf("the third new command: %d, want 429 (a bucket of 2)", w.Code)
			}
		})
	}
}

// TestDistinctBurstStillRefused: retries go free and refused commands are
// given back, yet a concurrent burst of distinct commands for one member,
// some of whose publishes fail, gets no more published than the bucket
// holds; the rest are refused with 429 000_429 and Retry-After and are not
// published.
func TestDistinctBurstStillRefused(t *testing.T) {
	f := newFixture(t, always(pinreset.CodeSuccess), func(o *Options) { o.MemberRate = Rate{N: 3, Per: time.Minute} })
	cid := kmheader.NewCorrelationID(time.Now(), nil)
	for i := range 5 {
		if w, b := f.do(t, retryOf(goodBody, cid)); w.Code != 200 {
			t.Fatalf("try %d of one transaction: %d %+v, want 200", i+1, w.Code, b)
		}
	}
	// Commands of an odd newPassword digit fail to publish. Every publish
	// takes a while, so that the burst's admissions overlap.
	failing := func(newPIN string) bool { return (newPIN[5]-'0')%2 == 1 }
	f.pub.fail = func(c pinreset.Command) bool {
		time.Sleep(20 * time.Millisecond) // a slow publish: the overlap under test
		return failing(c.NewPIN)
	}
	type answer struct {
		code, retryAfter string
		status           int
		newPIN           string
	}
	answers := make(chan answer, 10)
	var wg sync.WaitGroup
	for i := range cap(answers) {
		newPIN := fmt.Sprintf("58137%d", i)
		wg.Go(func() {
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, request(`{"loginId":"member@example.com","currentPassword":"246810","newPassword":"`+newPIN+`"}`, nil))
			var b Body
			_ = json.Unmarshal(w.Body.Bytes(), &b)
			answers <- answer{string(b.Code), w.Header().Get("Retry-After"), w.Code, newPIN}
		})
	}
	wg.Wait()
	close(answers)
	ok, refused := map[string]bool{}, 0
	for a := range answers {
		switch {
		case a.status == 200:
			ok[a.newPIN] = true
		case a.status == 503 && failing(a.newPIN):
		case a.status == 429 && a.code == string(pinreset.CodeTooManyRequests):
			if ra, err := strconv.Atoi(a.retryAfter); err != nil || ra < 1 || ra > 20 {
				t.Errorf("429 with Retry-After %q, want 1 to 20 seconds (one token of 3/min)", a.retryAfter)
			}
			refused++
		default:
			t.Errorf("newPassword %s: %d %s, want 200, 429 000_429, or 503 for a failed publish", a.newPIN, a.status, a.code)
		}
	}
	if len(ok) > 2 || refused == 0 {
		t.Fatalf("%d of the burst admitted and published, %d refused; want at most 2 (3 less the retried transaction's)", len(ok), refused)
	}
	for _, c := range f.published() {
		if c.CorrelationID != cid && !ok[c.NewPIN] {
			t.Errorf("newPassword %s published, yet not answered 200", c.NewPIN)
		}
	}
}

// retryOf is a request of the transaction correlationID with body, signed now.
func retryOf(body, correlationID string) *http.Request {
	return request(body, func(h http.Header) { h.Set("X-KM-Correlation-Id", correlationID) })
}
