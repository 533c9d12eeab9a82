package ingress

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestFinalOutcomeStands: once a final outcome of a transaction is cached,
// a later result of another code for the same ASP and correlation id (the
// 000_422 the worker publishes when it drops a dead-lettered copy of a
// decided command) changes no answer: the status GET and a waiting retry
// keep the first; the conflict is logged and counted.
func TestFinalOutcomeStands(t *testing.T) {
	var n atomic.Int32
	// The command is decided 000_000; a later copy of it is answered 000_422.
	f := newFixture(t, func(pinreset.Command) pinreset.Code {
		if n.Add(1) == 1 {
			return pinreset.CodeSuccess
		}
		return pinreset.CodeRejected
	})
	f.srv.Measure(prometheus.NewRegistry())
	r := request(goodBody, nil)
	cid := r.Header.Get("X-KM-Correlation-Id")
	if w, b := f.do(t, r); w.Code != 200 || b.Code != pinreset.CodeSuccess {
		t.Fatalf("the command: %d %+v, want 200 000_000", w.Code, b)
	}
	f.srv.Deliver(pinreset.Result{CorrelationID: cid, ASPID: testASP, Code: pinreset.CodeRejected, Message: pinreset.CodeRejected.Message()})

	hd := kmheader.SignedStatusHeaders(credsOf(testASP, pinreset.SchemeKMV1), cid, time.Now(), "KST")
	if w, b := f.do(t, signedGet(ResetPath+"/"+cid, hd)); w.Code != 200 || b.Code != pinreset.CodeSuccess {
		t.Fatalf("status GET after a later 000_422: %d %+v, want the first final outcome, 200 000_000", w.Code, b)
	}
	retry := request(goodBody, func(h http.Header) { h.Set("X-KM-Correlation-Id", cid) })
	if w, b := f.do(t, retry); w.Code != 200 || b.Code != pinreset.CodeSuccess {
		t.Fatalf("a retry handed a 000_422: %d %+v, want the first final outcome, 200 000_000", w.Code, b)
	}
	var m dto.Metric
	if err := f.srv.conflicts.Write(&m); err != nil || m.GetCounter().GetValue() != 2 {
		got := m.GetCounter().GetValue()
		t.Errorf("pinreset_ingress_conflicting_results_total = %v, want 2", got)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"msg":"a later result contradicts the final outcome`) || !strings.Contains(logs, cid) ||
		!strings.Contains(logs, `"kept":"000_000"`) || !strings.Contains(logs, `"dropped":"000_422"`) {
		t.Errorf("the conflict is not logged with the correlation id and both codes: %s", logs)
	}
}

// TestOutcomeCacheKeepsTheFirstFinal: the rules of outcomeCache.put.
func TestOutcomeCacheKeepsTheFirstFinal(t *testing.T) {
	res := func(cid string, c pinreset.Code) pinreset.Result {
		return pinreset.Result{CorrelationID: cid, ASPID: testASP, Code: c, Message: c.Message()}
	}
	cases := []struct {
		name  string
		codes []pinreset.Code // delivered in order
		want  pinreset.Code   // "": nothing cached
	}{
		{"a final outcome is cached", []pinreset.Code{pinreset.CodeSuccess}, pinreset.CodeSuccess},
		{"pending (202) is not cached, and the final one after it is", []pinreset.Code{pinreset.CodeAccepted, pinreset.CodeSuccess}, pinreset.CodeSuccess},
		{"a request's own answer (409, 503) does not replace it", []pinreset.Code{pinreset.CodeSuccess, pinreset.CodeCorrelationReused, pinreset.CodeUnavailable}, pinreset.CodeSuccess},
		{"a later 000_422 does not replace 000_000", []pinreset.Code{pinreset.CodeSuccess, pinreset.CodeRejected}, pinreset.CodeSuccess},
		{"nor a later 000_000 a recorded 000_422", []pinreset.Code{pinreset.CodeRejected, pinreset.CodeSuccess}, pinreset.CodeRejected},
		{"the same outcome again is no conflict", []pinreset.Code{pinreset.CodeInvalidUserInfo, pinreset.CodeInvalidUserInfo}, pinreset.CodeInvalidUserInfo},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newOutcomeCache(10, time.Minute)
			for _, code := range tc.codes {
				c.put(res("cid", code), limitT0)
			}
			got, ok := c.get(testASP, "cid", limitT0)
			if got.Code != tc.want || ok != (tc.want != "") {
				t.Fatalf("cached %q (%v), want %q", got.Code, ok, tc.want)
			}
		})
	}
	t.Run("another ASP's transaction of the same id is its own", func(t *testing.T) {
		c := newOutcomeCache(10, time.Minute)
		c.put(res("cid", pinreset.CodeSuccess), limitT0)
		other := res("cid", pinreset.CodeUserNotFound)
		other.ASPID = "KMOTHERASP00001"
		c.put(other, limitT0)
		if got, _ := c.get(other.ASPID, "cid", limitT0); got.Code != pinreset.CodeUserNotFound {
			t.Fatalf("the other ASP's outcome: %q", got.Code)
		}
	})
	t.Run("past its age the entry is gone and a new outcome is cached", func(t *testing.T) {
		c := newOutcomeCache(10, time.Minute)
		c.put(res("cid", pinreset.CodeSuccess), limitT0)
		c.put(res("cid", pinreset.CodeExpired), limitT0.Add(2*time.Minute))
		if got, _ := c.get(testASP, "cid", limitT0.Add(2*time.Minute)); got.Code != pinreset.CodeExpired {
			t.Fatalf("after the entry aged out: %q, want the new outcome", got.Code)
		}
	})
}
