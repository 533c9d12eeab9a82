package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestLoadAgainstProcesses runs pwctl members seed and pwctl load against
// the real service: the embedded broker and database (cmd/sandbox
// -infra-only), one ingress and one worker, each its own process built from
// this tree, as cmd/sandbox's process tests run them.
func TestLoadAgainstProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and starts the service and its infrastructure")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	bin := buildServiceBinaries(t)
	t.Logf("built the binaries in %v", time.Since(began).Round(time.Millisecond))

	sandboxDir, err := filepath.Abs("../../deployments/sandbox")
	if err != nil {
		t.Fatal(err)
	}
	env, err := readKeyValues(filepath.Join(sandboxDir, "sandbox.env"))
	if err != nil {
		t.Fatal(err)
	}
	kafkaAddr, mongoAddr := pickAddr(t), pickAddr(t)
	infra := startServiceProcess(t, bin, "sandbox", nil, "-infra-only", "-data-dir", t.TempDir(),
		"-kafka-addr", kafkaAddr, "-mongo-addr", mongoAddr, "-sandbox-dir", sandboxDir)
	infra.waitFor(t, "sandbox: infrastructure ready")
	mongoURI := "mongodb://" + mongoAddr + "/"
	env["PINRESET_KAFKA_BROKERS"] = kafkaAddr
	env["PINRESET_MONGO_URI"] = mongoURI
	env["PINRESET_ASP_FILE"] = filepath.Join(sandboxDir, "asps.json")
	// Cheap hashing, for the worker and for the seeded hash alike: this
	// measures the pipeline, not argon2.
	env["PINRESET_ARGON2_MEMORY_KIB"] = "64"
	env["PINRESET_ARGON2_TIME"] = "1"
	env["PINRESET_KAFKA_SESSION_TIMEOUT"] = "3s"
	env["PINRESET_ADMIN_ADDR"] = "127.0.0.1:0"
	env["PINRESET_LOG_LEVEL"] = "warn"
	getenv := func(k string) string { return env[k] }
	t.Logf("infrastructure up after %v", time.Since(began).Round(time.Millisecond))

	// Each run gets members of its own: the generator assumes every member
	// starts with -initial-pin. Few members: the sandbox database (FerretDB
	// on SQLite) finds a member by loginId with a scan of the collection,
	// so every member seeded slows every request down. The closed run needs
	// more members than workers; the open one one per arrival, since the
	// server falls behind 50/s here and all of them may be in flight.
	counts := map[string]int{"warm%06d@sandbox.example": 10, "load%06d@sandbox.example": 40, "open%06d@sandbox.example": 150}
	for _, pattern := range []string{"warm%06d@sandbox.example", "load%06d@sandbox.example", "open%06d@sandbox.example"} {
		var out, errb bytes.Buffer
		err := membersCmdEnv(ctx, []string{"seed", "-count", fmt.Sprint(counts[pattern]), "-pin", "240810", "-pattern", pattern,
			"-asp", "KMSANDBOXASP001", "-mongo-uri", mongoURI, "-db", "pinreset", "-batch", "64"}, getenv, &out, &errb)
		if err != nil {
			t.Fatalf("members seed: %v\n%s", err, errb.String())
		}
		if !strings.Contains(out.String(), fmt.Sprintf("(%d new, 0 already there)", counts[pattern])) {
			t.Fatalf("members seed printed %q", out.String())
		}
	}
	// Again: idempotent, nothing new.
	var out, errb bytes.Buffer
	if err := membersCmdEnv(ctx, []string{"seed", "-count", "40", "-pattern", "load%06d@sandbox.example",
		"-mongo-uri", mongoURI}, getenv, &out, &errb); err != nil || !strings.Contains(out.String(), "(0 new, 40 already there)") {
		t.Fatalf("members seed again: %v %q %s", err, out.String(), errb.String())
	}

	apiURL := startIngressAt(t, bin, env) + "/api/v1/user/password/reset"
	startServiceProcess(t, bin, "worker", env)
	aspFile := env["PINRESET_ASP_FILE"]
	load := func(pattern string, args ...string) loadReport {
		t.Helper()
		var out, errb bytes.Buffer
		args = append([]string{"-url", apiURL, "-asp-file", aspFile, "-members", pattern, "-member-count", fmt.Sprint(counts[pattern]),
			"-initial-pin", "240810", "-json", "-progress=false"}, args...)
		if err := loadCmd(ctx, args, &out, &errb); err != nil {
			t.Fatalf("pwctl load %v: %v\n%s", args, err, errb.String())
		}
		var rep loadReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("pwctl load -json printed %q: %v", out.String(), err)
		}
		return rep
	}
	// The worker's first commands wait for it to join its consumer group.
	warm := load("warm%06d@sandbox.example", "-requests", "10", "-concurrency", "2")
	t.Logf("warm-up: %+v", warm)

	t.Run("closed", func(t *testing.T) {
		png := filepath.Join(t.TempDir(), "p.png")
		rep := load("load%06d@sandbox.example", "-requests", "300", "-concurrency", "20", "-plot", png)
		t.Logf("closed model: %d requests in %.2f s: %.1f req/s, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms; status %v; code %v; polled %d",
			rep.Requests, rep.DurationS, rep.RPS, rep.P50ms, rep.P95ms, rep.P99ms, rep.MaxMs, rep.ByStatus, rep.ByCode, rep.Polled)
		checkLoadReport(t, rep, 300)
		if fi, err := os.Stat(png); err != nil || fi.Size() == 0 {
			t.Errorf("-plot wrote no PNG: %v", err)
		} else if b, _ := os.ReadFile(png); !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("-plot file is not a PNG")
		}
		if rep.ByCode["000_000"] < 200 {
			t.Errorf("only %d successes of 300 (10%% are meant to fail)", rep.ByCode["000_000"])
		}
	})

	t.Run("open", func(t *testing.T) {
		rep := load("open%06d@sandbox.example", "-rate", "50", "-duration", "3s")
		t.Logf("open model: %d requests in %.2f s: %.1f req/s, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms; dropped %d; code %v",
			rep.Requests, rep.DurationS, rep.RPS, rep.P50ms, rep.P95ms, rep.P99ms, rep.MaxMs, rep.Dropped, rep.ByCode)
		if rep.Dropped != 0 {
			t.Errorf("dropped %d arrivals at 50/s", rep.Dropped)
		}
		if rep.Requests < 145 || rep.Requests > 150 {
			t.Errorf("%d requests at 50/s for 3 s, want 150", rep.Requests)
		}
		checkLoadReport(t, rep, rep.Requests)
	})
}

// checkLoadReport: every request answered, no transport error, only the
// codes the generator aims for.
func checkLoadReport(t *testing.T, rep loadReport, want int) {
	t.Helper()
	sum := 0
	for code, n := range rep.ByCode {
		sum += n
		switch code {
		case "000_000", "001_035", "001_006":
		default:
			t.Errorf("%d answers with code %s", n, code)
		}
	}
	if sum != want || rep.Requests != want {
		t.Errorf("%d requests sent, %d answered, want %d", rep.Requests, sum, want)
	}
	if rep.Errors != 0 {
		t.Errorf("%d transport errors (%v), first: %s", rep.Errors, rep.ErrorKinds, rep.FirstError)
	}
	if rep.Unexpected != 0 {
		t.Errorf("%d answers other than the one aimed for", rep.Unexpected)
	}
	if rep.RPS <= 0 || rep.P50ms <= 0 || rep.P99ms < rep.P50ms || rep.MaxMs < rep.P99ms {
		t.Errorf("implausible numbers: %+v", rep)
	}
}

// buildServiceBinaries builds cmd/sandbox, cmd/ingress and cmd/worker into a
// temporary directory.
func buildServiceBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../sandbox", "../ingress", "../worker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// serviceProcess is one running binary, its output in a file.
type serviceProcess struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
}

func startServiceProcess(t *testing.T, bin, name string, env map[string]string, args ...string) *serviceProcess {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serviceProcess{name: name, log: logFile.Name(), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 10000 {
				b = b[len(b)-10000:]
			}
			t.Logf("%s output (tail):\n%s", name, b)
		}
	})
	return p
}

func (p *serviceProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor waits until the process has printed s.
func (p *serviceProcess) waitFor(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(p.log)
		switch {
		case strings.Contains(string(b), s):
			return
		case p.exited():
			t.Fatalf("%s exited before printing %q:\n%s", p.name, s, b)
		case time.Now().After(deadline):
			t.Fatalf("%s did not print %q within 60 s", p.name, s)
		}
	}
}

// startIngressAt starts an ingress on a free port and returns its base URL
// once /readyz answers 200. A port picked free can be taken before the
// ingress binds it, so a start that exits is retried on another port.
func startIngressAt(t *testing.T, bin string, base map[string]string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		addr := pickAddr(t)
		env["PINRESET_HTTP_ADDR"] = addr
		p := startServiceProcess(t, bin, "ingress", env)
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if res, err := http.Get("http://" + addr + "/readyz"); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return "http://" + addr
				}
			}
			if p.exited() {
				if attempt < 3 {
					break
				}
				t.Fatalf("ingress exited before it was ready")
			}
			if time.Now().After(deadline) {
				t.Fatalf("ingress not ready after 60 s")
			}
		}
	}
}

func pickAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// readKeyValues reads a KEY=VALUE file; # starts a comment line.
func readKeyValues(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

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
	creds, err := credentials("../../deployments/sandbox/asps.json", "")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAPI{secret: creds.SecretKey, pins: map[string]string{}, wrong: map[string]int{}, busy: map[string]bool{},
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
		time.Sleep(f.delay)
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
	run := func(t *testing.T, srv *httptest.Server, pattern string, members int, args ...string) loadReport {
		t.Helper()
		var out, errb bytes.Buffer
		args = append([]string{"-url", srv.URL + "/api/v1/user/password/reset", "-asp-file", "../../deployments/sandbox/asps.json",
			"-members", pattern, "-member-count", fmt.Sprint(members), "-json", "-progress=false"}, args...)
		if err := loadCmd(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("pwctl load %v: %v\n%s", args, err, errb.String())
		}
		var rep loadReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("pwctl load -json printed %q: %v", out.String(), err)
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
		rep := run(t, srv, "m%04d@load.example", 100, "-requests", "2000", "-concurrency", "50", "-fail-share", "0.3")
		noViolations(t, f)
		checkLoadReport(t, rep, 2000)
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
		rep := run(t, srv, "u%04d@load.example", 30, "-requests", "500", "-concurrency", "8", "-initial-pin", "", "-mix", "0.2")
		noViolations(t, f)
		checkLoadReport(t, rep, 500)
	})

	t.Run("open drops instead of slowing down", func(t *testing.T) {
		f, srv := newFakeAPI(t, "o%04d@load.example", 100, func(int) string { return "240810" })
		f.delay = 50 * time.Millisecond
		rep := run(t, srv, "o%04d@load.example", 100, "-rate", "1000", "-duration", "1s", "-max-inflight", "10", "-plot", filepath.Join(t.TempDir(), "p.png"))
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
		checkLoadReport(t, rep, rep.Requests)
	})
}
