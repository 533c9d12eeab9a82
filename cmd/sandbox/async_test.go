package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/cmd/ingress/compose"
	workercompose "github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/ingress"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/waitfor"
	"github.com/kmwallet/pinreset/internal/wire"
	"github.com/kmwallet/pinreset/internal/worker"
)

// The tests here start the embedded infrastructure alone (-infra-only) and
// run the ingress and the worker themselves, with the same Run functions as
// cmd/ingress and cmd/worker, so that each can be started late or stopped.

func overlay(base func(string) string, over map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := over[k]; ok {
			return v
		}
		return base(k)
	}
}

// startIngress runs an ingress on a free port until the test ends.
func startIngress(t *testing.T, e Env, over map[string]string) string {
	t.Helper()
	cfg, err := config.LoadIngress(overlay(e.Getenv, over))
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", ""
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- ingress.Run(ctx, compose.Config(cfg), zap.NewNop(), func(a string) { addr <- a }) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-addr:
		return a
	case err := <-done:
		t.Fatalf("ingress: %v", err)
	}
	return ""
}

// startWorker runs a worker until stop is called or the test ends.
func startWorker(t *testing.T, e Env, over map[string]string) (stop func()) {
	t.Helper()
	cfg, err := config.LoadWorker(overlay(e.Getenv, over))
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminAddr = ""
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- workercompose.Run(ctx, cfg, zap.NewNop()) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// get asks for the outcome of cid.
func (c *client) get(cid string) response {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.url+"/"+cid, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	kmheader.Set(req.Header, kmheader.SignedStatusHeaders(c.creds, cid, time.Now(), "UTC"))
	r, err := c.send(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

func (c *client) tryGet(cid string) (response, error) {
	req, err := http.NewRequest(http.MethodGet, c.url+"/"+cid, nil)
	if err != nil {
		return response{}, err
	}
	kmheader.Set(req.Header, kmheader.SignedStatusHeaders(c.creds, cid, time.Now(), "UTC"))
	return c.send(req)
}

func memberVersion(t *testing.T, e Env, loginID string) int64 {
	t.Helper()
	return memberDoc(t, e, loginID).Version
}

// memberState is what the tests read back of a member document.
type memberState struct {
	Version int64  `bson:"version"`
	PINHash string `bson:"pinHash"`
	Recent  []struct {
		CID  string `bson:"cid"`
		Code string `bson:"code"`
	} `bson:"recent"`
}

func memberDoc(t *testing.T, e Env, loginID string) memberState {
	t.Helper()
	var doc memberState
	settledMember(t, e, loginID, &doc)
	return doc
}

// settledMember reads the member with loginID into out once its decisions
// are delivered. The client's answer comes right after the commit and the
// delivery (events, audit record, outcome record) a moment later, so a
// test reading the document right after an answer waits until the store
// reads no decision of the member as pending.
func settledMember(t *testing.T, e Env, loginID string, out any) {
	t.Helper()
	ctx := context.Background()
	store, err := mongostore.Open(mongostore.Config{URI: e.MongoURI, Database: e.Database})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(ctx)
	members := store.Database().Collection(mongostore.MembersCollection)
	pending := -1
	if !waitfor.Every(20*time.Millisecond, 10*time.Second, func() bool {
		raw, err := members.FindOne(ctx, bson.M{"loginId": loginID}).Raw()
		if err != nil {
			t.Fatal(err)
		}
		aspID, _ := raw.Lookup("aspId").StringValueOK()
		m, err := store.FindMember(ctx, aspID, loginID)
		if err != nil {
			t.Fatal(err)
		}
		pending = len(m.Outbox)
		return pending == 0
	}) {
		t.Fatalf("member with login %s: %d decisions undelivered after 10 s", loginID, pending)
	}
	if err := members.FindOne(ctx, bson.M{"loginId": loginID}).Decode(out); err != nil {
		t.Fatal(err)
	}
}

func TestIdempotencyByCorrelationID(t *testing.T) {
	e := startSandbox(t, nil)
	c := newClient(t, e)
	change := []byte(`{"loginId":"success@sandbox.example","currentPassword":"246810","newPassword":"581379"}`)
	cid := kmheader.NewCorrelationID(time.Now(), nil)

	first := c.post(change, cid, nil)
	if first.body.Code != "000_000" {
		t.Fatalf("first: %+v", first.body)
	}
	v := memberVersion(t, e, "success@sandbox.example")

	t.Run("same id, same body: the same outcome, applied once", func(t *testing.T) {
		// Applied twice, the change would now fail: 246810 is no longer the PIN.
		again := c.post(change, cid, nil)
		if again.status != 200 || again.body.Code != "000_000" {
			t.Fatalf("repeat: %d %+v, want the first outcome 200 000_000", again.status, again.body)
		}
		if got := memberVersion(t, e, "success@sandbox.example"); got != v {
			t.Fatalf("version %d -> %d: the repeat was applied again", v, got)
		}
	})
	t.Run("same id, different body: 409", func(t *testing.T) {
		other := []byte(`{"loginId":"success@sandbox.example","currentPassword":"581379","newPassword":"703152"}`)
		r := c.post(other, cid, nil)
		if r.status != 409 || r.body.Code != "000_409" {
			t.Fatalf("reuse: %d %+v, want 409 000_409", r.status, r.body)
		}
		if got := memberVersion(t, e, "success@sandbox.example"); got != v {
			t.Fatalf("version %d -> %d: the reused id was applied", v, got)
		}
	})
	t.Run("GET of an id never used: 404", func(t *testing.T) {
		// Status of an id this ASP never used.
		r := c.get(kmheader.NewCorrelationID(time.Now(), nil))
		if r.status != 404 || r.body.Code != "000_404" {
			t.Fatalf("unknown id: %d %+v, want 404 000_404", r.status, r.body)
		}
	})
	t.Run("GET answers the recorded outcome", func(t *testing.T) {
		r := c.get(cid)
		if r.status != 200 || r.body.Code != "000_000" {
			t.Fatalf("status: %d %+v, want 200 000_000", r.status, r.body)
		}
	})
	t.Run("concurrent duplicates get one outcome", func(t *testing.T) {
		reset := []byte(`{"loginId":"samepin@sandbox.example","newPassword":"703152","isResetPassword":true}`)
		cid := kmheader.NewCorrelationID(time.Now(), nil)
		before := memberVersion(t, e, "samepin@sandbox.example")
		results := make(chan response, 5)
		for range 5 {
			go func() { results <- c.post(reset, cid, nil) }()
		}
		for range 5 {
			if r := <-results; r.body.Code != "000_000" {
				t.Errorf("duplicate got %+v, want the one outcome 000_000", r.body)
			}
		}
		if after := memberVersion(t, e, "samepin@sandbox.example"); after != before+1 {
			t.Fatalf("version %d -> %d: want exactly one change", before, after)
		}
	})
}

// TestLateResultAndExpiry: with no worker running, the ingress answers 202
// with a Location; a worker started later decides the command, and GET
// answers its outcome. A command whose expiry passed before a worker reached
// it is not applied, and its outcome is the expired code.
func TestLateResultAndExpiry(t *testing.T) {
	e := startSandbox(t, nil, "-infra-only")
	// Each half has its own ingress, for the TTL it stamps on commands. The
	// late command's TTL leaves room for a worker that is slow to start (on
	// a loaded CI machine one took over 3 s, and the command expired); the
	// expired one's is short, and the test sleeps past it.
	e.HTTPAddr = startIngress(t, e, map[string]string{"PINRESET_RESULT_WAIT": "300ms", "PINRESET_COMMAND_TTL": "2m"})
	c := newClient(t, e)

	late := kmheader.NewCorrelationID(time.Now(), nil)
	r := c.post([]byte(`{"loginId":"success@sandbox.example","currentPassword":"246810","newPassword":"581379"}`), late, nil)
	if r.status != 202 || r.body.Code != "000_202" || r.header.Get("Location") != ingress.ResetPath+"/"+late {
		t.Fatalf("no worker: got %d %+v Location=%q, want 202 000_202 and a Location", r.status, r.body, r.header.Get("Location"))
	}
	if g := c.get(late); g.status != 202 {
		t.Fatalf("pending: GET got %d %+v, want 202", g.status, g.body)
	}
	stop := startWorker(t, e, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		g := c.get(late)
		if g.status == 200 && g.body.Code == "000_000" {
			break
		}
		if g.status != 202 || time.Now().After(deadline) {
			t.Fatalf("late result: GET got %d %+v, want 200 000_000 once decided", g.status, g.body)
		}
	}
	stop()

	e.HTTPAddr = startIngress(t, e, map[string]string{"PINRESET_RESULT_WAIT": "300ms", "PINRESET_COMMAND_TTL": "1s"})
	c = newClient(t, e)
	expired := kmheader.NewCorrelationID(time.Now(), nil)
	before := memberDoc(t, e, "samepin@sandbox.example")
	r = c.post([]byte(`{"loginId":"samepin@sandbox.example","newPassword":"703152","isResetPassword":true}`), expired, nil)
	if r.status != 202 {
		t.Fatalf("no worker: got %d %+v, want 202", r.status, r.body)
	}
	time.Sleep(1500 * time.Millisecond) // the command's TTL (1 s) runs out before a worker reads it: the expiry under test
	startWorker(t, e, nil)
	deadline = time.Now().Add(30 * time.Second)
	for {
		g := c.get(expired)
		if g.status == 408 && g.body.Code == "000_408" {
			break
		}
		if g.status != 202 || time.Now().After(deadline) {
			t.Fatalf("expired: GET got %d %+v, want 408 000_408", g.status, g.body)
		}
	}
	// Nothing applied: the PIN is the same; the member's history records
	// the expired outcome (every decision about a member is claimed on it,
	// so that two workers deciding it at once agree).
	after := memberDoc(t, e, "samepin@sandbox.example")
	if after.PINHash != before.PINHash {
		t.Fatalf("the PIN hash changed: an expired command was applied")
	}
	if n := len(after.Recent); n == 0 || after.Recent[n-1].CID != expired || after.Recent[n-1].Code != "000_408" {
		t.Errorf("member history %+v, want the expired command last, with 000_408", after.Recent)
	}
}

// TestPoisonCommands: undecodable and unopenable commands mixed with valid
// ones go to the DLQ with a reason; the valid ones complete; the partition
// is not blocked.
func TestPoisonCommands(t *testing.T) {
	e := startSandbox(t, nil)
	c := newClient(t, e)
	w := &kafka.Writer{Addr: kafka.TCP(e.Brokers...), Topic: kafkabus.TopicCommands, Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	poison := []kafka.Message{
		{Key: []byte("261125120000-aaaaaa1"), Value: []byte("not json")},
		{Key: []byte("261125120000-aaaaaa2"), Value: []byte(`{"v":2,"correlationId":"261125120000-aaaaaa2","aspId":"KMSANDBOXASP001","kind":"reset","acceptedAt":"2026-01-01T00:00:00Z","expiresAt":"2030-01-01T00:00:00Z","sealed":{"kid":"sbx1","nonce":"AAAA","ct":"AAAA"}}`)},
		{Key: []byte("261125120000-aaaaaa3"), Value: []byte(`{"v":9}`)},
		{Key: nil, Value: []byte(`{}`)},
		{Key: []byte{0xff, 0xfe, 'k'}, Value: []byte{0xc3, 0x28}}, // neither key nor value is UTF-8
	}
	var valid []string
	for i := range 2 * len(poison) {
		if i%2 == 0 {
			if err := w.WriteMessages(context.Background(), poison[i/2]); err != nil {
				t.Fatal(err)
			}
		}
		cid := kmheader.NewCorrelationID(time.Now(), nil)
		valid = append(valid, cid)
		r := c.post([]byte(fmt.Sprintf(`{"loginId":"samepin@sandbox.example","newPassword":"%06d","isResetPassword":true}`, 240810+i*1357)), cid, nil)
		if r.body.Code != "000_000" && r.body.Code != "001_044" {
			t.Errorf("valid command %d: %+v", i, r.body)
		}
	}
	var dlq []kafka.Message
	waitfor.Every(100*time.Millisecond, 20*time.Second, func() bool {
		dlq = readAll(t, e.Brokers, kafkabus.TopicCommandsDLQ)
		return len(dlq) >= len(poison)
	})
	if len(dlq) != len(poison) {
		t.Fatalf("DLQ holds %d messages, want %d", len(dlq), len(poison))
	}
	for _, m := range dlq {
		reason := ""
		for _, h := range m.Headers {
			if h.Key == worker.HeaderDLQReason {
				reason = string(h.Value)
			}
		}
		if !strings.Contains(reason, "poison") {
			t.Errorf("DLQ message %q has reason %q", m.Key, reason)
		}
	}
	// Each is audited once as rejected, under its correlation id when it
	// can be read, else under its key and place in the log.
	mc, err := mongo.Connect(options.Client().ApplyURI(e.MongoURI))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(context.Background())
	rejected := map[string]int{}
	rep, err := mongostore.NewAuditLog(mc.Database(e.Database)).Verify(context.Background(), func(r audit.Record) {
		if r.Code == "000_422" {
			rejected[r.CorrelationID]++
		}
	})
	if err != nil || !rep.OK() {
		t.Fatalf("audit trail: %+v %v", rep, err)
	}
	if len(rejected) != len(poison) {
		t.Errorf("audited rejections %v, want one for each of the %d poison messages", rejected, len(poison))
	}
	for cid, n := range rejected {
		if n != 1 {
			t.Errorf("%q audited %d times", cid, n)
		}
	}
}

// TestTamperedCommandIsDeadLettered: a command sealed by the real key and
// then changed in clear on Kafka (a change with a wrong current PIN turned
// into a reset, which would skip the PIN check) does not open: it is
// dead-lettered with the reason, its rejection (000_422) is its recorded
// outcome and audited once, and the member is left as it was.
func TestTamperedCommandIsDeadLettered(t *testing.T) {
	e := startSandbox(t, nil)
	c := newClient(t, e)
	ring, err := seal.ParseKeyring("PINRESET_SEAL_KEYS", strings.Split(e.Getenv("PINRESET_SEAL_KEYS"), ","))
	if err != nil {
		t.Fatal(err)
	}
	const login = "success@sandbox.example"
	before := memberVersion(t, e, login)
	cid := kmheader.NewCorrelationID(time.Now(), nil)
	now := time.Now().UTC()
	value, err := wire.EncodeCommand(pinreset.Command{CorrelationID: cid, RequestID: "0123456789abcdef", ASPID: c.creds.ASPID,
		Kind: pinreset.KindChange, LoginID: login, CurrentPIN: "000000", NewPIN: "703152", AcceptedAt: now, ExpiresAt: now.Add(time.Minute)}, ring)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(value, []byte(`"kind":"change"`), []byte(`"kind":"reset"`), 1)
	if bytes.Equal(tampered, value) {
		t.Fatalf("no kind to tamper with in %s", value)
	}
	w := &kafka.Writer{Addr: kafka.TCP(e.Brokers...), Topic: kafkabus.TopicCommands, Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte(cid), Value: tampered}); err != nil {
		t.Fatal(err)
	}
	var reason string
	waitfor.Every(100*time.Millisecond, 20*time.Second, func() bool {
		for _, m := range readAll(t, e.Brokers, kafkabus.TopicCommandsDLQ) {
			if string(m.Key) != cid {
				continue
			}
			for _, h := range m.Headers {
				if h.Key == worker.HeaderDLQReason {
					reason = string(h.Value)
				}
			}
		}
		return reason != ""
	})
	if !strings.Contains(reason, "open sealed part") {
		t.Fatalf("tampered command: DLQ reason %q, want it dead-lettered for not opening", reason)
	}
	if r := c.get(cid); r.status != 422 || r.body.Code != "000_422" {
		t.Errorf("GET of the tampered command: %d %+v, want the recorded 422 000_422", r.status, r.body)
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(e.MongoURI))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(context.Background())
	recs, err := mongostore.NewAuditLog(mc.Database(e.Database)).Find(context.Background(), cid, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Code != "000_422" {
		t.Errorf("audit records of the tampered command: %+v, want one 000_422", recs)
	}
	if after := memberVersion(t, e, login); after != before {
		t.Errorf("member version %d -> %d: the tampered command was applied", before, after)
	}
}

// TestRejectedCommandIsRecorded: a command the worker cannot open (sealed
// under the key id it holds, but with another secret: forged, or a key
// mixed up) is dead-lettered, and its rejection is the transaction's one
// recorded outcome: the client is told 422, a GET says 422, and a retry
// with the same correlation id says 422 without a decision. (A key id the
// worker does not hold is not this: it waits, parked, for the key;
// TestStuckCommandsAreParked.)
func TestRejectedCommandIsRecorded(t *testing.T) {
	e := startSandbox(t, nil, "-infra-only")
	id, _, _ := strings.Cut(e.Getenv("PINRESET_SEAL_KEYS"), ":")
	forged := id + ":" + strings.Repeat("A", 43) + "="
	addr := startIngress(t, e, map[string]string{"PINRESET_SEAL_KEYS": forged})
	e.HTTPAddr = addr
	startWorker(t, e, nil)
	c := newClient(t, e)
	cid := kmheader.NewCorrelationID(time.Now(), nil)
	body := []byte(`{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`)
	if r := c.post(body, cid, nil); r.status != 422 || r.body.Code != "000_422" {
		t.Fatalf("unopenable command: %d %+v, want 422 000_422", r.status, r.body)
	}
	if r := c.get(cid); r.status != 422 || r.body.Code != "000_422" {
		t.Fatalf("GET: %d %+v, want the recorded 422", r.status, r.body)
	}
	if r := c.post(body, cid, nil); r.status != 422 {
		t.Fatalf("retry with the same id: %d %+v, want the recorded 422", r.status, r.body)
	}
}
