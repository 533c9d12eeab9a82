package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	workercompose "github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

// The fault suite: the faults production brings (a broker restarted, a
// rebalance storm, a command that cannot succeed, a database that stalls),
// against the real embedded servers run as processes. Each test judges from
// the outside: every client answered once it retries, every outcome
// recorded once and consistent with the member, no service process exited.

// adminAddr is the address of the process's admin listener (chosen by
// startProcess), once it answers.
func (p *process) adminAddr(t *testing.T) string {
	t.Helper()
	if p.admin == "" {
		t.Fatalf("%s has no admin listener", p.name)
	}
	if !waitfor.Until(30*time.Second, func() bool { s, _ := probe(p.admin, "/healthz"); return s != 0 || p.exited() }) || p.exited() {
		// (A worker that could not bind the address goes on without it.)
		t.Fatalf("%s: no admin listener answers on %s within 30 s (exited: %v)", p.name, p.admin, p.exited())
	}
	return p.admin
}

// probe GETs an admin path and returns the status and body ("" and 0 when
// the listener does not answer).
func probe(addr, path string) (int, string) {
	c := http.Client{Timeout: 3 * time.Second}
	res, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, string(b)
}

// metricSum adds up the samples of a metric on the process's /metrics
// whose label set contains every one of labels ("name" alone: all of them).
func metricSum(addr, name string, labels ...string) float64 {
	_, body := probe(addr, "/metrics")
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// alive fails the test for every process of ps that has exited.
func alive(t *testing.T, ps ...*process) {
	t.Helper()
	for _, p := range ps {
		select {
		case <-p.done:
			t.Errorf("%s exited (code %d): a fault must not end a process", p.name, p.cmd.ProcessState.ExitCode())
		default:
		}
	}
}

// peakRSS is the process's peak resident memory (VmHWM), in MiB, or -1.
func (p *process) peakRSS() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kib, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				return kib / 1024
			}
		}
	}
	return -1
}

// boundedMemory fails the test for a service process whose peak RSS went
// past the memory limit its manifests give it (256 MiB).
func boundedMemory(t *testing.T, ps ...*process) {
	t.Helper()
	for _, p := range ps {
		rss := p.peakRSS()
		t.Logf("%s peak RSS %.0f MiB", p.name, rss)
		if rss > 256 {
			t.Errorf("%s peak RSS %.0f MiB, over the 256 MiB it is given in production", p.name, rss)
		}
	}
}

// TestBrokerOutages kills the broker process and restarts it on its data
// directory, for 1 s, 5 s, 30 s and 1 s again, while 500 commands are in
// flight all along: nothing is lost or doubled, no process exits, readiness goes
// red during an outage and green after it, and work resumes after each.
func TestBrokerOutages(t *testing.T) {
	// In parallel with the other fault tests: much of each is waiting
	// (an outage, a stall), and each runs its own servers on free ports.
	t.Parallel()
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 400)
	ing, c := startIngressClient(t, &e, map[string]string{"PINRESET_RESULT_WAIT": "2s"})
	clients := []*client{c}
	w1 := startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w1"}))
	w2 := startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w2"}))
	ingAdmin, w1Admin, w2Admin := ing.adminAddr(t), w1.adminAddr(t), w2.adminAddr(t)
	decided := func() float64 {
		return metricSum(w1Admin, "pinreset_outcomes_total") + metricSum(w2Admin, "pinreset_outcomes_total")
	}

	// Up to 10,000 commands, 500 in flight at a time, started until the
	// last outage is over: the load spans the outages on any machine.
	jobs := makeJobs(members, 25)
	stop := make(chan struct{})
	progress, started, done := goJobsUntil(t, clients, jobs, 500, time.Now().Add(5*time.Minute), stop)
	var maxLag float64
	for i, outage := range []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, time.Second} {
		before := progress.Load()
		if !waitfor.Until(2*time.Minute, func() bool { return progress.Load() >= before+100 || progress.Load() == int64(len(jobs)) }) {
			t.Fatalf("outage %d: no progress before it (%d of %d done)", i+1, progress.Load(), len(jobs))
		}
		if progress.Load() == int64(len(jobs)) {
			t.Fatalf("all commands done before outage %d: the load must span the outages", i+1)
		}
		in.kafka.kill()
		killedAt, atKill := time.Now(), progress.Load()
		if outage >= 5*time.Second {
			// Readiness names the outage; liveness does not restart a
			// process that only waits for the broker.
			if !waitfor.Until(outage-time.Second, func() bool { s, _ := probe(w1Admin, "/readyz"); return s == 503 }) {
				t.Errorf("outage %d: the worker's /readyz did not turn 503", i+1)
			}
			if s, _ := probe(ingAdmin, "/readyz"); s != 503 {
				t.Errorf("outage %d: the ingress's /readyz answered %d, want 503", i+1, s)
			}
			if s, body := probe(w1Admin, "/healthz"); s != 200 {
				t.Errorf("outage %d: the worker's /healthz answered %d %q while it waits for the broker", i+1, s, body)
			}
		}
		time.Sleep(time.Until(killedAt.Add(outage))) // the outage under test
		in.kafka = in.startPart(t, "kafka")
		restartedAt, decidedAtRestart := time.Now(), decided()
		// Recovery: from the restart to the first command a worker decides.
		if !waitfor.Until(time.Minute, func() bool { return decided() > decidedAtRestart }) {
			t.Fatalf("outage %d: no worker decided a command within a minute of the restart", i+1)
		}
		firstAfter := time.Since(restartedAt)
		if !waitfor.Until(2*time.Minute, func() bool { return progress.Load() > atKill+10 || progress.Load() == int64(len(jobs)) }) {
			t.Fatalf("outage %d (%v): no progress within 2 min of the restart", i+1, outage)
		}
		t.Logf("outage %d: broker down %v after %d of %d done; first command decided %v after the restart",
			i+1, outage, atKill, len(jobs), firstAfter.Round(10*time.Millisecond))
		if lag := metricSum(w1Admin, "pinreset_consumer_lag", `topic="password.commands"`); lag > maxLag {
			maxLag = lag
		}
		if !waitfor.Until(time.Minute, func() bool {
			s1, _ := probe(w1Admin, "/readyz")
			s2, _ := probe(ingAdmin, "/readyz")
			return s1 == 200 && s2 == 200
		}) {
			s, body := probe(w1Admin, "/readyz")
			t.Errorf("outage %d: readiness not green a minute after the restart: worker %d %q", i+1, s, body)
		}
	}
	close(stop)
	<-done
	alive(t, ing, w1, w2)
	boundedMemory(t, ing, w1, w2)
	t.Logf("largest password.commands lag seen right after a restart: %.0f", maxLag)
	checkExactlyOnce(t, e, jobs[:started.Load()])
}

// TestRebalanceStorm has workers join and leave every second, some killed
// and some stopped, while 500 commands run: every command ends with exactly
// one outcome and every client learns it.
func TestRebalanceStorm(t *testing.T) {
	// In parallel with the other fault tests: much of each is waiting
	// (an outage, a stall), and each runs its own servers on free ports.
	t.Parallel()
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 100)
	_, c := startIngressClient(t, &e, map[string]string{"PINRESET_RESULT_WAIT": "2s"})
	clients := []*client{c}
	workers := []*process{startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w0"}))}

	jobs := makeJobs(members, 5)
	progress, done := goJobs(t, clients, jobs, 100, time.Now().Add(4*time.Minute))
	for i := 1; i <= 15; i++ {
		select {
		case <-done:
		case <-time.After(time.Second):
		}
		workers = append(workers, startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": fmt.Sprintf("w%d", i)})))
		if len(workers) > 2 {
			old := workers[0]
			workers = workers[1:]
			if i%2 == 0 {
				old.kill()
			} else {
				_ = old.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
	}
	t.Logf("storm over after %d of %d outcomes", progress.Load(), len(jobs))
	<-done
	alive(t, workers...)
	checkExactlyOnce(t, e, jobs)
}

// TestStuckCommandsAreParked: one member's PIN is hashed under a pepper the
// worker does not have yet, and one command comes sealed under a seal key
// the worker does not have yet (a rollout in the wrong order). Neither can
// succeed; both are parked at their first failure while 200 others
// complete, a status query answers them as pending, readiness names the
// missing keys, and once a worker with the keys runs, both complete.
func TestStuckCommandsAreParked(t *testing.T) {
	// In parallel with the other fault tests: much of each is waiting
	// (an outage, a stall), and each runs its own servers on free ports.
	t.Parallel()
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 40)

	// A member whose hash names pepper "p9", which the worker lacks.
	const p9 = "p9:cDktcGVwcGVyLXRoYXQtYXJyaXZlcy1sYXRlLTEyMzQ="
	p9cfg, err := config.LoadWorker(overlay(e.Getenv, map[string]string{"PINRESET_PEPPERS": p9, "PINRESET_ARGON2_MEMORY_KIB": "64", "PINRESET_ARGON2_TIME": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	h9, err := workercompose.NewHasher(p9cfg)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h9.Hash("240810")
	if err != nil {
		t.Fatal(err)
	}
	store, err := mongostore.Open(mongostore.Config{URI: e.MongoURI, Database: e.Database})
	if err != nil {
		t.Fatal(err)
	}
	err = store.PutMember(context.Background(), pinreset.Member{ID: "load-p9", ASPID: "KMSANDBOXASP001",
		LoginID: "loadp9@sandbox.example", PINHash: hash, UpdatedAt: time.Now()})
	store.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	// Two ingresses: one seals with the sandbox key, the other with a new
	// key "k2" first (deployed to it before the workers).
	const k2 = "k2:azItc2VhbC1rZXktMzItYnl0ZXMtbG9uZy0xMjM0NTY="
	_, addr := startIngressProcess(t, e, map[string]string{"PINRESET_RESULT_WAIT": "1s"})
	_, addrK2 := startIngressProcess(t, e, map[string]string{"PINRESET_RESULT_WAIT": "1s",
		"PINRESET_SEAL_KEYS": k2 + "," + e.Getenv("PINRESET_SEAL_KEYS")})
	e.HTTPAddr = addr
	c := newClient(t, e)
	e.HTTPAddr = addrK2
	cK2 := newClient(t, e)
	// The default retry budget (30 s): a missing key is parked at its first
	// failure, not after the budget.
	w1 := startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w1"}))
	w1Admin := w1.adminAddr(t)

	stuckPepper := makeJobs([]string{"loadp9@sandbox.example"}, 1)[0]
	stuckSeal := makeJobs(members[:1], 1)[0]
	others := makeJobs(members[1:], 5)
	for _, s := range []struct {
		j *job
		c *client
	}{{stuckPepper, c}, {stuckSeal, cK2}} {
		r, err := s.c.tryPost(s.j.body, s.j.cid)
		if err != nil || r.status != 202 {
			t.Fatalf("stuck command %s: %d %+v %v, want 202 (no worker can decide it)", s.j.cid, r.status, r.body, err)
		}
	}
	start := time.Now()
	var progress atomic.Int64
	runJobs(t, []*client{c}, others, 50, time.Now().Add(2*time.Minute), &progress)
	t.Logf("%d other commands done in %v while two were stuck", len(others), time.Since(start).Round(100*time.Millisecond))

	if !waitfor.Until(30*time.Second, func() bool {
		return metricSum(w1Admin, "pinreset_commands_parked_total", `reason="missing_key"`) >= 2
	}) {
		t.Errorf("parked missing_key = %v, want both stuck commands parked", metricSum(w1Admin, "pinreset_commands_parked_total", `reason="missing_key"`))
	}
	// Each parked once, at its first failure: waiting out the retry budget
	// in its lane would hold up the lanes behind it for nothing.
	parked := map[string][]time.Duration{}
	for _, pk := range parkings(t, e) {
		if pk.fromCommands() {
			parked[pk.key] = append(parked[pk.key], pk.inLane)
		}
	}
	for _, j := range []*job{stuckPepper, stuckSeal} {
		if got := parked[j.cid]; len(got) != 1 || got[0] >= config.DefaultRetryBudget {
			t.Errorf("%s left password.commands %d times, %v after it was published; want once, at its first failure, before the retry budget (%v)",
				j.cid, len(got), got, config.DefaultRetryBudget)
		}
	}
	for _, j := range []*job{stuckPepper, stuckSeal} {
		if r, err := c.tryGet(j.cid); err != nil || r.status != 202 {
			t.Errorf("status of parked %s: %d %+v %v, want 202 still pending", j.cid, r.status, r.body, err)
		}
	}
	s, body := probe(w1Admin, "/readyz")
	if s != 503 || !strings.Contains(body, "missing pepper key") || !strings.Contains(body, "missing seal key") {
		t.Errorf("worker /readyz = %d %q, want 503 naming the missing pepper and seal keys", s, body)
	}
	if s, body := probe(w1Admin, "/healthz"); s != 200 {
		t.Errorf("worker /healthz = %d %q: a missing key is not a reason to restart", s, body)
	}
	if n := metricSum(w1Admin, "pinreset_missing_keys_total"); n < 2 {
		t.Errorf("pinreset_missing_keys_total = %v, want the attempts counted", n)
	}

	// The keys are deployed: a worker that has them replaces the old one.
	_ = w1.cmd.Process.Signal(syscall.SIGTERM)
	<-w1.done
	withKeys := map[string]string{"PINRESET_WORKER_ID": "w2",
		"PINRESET_PEPPERS":   e.Getenv("PINRESET_PEPPERS") + "," + p9,
		"PINRESET_SEAL_KEYS": k2 + "," + e.Getenv("PINRESET_SEAL_KEYS")}
	w2 := startProcess(t, "worker", processEnv(e, withKeys))
	fixed := time.Now()
	// Only status queries: the parked commands must complete by themselves,
	// not through a client's retry of the POST.
	for _, j := range []*job{stuckPepper, stuckSeal} {
		waitfor.Every(400*time.Millisecond, 100*time.Second, func() bool {
			r, err := c.tryGet(j.cid)
			if err == nil && r.status != 202 && r.status != 503 {
				j.final = r
				return true
			}
			return false
		})
	}
	t.Logf("the parked commands completed %v after the keys were deployed", time.Since(fixed).Round(100*time.Millisecond))
	for _, j := range []*job{stuckPepper, stuckSeal} {
		if j.final.status != 200 || j.final.body.Code != "000_000" {
			t.Errorf("parked %s ended %d %+v, want 200 000_000 once its key is there", j.cid, j.final.status, j.final.body)
		}
	}
	alive(t, w2)
	checkExactlyOnce(t, e, append(others, stuckPepper, stuckSeal))
}

// faultProxy forwards TCP connections to a server and can stall the ones
// open at a moment for good (bytes read and dropped both ways, nothing
// closed: as when a database primary vanishes without a reset), or delay
// every chunk it forwards. It is a network fault, not a fake database:
// the bytes go to the real server.
type faultProxy struct {
	ln      net.Listener
	target  string
	latency atomic.Int64 // per forwarded chunk, in nanoseconds

	mu    sync.Mutex
	conns []*proxyConn
	wg    sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	stalled        atomic.Bool
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			pc := &proxyConn{client: c, server: s}
			p.mu.Lock()
			p.conns = append(p.conns, pc)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(pc, c, s)
			go p.pipe(pc, s, c)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) pipe(pc *proxyConn, src, dst net.Conn) {
	defer p.wg.Done()
	defer pc.client.Close()
	defer pc.server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if pc.stalled.Load() {
			continue // half-open: the peer never hears of it
		}
		if d := time.Duration(p.latency.Load()); d > 0 {
			time.Sleep(d) // the latency injected, the fault under test
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// stallAll stalls every connection open now; new ones pass.
func (p *faultProxy) stallAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pc := range p.conns {
		if !pc.stalled.Swap(true) {
			n++
		}
	}
	return n
}

func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, pc := range p.conns {
		pc.client.Close()
		pc.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestStalledAndSlowDatabase puts the worker behind a proxy that three
// times stalls every database connection open at that moment, for good,
// and then adds 50 ms to every chunk for a while: the worker's deadlines
// free the lanes, new connections carry on, and every command ends once,
// answered, with no process exiting.
func TestStalledAndSlowDatabase(t *testing.T) {
	// In parallel with the other fault tests: much of each is waiting
	// (an outage, a stall), and each runs its own servers on free ports.
	t.Parallel()
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 40)
	proxy := startFaultProxy(t, in.mongoAddr)
	_, c := startIngressClient(t, &e, map[string]string{"PINRESET_RESULT_WAIT": "2s"})
	w := startProcess(t, "worker", processEnv(e, map[string]string{
		"PINRESET_MONGO_URI": "mongodb://" + proxy.addr() + "/", "PINRESET_COMMAND_TIMEOUT": "3s"}))

	jobs := makeJobs(members, 5)
	start := time.Now()
	progress, done := goJobs(t, []*client{c}, jobs, 20, time.Now().Add(3*time.Minute))
	for i := 1; i <= 3; i++ {
		at := progress.Load()
		if !waitfor.Until(time.Minute, func() bool { return progress.Load() >= at+25 }) {
			t.Fatalf("stall %d: no progress (%d of %d done)", i, progress.Load(), len(jobs))
		}
		t.Logf("stall %d: %d connections stalled after %d of %d done", i, proxy.stallAll(), progress.Load(), len(jobs))
	}
	at := progress.Load()
	if !waitfor.Until(time.Minute, func() bool { return progress.Load() >= at+25 }) {
		t.Fatalf("after the stalls: no progress (%d of %d done)", progress.Load(), len(jobs))
	}
	proxy.latency.Store(int64(50 * time.Millisecond))
	slowFrom := progress.Load()
	time.Sleep(5 * time.Second) // the slow spell under test
	proxy.latency.Store(0)
	t.Logf("%d commands done in 5 s with 50 ms added to every database chunk", progress.Load()-slowFrom)
	<-done
	t.Logf("all %d done in %v", len(jobs), time.Since(start).Round(100*time.Millisecond))
	alive(t, w)
	boundedMemory(t, w)
	checkExactlyOnce(t, e, jobs)
}

// TestDatabaseOutages kills the database process and restarts it on its
// files for 1 s, 5 s and 30 s while commands are in flight: the worker waits
// (nothing is parked while the database is away, so nothing is reordered),
// readiness names the outage, no process exits, and every command ends
// once, answered.
func TestDatabaseOutages(t *testing.T) {
	t.Parallel()
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 100)
	ing, c := startIngressClient(t, &e, map[string]string{"PINRESET_RESULT_WAIT": "2s"})
	// A short retry budget: a command failing for longer than that while
	// the database is down must still wait in its lane, not be parked.
	w := startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_RETRY_BUDGET": "2s", "PINRESET_COMMAND_TIMEOUT": "5s"}))
	wAdmin := w.adminAddr(t)

	jobs := makeJobs(members, 5)
	progress, done := goJobs(t, []*client{c}, jobs, 100, time.Now().Add(5*time.Minute))
	for i, outage := range []time.Duration{time.Second, 5 * time.Second, 30 * time.Second} {
		before := progress.Load()
		if !waitfor.Until(2*time.Minute, func() bool { return progress.Load() >= before+40 }) {
			t.Fatalf("outage %d: no progress before it (%d of %d done)", i+1, progress.Load(), len(jobs))
		}
		in.mongo.kill()
		killedAt := time.Now()
		if outage >= 5*time.Second {
			if !waitfor.Until(outage-time.Second, func() bool { s, _ := probe(wAdmin, "/readyz"); return s == 503 }) {
				t.Errorf("database outage %d: the worker's /readyz did not turn 503", i+1)
			}
			if s, body := probe(wAdmin, "/healthz"); s != 200 {
				t.Errorf("database outage %d: /healthz %d %q while the worker waits for the database", i+1, s, body)
			}
		}
		time.Sleep(time.Until(killedAt.Add(outage))) // the outage under test
		in.mongo = in.startPart(t, "mongo")
		restartedAt := time.Now()
		at := progress.Load()
		if !waitfor.Until(2*time.Minute, func() bool { return progress.Load() > at+10 }) {
			t.Fatalf("database outage %d (%v): no progress within 2 min of the restart", i+1, outage)
		}
		t.Logf("database outage %d: down %v after %d of %d done; 10 more answered %v after the restart",
			i+1, outage, at, len(jobs), time.Since(restartedAt).Round(100*time.Millisecond))
	}
	<-done
	if n := metricSum(wAdmin, "pinreset_commands_parked_total"); n != 0 {
		t.Errorf("%v commands parked during database outages: they must wait in their lanes", n)
	}
	alive(t, ing, w)
	boundedMemory(t, ing, w)
	checkExactlyOnce(t, e, jobs)
}
