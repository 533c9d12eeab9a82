package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	workercompose "github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/freeaddr"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/waitfor"
	"github.com/kmwallet/pinreset/internal/worker"
)

// These tests run cmd/ingress and cmd/worker as separate OS processes (the
// built binaries) against the embedded broker and database, so that they
// can be killed for real.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds cmd/ingress and cmd/worker once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "pinreset-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "../../cmd/ingress", "../../cmd/worker", "../../cmd/sandbox", "../../cmd/pwctl").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// process is one running service binary.
type process struct {
	name  string
	cmd   *exec.Cmd
	log   string
	admin string // the admin listener's address (ingress and worker)
	done  chan struct{}
}

func startProcess(t *testing.T, name string, env map[string]string, args ...string) *process {
	t.Helper()
	bin := filepath.Join(binaries(t), name)
	logFile, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	logPath := logFile.Name()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithTest(cmd)
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if name == "ingress" || name == "worker" {
		// The admin listener's address is chosen here, unless env names
		// one, so that the test knows where to ask the process.
		if p.admin = env["PINRESET_ADMIN_ADDR"]; p.admin == "" {
			p.admin = freeaddr.For(t)
			cmd.Env = append(cmd.Env, "PINRESET_ADMIN_ADDR="+p.admin)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if dir := os.Getenv("PINRESET_TEST_LOG_DIR"); dir != "" {
			// Keep whole logs for a look after the run (a passing run too).
			if b, err := os.ReadFile(logPath); err == nil {
				_ = os.WriteFile(filepath.Join(dir, t.Name()+"-"+filepath.Base(logPath)), b, 0o600)
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
	return p
}

// waitForLine waits until the process has printed line (cmd/sandbox's
// ReadyLine, printed for scripts and tests to wait for).
func (p *process) waitForLine(t *testing.T, line string) {
	t.Helper()
	var out []byte
	printed := waitfor.Until(60*time.Second, func() bool {
		out, _ = os.ReadFile(p.log)
		return strings.Contains(string(out), line) || p.exited()
	})
	switch {
	case !printed:
		t.Fatalf("%s did not print %q within 60 s", p.name, line)
	case !strings.Contains(string(out), line):
		t.Fatalf("%s exited before printing %q:\n%s", p.name, line, out)
	}
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// infra is the embedded infrastructure run as its own processes: the
// services under test do not share a race-instrumented process with
// FerretDB, and the database can be stopped alone.
type infra struct {
	Env
	dataDir, kafkaAddr, mongoAddr string
	kafka, mongo                  *process
}

// startInfraProcesses runs the embedded broker and database as two
// processes of cmd/sandbox -infra-only.
func startInfraProcesses(t *testing.T) *infra {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: starts the embedded broker and database")
	}
	sandboxDir, err := filepath.Abs("../../deployments/sandbox")
	if err != nil {
		t.Fatal(err)
	}
	in := &infra{dataDir: t.TempDir(), kafkaAddr: freeaddr.For(t), mongoAddr: freeaddr.For(t)}
	in.kafka = in.startPart(t, "kafka")
	in.mongo = in.startPart(t, "mongo")
	fileEnv, err := config.ReadEnvFile(filepath.Join(sandboxDir, "sandbox.env"))
	if err != nil {
		t.Fatal(err)
	}
	fileEnv["PINRESET_KAFKA_BROKERS"] = in.kafkaAddr
	fileEnv["PINRESET_MONGO_URI"] = "mongodb://" + in.mongoAddr + "/"
	fileEnv["PINRESET_ASP_FILE"] = filepath.Join(sandboxDir, "asps.json")
	in.Env = Env{Brokers: []string{in.kafkaAddr}, MongoURI: fileEnv["PINRESET_MONGO_URI"], Database: "pinreset",
		SandboxDir: sandboxDir, Getenv: func(k string) string { return fileEnv[k] }}
	return in
}

func (in *infra) startPart(t *testing.T, part string) *process {
	t.Helper()
	p := startProcess(t, "sandbox", nil, "-infra-only", "-infra", part, "-data-dir", in.dataDir,
		"-kafka-addr", in.kafkaAddr, "-mongo-addr", in.mongoAddr, "-sandbox-dir", "../../deployments/sandbox")
	p.waitForLine(t, ReadyLine)
	return p
}

// kill sends SIGKILL: no shutdown, no commit, no goodbye to the group.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// processEnv is the environment of the service binaries for sandbox e.
func processEnv(e Env, over map[string]string) map[string]string {
	env := map[string]string{}
	for _, k := range []string{"PINRESET_KAFKA_BROKERS", "PINRESET_MONGO_URI", "PINRESET_SEAL_KEYS", "PINRESET_PEPPERS", "PINRESET_FINGERPRINT_KEYS", "PINRESET_ASP_FILE"} {
		env[k] = e.Getenv(k)
	}
	env["PINRESET_ASP_FILE"], _ = filepath.Abs(env["PINRESET_ASP_FILE"])
	env["PINRESET_LOG_LEVEL"] = "info"
	// Cheap hashing: these tests are about delivery, not hashing cost.
	env["PINRESET_ARGON2_MEMORY_KIB"] = "64"
	env["PINRESET_ARGON2_TIME"] = "1"
	env["PINRESET_KAFKA_SESSION_TIMEOUT"] = "3s"
	// These tests drive many commands per member and from one ASP: they are
	// about delivery, not admission (lockout_test.go tests the buckets).
	env["PINRESET_MEMBER_RATE"] = "off"
	env["PINRESET_ASP_RATE"] = "off"
	for k, v := range over {
		env[k] = v
	}
	return env
}

// startIngressProcess starts an ingress binary and waits until it is ready.
// A port picked free can be taken by another process before the ingress
// binds it, so a start that fails is retried on another port.
func startIngressProcess(t *testing.T, e Env, over map[string]string) (*process, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeaddr.For(t)
		env := processEnv(e, over)
		env["PINRESET_HTTP_ADDR"] = addr
		p := startProcess(t, "ingress", env)
		ready := waitfor.Until(60*time.Second, func() bool {
			if s, _ := probe(addr, "/readyz"); s == 200 {
				return true
			}
			return p.exited()
		})
		switch {
		case !ready:
			t.Fatalf("ingress not ready after 60 s")
		case !p.exited():
			return p, addr
		case attempt >= 3:
			t.Fatalf("ingress exited before it was ready")
		}
	}
}

// startIngressClient starts an ingress binary, points e at it and returns
// it with a client of it.
func startIngressClient(t *testing.T, e *Env, over map[string]string) (*process, *client) {
	t.Helper()
	p, addr := startIngressProcess(t, *e, over)
	e.HTTPAddr = addr
	return p, newClient(t, *e)
}

// seedMembers creates n members with PIN 240810 and returns their loginIds.
func seedMembers(t *testing.T, e Env, n int) []string {
	t.Helper()
	wcfg, err := config.LoadWorker(overlay(e.Getenv, map[string]string{"PINRESET_ARGON2_MEMORY_KIB": "64", "PINRESET_ARGON2_TIME": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := workercompose.NewHasher(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	store, err := mongostore.Open(mongostore.Config{URI: e.MongoURI, Database: e.Database})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	hash, err := h.Hash("240810")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("load%03d@sandbox.example", i)
		err := store.PutMember(context.Background(), pinreset.Member{ID: fmt.Sprintf("load-%03d", i), ASPID: "KMSANDBOXASP001",
			LoginID: ids[i], PINHash: hash, UpdatedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// job is one client transaction: a reset of one member to one PIN.
type job struct {
	cid, loginID, pin string
	body              []byte
	final             response
}

func makeJobs(members []string, perMember int) []*job {
	policy := pinreset.PINPolicy{Enabled: true}
	var jobs []*job
	for _, m := range members {
		used := map[string]bool{"240810": true}
		for len(used) < perMember+1 {
			pin := fmt.Sprintf("%06d", rand.IntN(1000000))
			if used[pin] || policy.Check(pin) != nil {
				continue
			}
			used[pin] = true
			cid := kmheader.NewCorrelationID(time.Now(), nil)
			jobs = append(jobs, &job{cid: cid, loginID: m, pin: pin,
				body: []byte(fmt.Sprintf(`{"loginId":%q,"newPassword":%q,"isResetPassword":true}`, m, pin))})
		}
	}
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	return jobs
}

// finish drives one job to its final outcome, as a client does: POST
// (retrying the same correlation id and body 100 ms after a transport
// error, a 503 or a 429, on the next ingress), then GET every 200 ms while
// the answer is 202. A job still pending at the deadline ends with its 202.
func finish(t *testing.T, clients []*client, j *job, deadline time.Time) {
	attempt := 0
	var err error
	answered := waitfor.Every(100*time.Millisecond, time.Until(deadline), func() bool {
		c := clients[attempt%len(clients)]
		attempt++
		var r response
		if r, err = c.tryPost(j.body, j.cid); err != nil || r.status == 503 || r.status == 429 {
			return false
		}
		waitfor.Every(200*time.Millisecond, time.Until(deadline), func() bool {
			if r.status != 202 {
				return true
			}
			g, gerr := c.tryGet(j.cid)
			if gerr != nil {
				err = gerr // this ingress is gone: ask another one
				return true
			}
			if g.status != 503 {
				r = g
			}
			return r.status != 202
		})
		if err != nil {
			return false
		}
		j.final = r
		return true
	})
	if !answered {
		t.Errorf("job %s: no answer before the deadline (last error %v)", j.cid, err)
	}
}

// checkExactlyOnce reads MongoDB and the events back: one outcome per
// job, matching what its client was told; per member, one version per
// decision about it and nothing left undelivered; every PIN set announced,
// and no member's event first published after one of a later version.
func checkExactlyOnce(t *testing.T, e Env, jobs []*job) {
	t.Helper()
	mc, err := mongo.Connect(options.Client().ApplyURI(e.MongoURI))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(context.Background())
	db := mc.Database(e.Database)
	ctx := context.Background()
	// A client has its answer before the decision is delivered (events,
	// audit record, outcome record); a delivery that met an outage is
	// retried with the command, or by the relay, so it may come seconds
	// after the last answer. Wait for them, then check.
	start := time.Now()
	var n int
	if !waitfor.Every(250*time.Millisecond, 2*time.Minute, func() bool { n = undeliveredMembers(t, db); return n == 0 }) {
		t.Errorf("%d members with undelivered decisions 2 minutes after the last answer", n)
	}
	t.Logf("every decision delivered %v after the last answer", time.Since(start).Round(10*time.Millisecond))

	type outcome struct {
		CorrelationID string `bson:"correlationId"`
		Code          string `bson:"code"`
		MemberID      string `bson:"memberId"`
	}
	cur, err := db.Collection(mongostore.OutcomesCollection).Find(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []outcome
	if err := cur.All(ctx, &outcomes); err != nil {
		t.Fatal(err)
	}
	recorded := map[string]string{}
	decided := map[string]int64{} // member id -> decisions about it
	for _, o := range outcomes {
		if _, dup := recorded[o.CorrelationID]; dup {
			t.Errorf("correlation id %s has two outcomes", o.CorrelationID)
		}
		recorded[o.CorrelationID] = o.Code
		if o.MemberID != "" {
			decided[o.MemberID]++
		}
	}
	successes := map[string]int{}
	lost, mismatched := 0, 0
	for _, j := range jobs {
		code, ok := recorded[j.cid]
		switch {
		case !ok:
			lost++
		case string(j.final.body.Code) != code:
			mismatched++
			t.Errorf("job %s: client told %d %s, record says %s", j.cid, j.final.status, j.final.body.Code, code)
		}
		if code == "000_000" {
			successes[j.loginID]++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d commands have no recorded outcome", lost, len(jobs))
	}

	// Every member one version past its seeding per decision about it:
	// none applied twice, none lost.
	type member struct {
		ID      string `bson:"_id"`
		Version int64  `bson:"version"`
	}
	cur, err = db.Collection(mongostore.MembersCollection).Find(ctx, bson.M{"_id": bson.M{"$regex": "^load-"}})
	if err != nil {
		t.Fatal(err)
	}
	var members []member
	if err := cur.All(ctx, &members); err != nil {
		t.Fatal(err)
	}
	off := 0
	for _, m := range members {
		if m.Version != 1+decided[m.ID] {
			off++
			t.Errorf("member %s at version %d after %d decisions", m.ID, m.Version, decided[m.ID])
		}
	}
	checkEventOrder(t, e, successes)
	// The audit trail: whatever died when, each command is audited once,
	// with its outcome (a delivery done again finds its record there and
	// the trail refuses the duplicate).
	audited := map[string][]string{}
	rep, err := mongostore.NewAuditLog(db).Verify(ctx, func(r audit.Record) { audited[r.CorrelationID] = append(audited[r.CorrelationID], r.Code) })
	if err != nil || !rep.OK() {
		t.Fatalf("audit trail: %+v %v", rep, err)
	}
	unaudited := 0
	for _, j := range jobs {
		got := audited[j.cid]
		if len(got) == 0 {
			unaudited++
			continue
		}
		if len(got) != 1 || got[0] != recorded[j.cid] {
			t.Errorf("job %s (outcome %s): audit records %v, want exactly one with its outcome", j.cid, recorded[j.cid], got)
		}
	}
	if unaudited > 0 {
		t.Errorf("%d of %d commands have no audit record", unaudited, len(jobs))
	}
	codes := map[string]int{}
	for _, j := range jobs {
		codes[string(j.final.body.Code)]++
	}
	t.Logf("commands %d, outcomes %d, lost %d, mismatched %d, unaudited %d, members off their version %d, codes %v", len(jobs), len(recorded), lost, mismatched, unaudited, off, codes)
}

// undeliveredMembers counts the load members with a decision in their
// outbox whose outcome is not recorded yet (delivered decisions stay in
// the document until the relay prunes them).
func undeliveredMembers(t *testing.T, db *mongo.Database) int {
	t.Helper()
	ctx := context.Background()
	cur, err := db.Collection(mongostore.MembersCollection).Aggregate(ctx, bson.A{
		bson.M{"$match": bson.M{"_id": bson.M{"$regex": "^load-"}, "outbox.0": bson.M{"$exists": true}}},
		bson.M{"$lookup": bson.M{"from": mongostore.OutcomesCollection, "localField": "outbox.outcome._id", "foreignField": "_id", "as": "done"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ms []struct {
		Outbox []struct {
			Outcome struct {
				ID string `bson:"_id"`
			} `bson:"outcome"`
		} `bson:"outbox"`
		Done []struct {
			ID string `bson:"_id"`
		} `bson:"done"`
	}
	if err := cur.All(ctx, &ms); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		done := map[string]bool{}
		for _, d := range m.Done {
			done[d.ID] = true
		}
		for _, p := range m.Outbox {
			if !done[p.Outcome.ID] {
				n++
				break
			}
		}
	}
	return n
}

// checkEventOrder reads password.events: per member, as many distinct PIN
// set events as successful jobs (a re-published event keeps its id), and
// never an event of an earlier version first published after one of a
// later version (a copy of an event already published is a duplicate,
// which a consumer drops by its id).
func checkEventOrder(t *testing.T, e Env, successes map[string]int) {
	t.Helper()
	set := map[string]map[string]bool{} // loginId of the load members is "<n>@...", id "load-<n>"
	latest := map[string]int64{}
	late := 0
	seen := map[string]bool{}
	for _, m := range readAll(t, e.Brokers, kafkabus.TopicEvents) {
		ev, d := decodeEvent(t, m)
		if !strings.HasPrefix(d.MemberID, "load-") || seen[ev.ID()] {
			continue
		}
		seen[ev.ID()] = true
		parts := strings.Split(ev.ID(), ":") // "<member id>:<version>:<n>"
		v, err := strconv.ParseInt(parts[len(parts)-2], 10, 64)
		if err != nil {
			t.Fatalf("event id %s: %v", ev.ID(), err)
		}
		if v < latest[d.MemberID] {
			late++
			t.Errorf("member %s: event %s published after an event of version %d", d.MemberID, ev.ID(), latest[d.MemberID])
		}
		latest[d.MemberID] = max(latest[d.MemberID], v)
		if ev.Type() == string(pinreset.EventPINSet) {
			if set[d.MemberID] == nil {
				set[d.MemberID] = map[string]bool{}
			}
			set[d.MemberID][ev.ID()] = true
		}
	}
	missing := 0
	for login, n := range successes {
		id := "load-" + strings.TrimSuffix(strings.TrimPrefix(login, "load"), "@sandbox.example")
		if len(set[id]) != n {
			missing++
			t.Errorf("member %s: %d PIN set events, %d successful commands", id, len(set[id]), n)
		}
	}
	t.Logf("events: %d members announced, %d with a count off, %d published out of order", len(set), missing, late)
}

// goJobs runs jobs in the background (runJobs); done closes when all have
// ended, progress counts them.
func goJobs(t *testing.T, clients []*client, jobs []*job, parallel int, deadline time.Time) (*atomic.Int64, <-chan struct{}) {
	progress := new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runJobs(t, clients, jobs, parallel, deadline, progress)
	}()
	return progress, done
}

// waitProgress waits until n jobs have ended (for at most 2 minutes).
func waitProgress(t *testing.T, progress *atomic.Int64, n int64) {
	t.Helper()
	if !waitfor.Every(10*time.Millisecond, 2*time.Minute, func() bool { return progress.Load() >= n }) {
		t.Fatalf("%d jobs ended within 2 minutes, want %d", progress.Load(), n)
	}
}

// goJobsUntil is goJobs for a load whose length the test decides: no
// job starts once stop is closed, and started counts those that did (the
// first ones of jobs), so the load spans whatever the test does however
// fast the machine runs it.
func goJobsUntil(t *testing.T, clients []*client, jobs []*job, parallel int, deadline time.Time, stop <-chan struct{}) (progress, started *atomic.Int64, done <-chan struct{}) {
	progress, started = new(atomic.Int64), new(atomic.Int64)
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		runJobsUntil(t, clients, jobs, parallel, deadline, progress, started, stop)
	}()
	return progress, started, ch
}

func runJobs(t *testing.T, clients []*client, jobs []*job, parallel int, deadline time.Time, progress *atomic.Int64) {
	runJobsUntil(t, clients, jobs, parallel, deadline, progress, new(atomic.Int64), nil)
}

func runJobsUntil(t *testing.T, clients []*client, jobs []*job, parallel int, deadline time.Time, progress, started *atomic.Int64, stop <-chan struct{}) {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-stop:
			wg.Wait()
			return
		}
		select {
		case <-stop: // both were ready: stopping wins
			<-sem
			wg.Wait()
			return
		default:
		}
		started.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			finish(t, clients, j, deadline)
			progress.Add(1)
		}()
	}
	wg.Wait()
}

// TestKillWorkerMidLoad kills a worker with SIGKILL while 500 commands are
// in flight, then starts another: every command ends with exactly one
// outcome, and every client learns it.
func TestKillWorkerMidLoad(t *testing.T) {
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 100)
	_, c := startIngressClient(t, &e, map[string]string{"PINRESET_RESULT_WAIT": "2s"})
	clients := []*client{c}
	w1 := startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w1"}))

	jobs := makeJobs(members, 5)
	progress, done := goJobs(t, clients, jobs, len(jobs), time.Now().Add(3*time.Minute)) // all 500 in flight
	waitProgress(t, progress, 100)
	w1.kill()
	killedAt, atKill := time.Now(), progress.Load()
	w2 := startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w2"}))
	w2Admin := w2.adminAddr(t)
	if !waitfor.Until(time.Minute, func() bool { return metricSum(w2Admin, "pinreset_outcomes_total") > 0 }) {
		t.Fatal("the successor decided no command within a minute")
	}
	firstAfter := time.Since(killedAt)
	<-done
	t.Logf("killed the worker after %d of %d outcomes; its successor decided its first command %v after the kill; all done %v after the kill",
		atKill, len(jobs), firstAfter.Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond))
	// A decision w1 committed and did not deliver holds nobody up: its
	// command's redelivery, or the member's next decision, delivers it.
	t.Logf("%d commands parked meanwhile", len(parkings(t, e)))
	checkExactlyOnce(t, e, jobs)
}

// parking is one command parked on password.commands.retry, read from
// there as the worker wrote it.
type parking struct {
	key     string
	attempt int    // 1 when parked from password.commands, n when parked the nth time
	source  string // topic/partition/offset it was first parked from
	reason  string // the error it was parked for
	// inLane bounds the time the command spent in its lane before this
	// parking: from its publication on password.commands to its parking
	// (it may have queued part of that time).
	inLane time.Duration
}

// fromCommands reports whether the command was parked out of its lane on
// password.commands (its first parking).
func (p parking) fromCommands() bool {
	return p.attempt == 1 && strings.HasPrefix(p.source, kafkabus.TopicCommands+"/")
}

// parkings reads every parking on password.commands.retry.
func parkings(t *testing.T, e Env) []parking {
	t.Helper()
	published := map[string]time.Time{} // topic/partition/offset
	for _, m := range readAll(t, e.Brokers, kafkabus.TopicCommands) {
		published[fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)] = m.Time
	}
	var out []parking
	for _, m := range readAll(t, e.Brokers, kafkabus.TopicCommandsRetry) {
		p := parking{key: string(m.Key)}
		for _, h := range m.Headers {
			switch h.Key {
			case worker.HeaderRetryAttempt:
				p.attempt, _ = strconv.Atoi(string(h.Value))
			case worker.HeaderRetrySource:
				p.source = string(h.Value)
			case worker.HeaderRetryReason:
				p.reason = string(h.Value)
			}
		}
		if at, ok := published[p.source]; ok {
			p.inLane = m.Time.Sub(at)
		}
		out = append(out, p)
	}
	return out
}

// TestEventsInOrderUnderKills: 300 members each get a change and then,
// once the change is answered, a reset, while two workers are killed with
// SIGKILL ten times between them (each replaced at once). Every command is
// decided once, and no member's event of an earlier version is first
// published after one of a later version.
func TestEventsInOrderUnderKills(t *testing.T) {
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 300)
	_, c := startIngressClient(t, &e, map[string]string{"PINRESET_RESULT_WAIT": "2s"})
	env := func(id string) map[string]string {
		return processEnv(e, map[string]string{"PINRESET_WORKER_ID": id})
	}
	workers := []*process{startProcess(t, "worker", env("w0")), startProcess(t, "worker", env("w1"))}

	var jobs []*job
	done := make(chan struct{})
	var finished atomic.Int64
	go func() {
		defer close(done)
		sem := make(chan struct{}, 60)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, m := range members {
			change := &job{cid: kmheader.NewCorrelationID(time.Now(), nil), loginID: m, pin: "357913",
				body: []byte(fmt.Sprintf(`{"loginId":%q,"currentPassword":"240810","newPassword":"357913"}`, m))}
			reset := &job{cid: kmheader.NewCorrelationID(time.Now(), nil), loginID: m, pin: "802468",
				body: []byte(fmt.Sprintf(`{"loginId":%q,"newPassword":"802468","isResetPassword":true}`, m))}
			mu.Lock()
			jobs = append(jobs, change, reset)
			mu.Unlock()
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				deadline := time.Now().Add(4 * time.Minute)
				finish(t, []*client{c}, change, deadline)
				finish(t, []*client{c}, reset, deadline)
				finished.Add(2)
			}()
		}
		wg.Wait()
	}()
	for kill := 0; kill < 10; kill++ {
		time.Sleep(800 * time.Millisecond) // the pace of the kills under test, not a wait for anything
		i := kill % 2
		workers[i].kill()
		workers[i] = startProcess(t, "worker", env(fmt.Sprintf("w%d-%d", i, kill)))
		t.Logf("kill %d: worker %d after %d of %d commands", kill+1, i, finished.Load(), 2*len(members))
	}
	<-done
	for _, j := range jobs {
		if j.final.body.Code != "000_000" {
			t.Errorf("job %s (%s): %d %s, want 000_000", j.cid, j.loginID, j.final.status, j.final.body.Code)
		}
	}
	checkExactlyOnce(t, e, jobs)
}

// TestTwoIngressTwoWorkers runs two of each under load; one ingress is
// killed mid-wait and its clients retry on the other with the same
// correlation id and body.
func TestTwoIngressTwoWorkers(t *testing.T) {
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 40)
	over := map[string]string{"PINRESET_RESULT_WAIT": "3s"}
	i1, addr1 := startIngressProcess(t, e, over)
	_, addr2 := startIngressProcess(t, e, over)
	startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w1"}))
	startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w2"}))
	e.HTTPAddr = addr1
	c1 := newClient(t, e)
	e.HTTPAddr = addr2
	c2 := newClient(t, e)

	jobs := makeJobs(members, 5)
	progress, done := goJobs(t, []*client{c1, c2}, jobs, 60, time.Now().Add(3*time.Minute))
	waitProgress(t, progress, 50)
	i1.kill()
	t.Logf("killed ingress 1 after %d of %d outcomes", progress.Load(), len(jobs))
	<-done
	checkExactlyOnce(t, e, jobs)
}

// TestDatabaseOutage stops the database for 10 seconds under load: no
// command is lost, no 5xx but the documented 503, every outcome recorded once.
func TestDatabaseOutage(t *testing.T) {
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 40)
	_, c := startIngressClient(t, &e, map[string]string{"PINRESET_RESULT_WAIT": "2s"})
	w := startProcess(t, "worker", processEnv(e, nil))
	wAdmin := w.adminAddr(t)

	jobs := makeJobs(members, 5)
	// Fewer clients, so the load spans the outage.
	progress, done := goJobs(t, []*client{c}, jobs, 8, time.Now().Add(3*time.Minute))
	waitProgress(t, progress, 20)
	in.mongo.kill()
	killedAt := time.Now()
	t.Logf("database killed after %d outcomes", progress.Load())
	// Counted from when the worker sees the database gone: a command
	// finishing as it died is not one decided without it.
	if !waitfor.Until(5*time.Second, func() bool { s, _ := probe(wAdmin, "/readyz"); return s == 503 }) {
		t.Error("the worker's /readyz did not turn 503 with the database down")
	}
	decidedBefore := metricSum(wAdmin, "pinreset_outcomes_total")
	time.Sleep(time.Until(killedAt.Add(10 * time.Second))) // the outage under test
	if during := metricSum(wAdmin, "pinreset_outcomes_total") - decidedBefore; during > 0 {
		t.Errorf("the worker decided %v commands while the database was down", during)
	}
	restartedAt := time.Now() // the new database can serve before it prints that it is ready
	in.mongo = in.startPart(t, "mongo")
	t.Logf("database started again after %d outcomes", progress.Load())
	<-done
	t.Logf("all done %v after the restart began", time.Since(restartedAt).Round(time.Millisecond))
	var statuses []int
	for _, j := range jobs {
		if j.final.status >= 500 {
			statuses = append(statuses, j.final.status)
		}
	}
	sort.Ints(statuses)
	if len(statuses) > 0 {
		t.Errorf("final answers with 5xx: %v", statuses)
	}
	checkExactlyOnce(t, e, jobs)
}

// TestGracefulShutdown: on SIGTERM a worker finishes the commands in hand,
// commits and exits 0, and its successor carries on exactly once; an
// ingress stops accepting but answers the requests it holds, and exits 0.
func TestGracefulShutdown(t *testing.T) {
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 20)
	ing, c := startIngressClient(t, &e, map[string]string{"PINRESET_RESULT_WAIT": "5s"})
	ingAdmin := ing.adminAddr(t)
	w1 := startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w1"}))

	jobs := makeJobs(members, 5)
	progress, done := goJobs(t, []*client{c}, jobs[:80], 40, time.Now().Add(2*time.Minute))
	waitProgress(t, progress, 20)
	if err := w1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-w1.done
	// Exit 0: Run returned nil after draining and committing, the orderly stop.
	if code := w1.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("worker exited %d on SIGTERM, want 0", code)
	}
	w2 := startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w2"}))
	<-done

	// Twenty requests held by the ingress when it is told to stop all get
	// an HTTP answer. No worker runs, so each is held for the whole wait.
	if err := w2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-w2.done
	answers := make(chan error, 20)
	for _, j := range jobs[80:] {
		go func() {
			r, err := c.tryPost(j.body, j.cid)
			if err == nil && r.status != 202 {
				err = fmt.Errorf("status %d %+v, want 202", r.status, r.body)
			}
			answers <- err
		}()
	}
	if !waitfor.Until(10*time.Second, func() bool { return metricSum(ingAdmin, "pinreset_commands_in_flight") >= 20 }) {
		t.Fatalf("the ingress holds %v requests, want the 20 sent", metricSum(ingAdmin, "pinreset_commands_in_flight"))
	}
	if err := ing.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if err := <-answers; err != nil {
			t.Errorf("a request held at SIGTERM: %v", err)
		}
	}
	<-ing.done
	if code := ing.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("ingress exited %d on SIGTERM, want 0", code)
	}

	// A new ingress and worker decide the held commands, each once.
	_, c = startIngressClient(t, &e, nil)
	startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_WORKER_ID": "w3"}))
	runJobs(t, []*client{c}, jobs[80:], 20, time.Now().Add(time.Minute), progress)
	checkExactlyOnce(t, e, jobs)
}
