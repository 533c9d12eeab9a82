package ingress

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

var limitT0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// TestLimiterBuckets: the rules of the per-member and per-ASP buckets.
func TestLimiterBuckets(t *testing.T) {
	t.Parallel()
	admitted := func(l *limiter, asp, login string, at time.Time) (bool, time.Duration, string) {
		d, scope := l.reserve(asp, login, at)
		return d <= 0, d, scope
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
		if err := l.admit(httptest.NewRecorder(), "A", "m@x", limitT0); err != nil {
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
