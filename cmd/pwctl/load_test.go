package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/freeaddr"
	"github.com/kmwallet/pinreset/internal/loadgen"
	"github.com/kmwallet/pinreset/internal/loadgen/loadgentest"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

// TestLoadWiring: pwctl load's flags reach the generator, -json prints the
// report as JSON, the text report is the default, and too few members for
// the workers is a warning on standard error.
func TestLoadWiring(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"code":"000_000","message":"Success."}`)
	}))
	t.Cleanup(srv.Close)
	args := []string{"load", "-url", srv.URL + "/api/v1/user/password/reset", "-asp-file", "../../deployments/sandbox/asps.json",
		"-member-count", "2", "-requests", "20", "-concurrency", "2", "-fail-share", "0", "-progress=false"}
	var out, errb bytes.Buffer
	if err := run(context.Background(), append(args, "-json"), nil, &out, &errb); err != nil {
		t.Fatalf("pwctl load -json: %v\n%s", err, errb.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("pwctl load -json printed %q: %v", out.String(), err)
	}
	if rep.Requests != 20 || rep.ByCode["000_000"] != 20 || rep.Model != "closed: 2 workers" {
		t.Errorf("report %+v, want 20 requests answered 000_000 by 2 workers", rep)
	}
	if !strings.Contains(errb.String(), "pwctl load: warning: 2 members for 2 workers") {
		t.Errorf("no warning about too few members: %q", errb.String())
	}
	out.Reset()
	if err := run(context.Background(), args, nil, &out, &errb); err != nil {
		t.Fatalf("pwctl load: %v\n%s", err, errb.String())
	}
	if want := "model        closed: 2 workers; 50% resets, 0% meant to fail\nrequests     20 sent, 20 answered, 0 errors, 0 dropped\n"; !strings.HasPrefix(out.String(), want) {
		t.Errorf("text report:\n%s\nwant it to start:\n%s", out.String(), want)
	}
	if n := posts.Load(); n != 40 {
		t.Errorf("the server got %d POSTs, want 40", n)
	}
}

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
	kafkaAddr, mongoAddr := freeaddr.For(t), freeaddr.For(t)
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
	// The closed run sends each of its 40 members 7 commands in 3 s on
	// average, and a member whose answers come fast more: the member bucket
	// (10 a minute, bursts of 10) refused one in a CI run. Admission has its
	// own tests (cmd/sandbox lockout_test.go); this one measures the pipeline.
	env["PINRESET_MEMBER_RATE"] = "off"
	getenv := func(k string) string { return env[k] }
	t.Logf("infrastructure up after %v", time.Since(began).Round(time.Millisecond))

	// Each run gets members of its own: the generator assumes every member
	// starts with -initial-pin. Few members: each one seeded costs a PIN
	// hash on this shared machine. The closed run needs
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
	load := func(pattern string, args ...string) loadgen.Report {
		t.Helper()
		var out, errb bytes.Buffer
		args = append([]string{"-url", apiURL, "-asp-file", aspFile, "-members", pattern, "-member-count", fmt.Sprint(counts[pattern]),
			"-initial-pin", "240810", "-json", "-progress=false"}, args...)
		if err := loadCmd(ctx, args, &out, &errb); err != nil {
			t.Fatalf("pwctl load %v: %v\n%s", args, err, errb.String())
		}
		var rep loadgen.Report
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
		loadgentest.CheckReport(t, rep, 300)
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
		loadgentest.CheckReport(t, rep, rep.Requests)
	})
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

// waitFor waits until the process has printed s (cmd/sandbox's ready
// line, printed for scripts and tests to wait for).
func (p *serviceProcess) waitFor(t *testing.T, s string) {
	t.Helper()
	var b []byte
	printed := waitfor.Until(60*time.Second, func() bool {
		b, _ = os.ReadFile(p.log)
		return strings.Contains(string(b), s) || p.exited()
	})
	switch {
	case !printed:
		t.Fatalf("%s did not print %q within 60 s", p.name, s)
	case !strings.Contains(string(b), s):
		t.Fatalf("%s exited before printing %q:\n%s", p.name, s, b)
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
		addr := freeaddr.For(t)
		env["PINRESET_HTTP_ADDR"] = addr
		p := startServiceProcess(t, bin, "ingress", env)
		ready := func() bool {
			res, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == http.StatusOK
		}
		switch {
		case !waitfor.Until(60*time.Second, func() bool { return ready() || p.exited() }):
			t.Fatalf("ingress not ready after 60 s")
		case !p.exited():
			return "http://" + addr
		case attempt >= 3:
			t.Fatalf("ingress exited before it was ready")
		}
	}
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
