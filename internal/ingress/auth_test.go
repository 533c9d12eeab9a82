package ingress

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/secret"
)

// Two more ASPs: one registered for KMV2 only, one migrating (both).
const (
	kmv2ASP    = "KMTESTASPKMV201"
	kmv2Access = "Kmv2AccessKey000000000000000000000000001"
	kmv2Secret = "kmv2-asp-secret-key-0123456789abcdef"
	bothASP    = "KMTESTASPBOTH01"
	bothAccess = "BothAccessKey000000000000000000000000001"
	bothSecret = "both-asp-secret-key-0123456789abcdef"
)

func schemeFixture(t *testing.T, answer func(pinreset.Command) pinreset.Code) *fixture {
	t.Helper()
	return newFixtureOf(t, answer,
		asp.ASP{ID: kmv2ASP, Credentials: []asp.Credential{{AccessKey: kmv2Access, SecretKey: kmv2Secret}}, TokenSchemes: []pinreset.Scheme{pinreset.SchemeKMV2}},
		asp.ASP{ID: bothASP, Credentials: []asp.Credential{{AccessKey: bothAccess, SecretKey: bothSecret}}, TokenSchemes: []pinreset.Scheme{pinreset.SchemeKMV1, pinreset.SchemeKMV2}})
}

func credsOf(aspID string, scheme pinreset.Scheme) kmheader.Credentials {
	c := map[string]kmheader.Credentials{
		testASP: {ASPID: testASP, AccessKey: testAccess, SecretKey: []byte(testSecret)},
		kmv2ASP: {ASPID: kmv2ASP, AccessKey: kmv2Access, SecretKey: []byte(kmv2Secret)},
		bothASP: {ASPID: bothASP, AccessKey: bothAccess, SecretKey: []byte(bothSecret)},
	}[aspID]
	c.Scheme = scheme
	return c
}

// signedPost is a POST of body signed by c at `at`, then edited.
func signedPost(c kmheader.Credentials, body string, at time.Time, edit func(h http.Header)) *http.Request {
	r := httptest.NewRequest(http.MethodPost, ResetPath, strings.NewReader(body))
	kmheader.Set(r.Header, kmheader.SignedHeaders(c, []byte(body), "", at, "KST"))
	r.Header.Set("Content-Type", "application/json")
	if edit != nil {
		edit(r.Header)
	}
	return r
}

// signedGet is the status GET of path, with the headers of hd.
func signedGet(path string, hd kmheader.Headers) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	kmheader.Set(r.Header, hd)
	return r
}

func (f *fixture) published() []pinreset.Command {
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	return append([]pinreset.Command(nil), f.pub.cmds...)
}

func TestTokenSchemesPerASP(t *testing.T) {
	for _, tc := range []struct {
		rule   string
		aspID  string
		scheme pinreset.Scheme
		ok     bool
	}{
		{"a KMV2 ASP's KMV2 request is accepted", kmv2ASP, pinreset.SchemeKMV2, true},
		{"a KMV2 ASP's KMV1 request is refused: its replays would be open again", kmv2ASP, pinreset.SchemeKMV1, false},
		{"a default (KMV1) ASP's KMV1 request is accepted", testASP, pinreset.SchemeKMV1, true},
		{"a default (KMV1) ASP's KMV2 request is refused until it is registered for KMV2", testASP, pinreset.SchemeKMV2, false},
		{"a migrating ASP's KMV1 request is accepted", bothASP, pinreset.SchemeKMV1, true},
		{"a migrating ASP's KMV2 request is accepted", bothASP, pinreset.SchemeKMV2, true},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			f := schemeFixture(t, always(pinreset.CodeSuccess))
			f.srv.Measure(prometheus.NewRegistry())
			w, b := f.do(t, signedPost(credsOf(tc.aspID, tc.scheme), goodBody, time.Now(), nil))
			cmds := f.published()
			var m dto.Metric
			_ = f.srv.metrics.Authenticated.WithLabelValues(tc.aspID, string(tc.scheme)).Write(&m)
			if n := m.GetCounter().GetValue(); n != map[bool]float64{true: 1, false: 0}[tc.ok] {
				t.Errorf("pinreset_authenticated_total{asp=%s,scheme=%s} = %v", tc.aspID, tc.scheme, n)
			}
			if !tc.ok {
				if w.Code != 401 || b.Code != pinreset.CodeUnauthorized || len(cmds) != 0 {
					t.Fatalf("got %d %+v with %d commands published, want 401 000_401 and none", w.Code, b, len(cmds))
				}
				return
			}
			if w.Code != 200 || len(cmds) != 1 {
				t.Fatalf("got %d %+v with %d commands published, want 200 and one", w.Code, b, len(cmds))
			}
			if got := cmds[0].Auth; (got == pinreset.SchemeKMV2) != (tc.scheme == pinreset.SchemeKMV2) {
				t.Fatalf("the command says auth %q, want %q: the worker's replay rule depends on it", got, tc.scheme)
			}
		})
	}
}

// TestKMV2RefusesTampering: every part a KMV2 token binds, changed after
// signing while the request stays otherwise valid and fresh, is a 401.
func TestKMV2RefusesTampering(t *testing.T) {
	c := credsOf(kmv2ASP, pinreset.SchemeKMV2)
	now := time.Now()
	// An instant with whole milliseconds, a second before now: the token
	// time can be respelt in centiseconds or moved without leaving the window.
	at := now.Truncate(10 * time.Millisecond).Add(-time.Second)
	kst, _ := kmheader.Zone("KST")
	retoken := func(h http.Header, tokenTime string) {
		tok, _ := kmheader.ParseToken(h.Get(kmheader.HeaderTranToken))
		h.Set(kmheader.HeaderTranToken, strings.Replace(h.Get(kmheader.HeaderTranToken), tok.Time, tokenTime, 1))
	}
	for _, tc := range []struct {
		field string
		req   func() *http.Request
	}{
		{"correlation id", func() *http.Request {
			return signedPost(c, goodBody, at, func(h http.Header) {
				h.Set(kmheader.HeaderCorrelationID, kmheader.NewCorrelationID(now, nil))
			})
		}},
		{"tran time", func() *http.Request {
			return signedPost(c, goodBody, at, func(h http.Header) {
				h.Set(kmheader.HeaderTranTime, at.Add(time.Second).In(kst).Format("20060102150405"))
			})
		}},
		{"token time", func() *http.Request {
			return signedPost(c, goodBody, at, func(h http.Header) { retoken(h, kmheader.TokenTime(at.Add(time.Second), kst)) })
		}},
		{"token time, the same instant in centiseconds", func() *http.Request {
			return signedPost(c, goodBody, at, func(h http.Header) { retoken(h, kmheader.TokenTime(at, kst)[:16]) })
		}},
		{"time zone (JST is KST's offset, so the times stay fresh)", func() *http.Request {
			return signedPost(c, goodBody, at, func(h http.Header) { h.Set(kmheader.HeaderTimeZone, "JST") })
		}},
		{"body", func() *http.Request {
			signed := signedPost(c, goodBody, at, nil)
			r := httptest.NewRequest(http.MethodPost, ResetPath, strings.NewReader(strings.Replace(goodBody, "581379", "581370", 1)))
			r.Header = signed.Header
			return r
		}},
		{"ASP id (the same secret registered under another id)", func() *http.Request {
			twin := c
			twin.ASPID = "KMTESTASPTWIN01"
			r := signedPost(twin, goodBody, at, nil)
			r.Header.Set(kmheader.HeaderASPID, kmv2ASP)
			return r
		}},
		{"method (signed as a GET of the same path)", func() *http.Request {
			r := signedPost(c, goodBody, at, nil)
			hd := kmheader.SignRequest(c, http.MethodGet, ResetPath, []byte(goodBody), r.Header.Get(kmheader.HeaderCorrelationID), at, "KST")
			kmheader.Set(r.Header, hd)
			return r
		}},
		{"path (signed for another path)", func() *http.Request {
			r := signedPost(c, goodBody, at, nil)
			hd := kmheader.SignRequest(c, http.MethodPost, "/api/v2/user/password/reset", []byte(goodBody), r.Header.Get(kmheader.HeaderCorrelationID), at, "KST")
			kmheader.Set(r.Header, hd)
			return r
		}},
	} {
		t.Run(tc.field+" changed is refused", func(t *testing.T) {
			f := schemeFixture(t, always(pinreset.CodeSuccess))
			if w, b := f.do(t, signedPost(c, goodBody, at, nil)); w.Code != 200 {
				t.Fatalf("the untampered request: %d %+v, want 200", w.Code, b)
			}
			w, b := f.do(t, tc.req())
			if w.Code != 401 || b.Code != pinreset.CodeUnauthorized {
				t.Fatalf("got %d %+v, want 401 000_401", w.Code, b)
			}
			if n := len(f.published()); n != 1 {
				t.Fatalf("%d commands published, want only the untampered one", n)
			}
		})
	}
	t.Run("a KMV2 request replayed outside the window is refused", func(t *testing.T) {
		f := schemeFixture(t, always(pinreset.CodeSuccess))
		old := signedPost(c, goodBody, now.Add(-6*time.Minute), nil) // signed then, sent now
		if w, b := f.do(t, old); w.Code != 401 || b.Code != pinreset.CodeUnauthorized {
			t.Fatalf("got %d %+v, want 401 000_401", w.Code, b)
		}
	})
	t.Run("a KMV2 request replayed within the window is the same transaction", func(t *testing.T) {
		f := schemeFixture(t, always(pinreset.CodeSuccess))
		first := signedPost(c, goodBody, at, nil)
		again := signedPost(c, goodBody, at, nil)
		again.Header = first.Header.Clone()
		f.do(t, first)
		f.do(t, again)
		cmds := f.published()
		if len(cmds) != 2 || cmds[0].CorrelationID != cmds[1].CorrelationID {
			t.Fatalf("commands %v: want both under the one signed correlation id, which the worker answers once", cmds)
		}
	})
}

// TestStatusGETIsBoundToItsTransaction: the token of a status GET signs its
// correlation id (KMV1: the path; KMV2: the canonical request), so the
// headers of one GET do not open another transaction.
func TestStatusGETIsBoundToItsTransaction(t *testing.T) {
	for _, c := range []kmheader.Credentials{credsOf(testASP, pinreset.SchemeKMV1), credsOf(kmv2ASP, pinreset.SchemeKMV2)} {
		t.Run(string(c.Scheme), func(t *testing.T) {
			f := schemeFixture(t, always(pinreset.CodeSuccess))
			mine := kmheader.NewCorrelationID(time.Now(), nil)
			other := kmheader.NewCorrelationID(time.Now().Add(time.Second), nil)
			hd := kmheader.SignedStatusHeaders(c, mine, time.Now(), "UTC")

			if w, b := f.do(t, signedGet(ResetPath+"/"+mine, hd)); w.Code != 200 || b.Code != pinreset.CodeSuccess {
				t.Fatalf("the signed GET of its own transaction: %d %+v, want its outcome 200 000_000", w.Code, b)
			}
			moved := hd
			moved.CorrelationID = other
			if w, b := f.do(t, signedGet(ResetPath+"/"+other, moved)); w.Code != 401 || b.Code != pinreset.CodeUnauthorized {
				t.Fatalf("its headers for another correlation id: %d %+v, want 401 000_401", w.Code, b)
			}
			if w, b := f.do(t, signedGet(ResetPath+"/"+other, hd)); w.Code != 400 || b.Code != pinreset.CodeInvalidInput || b.Message != "Invalid input value. correlationId" {
				t.Fatalf("a path naming another id than the header: %d %+v, want 400 000_002 correlationId", w.Code, b)
			}
			if n := len(f.published()); n != 1 {
				t.Fatalf("%d status queries published, want only the first", n)
			}
		})
	}
	t.Run("KMV1 over the empty body, the same for every GET, is refused", func(t *testing.T) {
		f := schemeFixture(t, always(pinreset.CodeSuccess))
		cid := kmheader.NewCorrelationID(time.Now(), nil)
		hd := kmheader.SignedStatusHeaders(credsOf(testASP, pinreset.SchemeKMV1), cid, time.Now(), "UTC")
		hd.TranToken = secret.String(kmheader.Sign([]byte(testSecret), nil, time.Now(), time.UTC))
		if w, b := f.do(t, signedGet(ResetPath+"/"+cid, hd)); w.Code != 401 || b.Code != pinreset.CodeUnauthorized {
			t.Fatalf("got %d %+v, want 401 000_401", w.Code, b)
		}
	})
}
