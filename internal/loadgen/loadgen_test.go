package loadgen_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/loadgen"
	"github.com/kmwallet/pinreset/internal/loadgen/loadgentest"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// fakeAPI stands in for the ingress and worker, in process, to test the
// generator alone and fast: it checks what the service checks and what the
// generator promises (signed requests, one request per member at a time,
// the member's current PIN, no content twice, no member locked), and
// answers every acceptEvery-th POST 202 first, then 202 once more on GET.
type fakeAPI struct {
	secret      []byte
	delay       time.Duration
	acceptEvery int

	mu         sync.Mutex
	pins       map[string]string // loginId -> PIN
	wrong      map[string]int    // wrong current PINs since the last success
	busy       map[string]bool
	seen       map[string]bool // contents that set a PIN
	pending    map[string]*fakePending
	posts      int
	violations []string
}

type fakePending struct {
	status     int
	code       string
	pendingFor int // GETs still answered 202
}

func newFakeAPI(t *testing.T, pattern string, members int, pin func(i int) string) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{secret: sandboxCredentials(t).SecretKey, pins: map[string]string{}, wrong: map[string]int{}, busy: map[string]bool{},
		seen: map[string]bool{}, pending: map[string]*fakePending{}}
	for i := range members {
		f.pins[fmt.Sprintf(pattern, i)] = pin(i)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) violate(format string, args ...any) {
	f.violations = append(f.violations, fmt.Sprintf(format, args...))
}

func (f *fakeAPI) answer(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%q,"message":"-"}`, code)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	hd, err := kmheader.Parse(r.Header, true)
	tok, terr := kmheader.ParseToken(hd.TranToken)
	f.mu.Lock()
	defer f.mu.Unlock()
	signed := kmheader.Request{Method: r.Method, Path: r.URL.EscapedPath(), Headers: hd, Body: body}
	if err != nil || terr != nil || !kmheader.Verify(tok, signed, f.secret) {
		f.violate("%s %s: bad headers or MAC: %v %v", r.Method, r.URL.Path, err, terr)
		f.answer(w, 401, "000_401")
		return
	}
	const path = "/api/v1/user/password/reset"
	if r.Method == http.MethodGet {
		p, ok := f.pending[strings.TrimPrefix(r.URL.Path, path+"/")]
		switch {
		case !ok || r.URL.Path != path+"/"+hd.CorrelationID || len(body) != 0:
			f.violate("GET %s with correlation id %s", r.URL.Path, hd.CorrelationID)
			f.answer(w, 404, "000_404")
		case p.pendingFor > 0:
			p.pendingFor--
			f.answer(w, 202, "000_202")
		default:
			f.answer(w, p.status, p.code)
		}
		return
	}
	req, err := pinreset.ParseRequest(body)
	if err == nil {
		err = pinreset.PINPolicy{Enabled: true}.Check(req.NewPIN)
	}
	if err != nil {
		f.violate("POST %s: %v", body, err)
		f.answer(w, 400, "000_002")
		return
	}
	status, code := f.decide(req)
	f.posts++
	if f.acceptEvery > 0 && f.posts%f.acceptEvery == 0 {
		f.pending[hd.CorrelationID] = &fakePending{status: status, code: code, pendingFor: 1}
		w.Header().Set("Location", path+"/"+hd.CorrelationID)
		status, code = 202, "000_202"
	}
	if f.delay > 0 {
		login := req.LoginID
		f.busy[login] = true
		f.mu.Unlock()
		time.Sleep(f.delay) // the fake service's latency, part of the load under test
		f.mu.Lock()
		delete(f.busy, login)
	}
	f.answer(w, status, code)
}

// decide applies the member rules; f.mu is held.
func (f *fakeAPI) decide(req pinreset.Request) (int, string) {
	pin, ok := f.pins[req.LoginID]
	if !ok {
		return 400, "001_006"
	}
	if f.busy[req.LoginID] {
		f.violate("%s: two requests at once", req.LoginID)
	}
	if !req.Reset && req.CurrentPIN != pin {
		if f.wrong[req.LoginID]++; f.wrong[req.LoginID] >= 5 {
			f.violate("%s: locked after %d wrong PINs", req.LoginID, f.wrong[req.LoginID])
		}
		return 400, "001_035"
	}
	if req.NewPIN == pin {
		f.violate("%s: new PIN is the current one", req.LoginID)
		return 400, "001_043"
	}
	content := fmt.Sprintf("%s|%v|%s|%s", req.LoginID, req.Reset, req.CurrentPIN, req.NewPIN)
	if f.seen[content] {
		f.violate("%s: content sent twice", req.LoginID)
		return 409, "001_409"
	}
	f.seen[content] = true
	f.pins[req.LoginID] = req.NewPIN
	f.wrong[req.LoginID] = 0
	return 200, "000_000"
}

// TestLoadGeneratorAgainstFakeServer checks the generator's own promises
// against an in-process stand-in of the service.
func TestLoadGeneratorAgainstFakeServer(t *testing.T) {
	creds := sandboxCredentials(t)
	run := func(t *testing.T, srv *httptest.Server, pattern string, members int, set func(o *loadgen.Options)) loadgen.Report {
		t.Helper()
		o := loadgen.DefaultOptions()
		o.URL, o.Members, o.MemberCount = srv.URL+"/api/v1/user/password/reset", pattern, members
		set(&o)
		rep, err := loadgen.Run(context.Background(), o, creds)
		if err != nil {
			t.Fatalf("loadgen.Run %+v: %v", o, err)
		}
		return rep
	}
	noViolations := func(t *testing.T, f *fakeAPI) {
		t.Helper()
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, v := range f.violations {
			if i == 10 {
				t.Errorf("... %d violations in all", len(f.violations))
				break
			}
			t.Error(v)
		}
	}

	t.Run("closed", func(t *testing.T) {
		f, srv := newFakeAPI(t, "m%04d@load.example", 100, func(int) string { return "240810" })
		f.acceptEvery, f.delay = 7, time.Millisecond
		rep := run(t, srv, "m%04d@load.example", 100, func(o *loadgen.Options) { o.Requests, o.Concurrency, o.FailShare = 2000, 50, 0.3 })
		noViolations(t, f)
		loadgentest.CheckReport(t, rep, 2000)
		if rep.Polled < 2000/7-1 {
			t.Errorf("polled %d, want every 7th", rep.Polled)
		}
		for _, code := range []string{"000_000", "001_035", "001_006"} {
			if rep.ByCode[code] == 0 {
				t.Errorf("no answer %s: %v", code, rep.ByCode)
			}
		}
	})

	t.Run("unknown initial PINs", func(t *testing.T) {
		f, srv := newFakeAPI(t, "u%04d@load.example", 30, func(i int) string { return fmt.Sprintf("%06d", 135790+i*2) })
		rep := run(t, srv, "u%04d@load.example", 30, func(o *loadgen.Options) { o.Requests, o.Concurrency, o.InitialPIN, o.Mix = 500, 8, "", 0.2 })
		noViolations(t, f)
		loadgentest.CheckReport(t, rep, 500)
	})

	t.Run("open drops instead of slowing down", func(t *testing.T) {
		f, srv := newFakeAPI(t, "o%04d@load.example", 100, func(int) string { return "240810" })
		f.delay = 50 * time.Millisecond
		rep := run(t, srv, "o%04d@load.example", 100, func(o *loadgen.Options) {
			o.Rate, o.Duration, o.MaxInflight, o.PlotFile = 1000, time.Second, 10, filepath.Join(t.TempDir(), "p.png")
		})
		noViolations(t, f)
		if rep.Requests+rep.Dropped != 1000 {
			t.Errorf("%d sent + %d dropped, want 1000 arrivals", rep.Requests, rep.Dropped)
		}
		// 10 in flight for 50 ms each: about 200 a second get through.
		if rep.Dropped < 500 || rep.DroppedNoMember != 0 {
			t.Errorf("dropped %d (%d for want of a member), want most of 1000", rep.Dropped, rep.DroppedNoMember)
		}
		if rep.DurationS > 1.5 {
			t.Errorf("the run took %.2f s: the slow server slowed the generator down", rep.DurationS)
		}
		if rep.P50ms < 50 {
			t.Errorf("p50 %.1f ms, less than the server's 50 ms", rep.P50ms)
		}
		loadgentest.CheckReport(t, rep, rep.Requests)
	})
}

// sandboxCredentials are the sandbox ASP's newest credentials, as pwctl
// load signs with them.
func sandboxCredentials(t *testing.T) kmheader.Credentials {
	t.Helper()
	b, err := os.ReadFile("../../deployments/sandbox/asps.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := asp.Parse(b)
	if err != nil || len(f.ASPs) == 0 {
		t.Fatalf("the sandbox's asps.json: %v", err)
	}
	a := &f.ASPs[0]
	c := a.Credentials[len(a.Credentials)-1]
	return kmheader.Credentials{ASPID: a.ID, AccessKey: c.AccessKey, SecretKey: []byte(c.SecretKey), Scheme: a.Preferred()}
}
