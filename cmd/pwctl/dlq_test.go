package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/freeaddr"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/sandbox"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/waitfor"
	"github.com/kmwallet/pinreset/internal/wire"
	"github.com/kmwallet/pinreset/internal/worker"
)

// Values planted where a careless tool would print them: in sealed parts,
// in clear fields of malformed commands, in headers, in a key and in a reason.
const (
	plantedPIN    = "581379"
	plantedOldPIN = "246813"
	plantedLogin  = "victim@sandbox.example"
	plantedToken  = "KMV1:2026120700000000:c2VjcmV0LW1hYy1vZi10aGUtdHJhbi10b2tlbi14eXo="
	plantedKey    = "AK9f3kLmQ2xZp7Rt1VbN8cWd4HsJ6yEu0GiOaTq5" // an access key, 40 characters
	testASP       = "KMSANDBOXASP001"
)

var plantedCI = strings.Repeat("Q2lUZXN0", 11) // 88 characters

func secretsIn(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{plantedPIN, plantedOldPIN, plantedLogin, plantedToken, "c2VjcmV0LW1hYy1vZi10aGUtdHJhbi10b2tlbi14eXo", plantedKey, plantedCI, "Bearer"} {
		if strings.Contains(out, s) {
			t.Errorf("%s prints a planted secret %.12q...:\n%s", what, s, out)
		}
	}
}

// TestQueues plants dead-lettered and parked commands the way the worker
// writes them (handler.go deadLetter, park.go Park) on the embedded broker
// and checks list, show, redrive and purge against them and the audit trail.
func TestQueues(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded broker and database")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	in, err := sandbox.StartInfra(ctx, sandbox.InfraConfig{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", MongoAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cluster := kafkabus.Cluster{Brokers: in.Brokers()}
	if err := kafkabus.EnsureTopics(ctx, cluster, kafkabus.Topics(3, 1, 1)); err != nil {
		t.Fatal(err)
	}
	ring, err := seal.NewKeyring(seal.Key{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	command := func(cid string) []byte {
		c := pinreset.NewCommand(cid, "0123456789abcdef", testASP,
			pinreset.Request{LoginID: plantedLogin, CI: plantedCI, CurrentPIN: plantedOldPIN, NewPIN: plantedPIN}, time.Now(), 2*time.Minute)
		v, err := wire.EncodeCommand(c, ring)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	const (
		cidSealed   = "261207004500-a1b2c3d" // a command whose sealed part the worker could not open
		cidForeign  = "261207004501-b1b2c3d" // an old-format command with its secrets in clear
		cidParked   = "261207004502-c1b2c3d" // sealed with a key the worker lacks
		cidStale    = "261207004503-d1b2c3d" // its redrive was interrupted
		traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	)
	dlqHeaders := func(reason, source string, extra ...kafka.Header) []kafka.Header {
		h := append([]kafka.Header{{Key: "traceparent", Value: []byte(traceparent)}, {Key: wire.HeaderRequestID, Value: []byte("0123456789abcdef")}}, extra...)
		return append(h, kafka.Header{Key: worker.HeaderDLQReason, Value: []byte(reason)},
			kafka.Header{Key: worker.HeaderDLQWorker, Value: []byte("worker-0")}, kafka.Header{Key: worker.HeaderDLQSource, Value: []byte(source)})
	}
	foreign := fmt.Sprintf(`{"v":1,"correlationId":%q,"aspId":%q,"kind":"change","loginId":%q,"ci":%q,"currentPassword":%q,"newPassword":%q}`,
		cidForeign, testASP, plantedLogin, plantedCI, plantedOldPIN, plantedPIN)
	p := kafkabus.NewProducer(cluster, kafkabus.ProducerConfig{})
	defer p.Close()
	// One partition: offsets 0, 1, 2, 3 in this order.
	if err := p.Publish(ctx,
		kafkabus.Message{Topic: kafkabus.TopicCommandsDLQ, Key: []byte(cidSealed), Value: command(cidSealed),
			Headers: dlqHeaders("poison message: open sealed part: seal: cannot open envelope", "password.commands/1/40",
				kafka.Header{Key: "x-km-tran-token", Value: []byte(plantedToken)}, kafka.Header{Key: "x-km-access-key", Value: []byte(plantedKey)})},
		kafkabus.Message{Topic: kafkabus.TopicCommandsDLQ, Key: []byte(cidForeign), Value: []byte(foreign),
			Headers: dlqHeaders(`poison message: decode: json: unknown field "loginId"`, "password.commands/2/41")},
		kafkabus.Message{Topic: kafkabus.TopicCommandsDLQ, Key: []byte(plantedPIN), Value: []byte(`{"kind":"` + plantedCI + `"}`),
			Headers: dlqHeaders(`poison message: kind "`+plantedCI+`" for `+plantedLogin+` `+plantedPIN, "password.commands/0/42")},
		kafkabus.Message{Topic: kafkabus.TopicCommandsDLQ, Key: []byte(cidStale), Value: command(cidStale),
			Headers: dlqHeaders("poison message: open sealed part: seal: cannot open envelope", "password.commands/0/43")},
	); err != nil {
		t.Fatal(err)
	}
	missing := fmt.Errorf("command %s: %w", cidParked, &pinreset.MissingKeyError{Kind: "seal", Err: fmt.Errorf("%w %q", seal.ErrUnknownKey, "k2")})
	if err := p.Publish(ctx, kafkabus.Message{Topic: kafkabus.TopicCommandsRetry, Key: []byte(cidParked), Value: command(cidParked),
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte(traceparent)}, {Key: "authorization", Value: []byte("Bearer " + plantedToken)},
			{Key: worker.HeaderRetryAttempt, Value: []byte("3")},
			{Key: worker.HeaderRetryNotBefore, Value: []byte(time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano))},
			{Key: worker.HeaderRetryReason, Value: []byte(missing.Error())},
			{Key: worker.HeaderRetrySource, Value: []byte("password.commands/2/7")}}}); err != nil {
		t.Fatal(err)
	}

	base := []string{"-brokers", strings.Join(in.Brokers(), ","), "-mongo-uri", in.MongoURI(), "-db", "queues"}
	pw := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		var out, errb bytes.Buffer
		flags := base
		if args[0] == "audit" {
			flags = base[2:] // no -brokers
		}
		err := run(ctx, append(args, flags...), strings.NewReader(""), &out, &errb)
		secretsIn(t, strings.Join(args, " "), out.String()+errb.String())
		return out.String(), err
	}
	mustPW := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := pw(t, args...)
		if err != nil {
			t.Fatalf("pwctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	commands := func(t *testing.T) []kafka.Message {
		t.Helper()
		var all []kafka.Message
		client := &kafka.Client{Addr: kafka.TCP(in.Brokers()...)}
		offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{kafkabus.TopicCommands: {
			kafka.LastOffsetOf(0), kafka.LastOffsetOf(1), kafka.LastOffsetOf(2)}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, po := range offs.Topics[kafkabus.TopicCommands] {
			got, err := readPartition(ctx, cluster, kafkabus.TopicCommands, po.Partition, 0, po.LastOffset)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, got...)
		}
		return all
	}
	dlq0, dlqForeign, dlqPoison, dlqStale := "password.commands.dlq/0/0", "password.commands.dlq/0/1", "password.commands.dlq/0/2", "password.commands.dlq/0/3"

	t.Run("list shows reason, age and ASP, and no secret", func(t *testing.T) {
		out := mustPW(t, "dlq", "list")
		for _, want := range []string{dlq0, cidSealed, testASP, "open sealed part", dlqForeign, "decode", dlqPoison, "kind", "4 not handled"} {
			if !strings.Contains(out, want) {
				t.Errorf("dlq list lacks %q:\n%s", want, out)
			}
		}
		out = mustPW(t, "dlq", "list", "-json")
		var n int
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var e struct{ ID, CorrelationID, ASPID, Reason, State string }
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if e.ID == dlq0 && (e.CorrelationID != cidSealed || e.ASPID != testASP || e.Reason != "open sealed part" || e.State != stateWaiting) {
				t.Errorf("-json: %s", line)
			}
			n++
		}
		if n != 4 {
			t.Errorf("-json printed %d messages, want 4", n)
		}
		out = mustPW(t, "parked", "list")
		for _, want := range []string{cidParked, "missing_key", testASP, "waiting"} {
			if !strings.Contains(out, want) {
				t.Errorf("parked list lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("show prints clear fields and known headers only", func(t *testing.T) {
		out := mustPW(t, "dlq", "show", "-id", dlq0)
		for _, want := range []string{cidSealed, testASP, "change", "key id k1", "not opened", traceparent, "x-km-tran-token", "not shown", "password.commands/1/40"} {
			if !strings.Contains(out, want) {
				t.Errorf("dlq show lacks %q:\n%s", want, out)
			}
		}
		out = mustPW(t, "dlq", "show", "-correlation-id", cidForeign)
		for _, want := range []string{"ci, currentPassword, loginId, newPassword (not in the command format; not shown)", `unknown field "loginId"`} {
			if !strings.Contains(out, want) {
				t.Errorf("dlq show of the old-format command lacks %q:\n%s", want, out)
			}
		}
		out = mustPW(t, "dlq", "show", "-id", "0/2", "-json")
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("the planted reason is not redacted:\n%s", out)
		}
		out = mustPW(t, "parked", "show", "-correlation-id", cidParked)
		for _, want := range []string{"missing_key", "authorization", "x-retry-attempt", "password.commands/2/7"} {
			if !strings.Contains(out, want) {
				t.Errorf("parked show lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("redrive once, keyed by the correlation id", func(t *testing.T) {
		out := mustPW(t, "dlq", "redrive", "-id", dlq0, "-operator", "alice", "-note", "seal keys aligned, INC-4711")
		if !strings.Contains(out, "1 redriven") {
			t.Fatalf("redrive: %s", out)
		}
		got := commands(t)
		if len(got) != 1 || string(got[0].Key) != cidSealed {
			t.Fatalf("password.commands holds %d messages after the redrive, want 1 keyed %s", len(got), cidSealed)
		}
		var dlqValue []byte
		for _, e := range mustRead(t, ctx, cluster, kafkabus.TopicCommandsDLQ) {
			if e.Offset == 0 {
				dlqValue = e.Value
			}
		}
		if !bytes.Equal(got[0].Value, dlqValue) {
			t.Error("the redriven value is not the original")
		}
		h := map[string]string{}
		for _, x := range got[0].Headers {
			h[x.Key] = string(x.Value)
		}
		if h["traceparent"] != traceparent || h[wire.HeaderRequestID] != "0123456789abcdef" || h[worker.HeaderDLQReason] != "" || h[worker.HeaderDLQSource] != "" {
			t.Errorf("redriven headers %v: want the trace and request id, no x-dlq-*", h)
		}
		out = mustPW(t, "dlq", "redrive", "-id", dlq0, "-operator", "bob", "-note", "again")
		if !strings.Contains(out, "already redriven by alice") || !strings.Contains(out, "0 redriven, 1 already handled") {
			t.Errorf("second redrive: %s", out)
		}
		if n := len(commands(t)); n != 1 {
			t.Fatalf("the second redrive produced: %d messages", n)
		}
		if out, err := pw(t, "dlq", "redrive", "-id", dlqPoison, "-operator", "alice"); err == nil || !strings.Contains(out, "purge it instead") {
			t.Errorf("redrive of a message whose ids are unreadable: %v\n%s", err, out)
		}
		out = mustPW(t, "parked", "redrive", "-reason", "missing_key", "-operator", "alice", "-note", "key k2 deployed")
		if !strings.Contains(out, "1 redriven") {
			t.Fatalf("parked redrive: %s", out)
		}
		if got := commands(t); len(got) != 2 {
			t.Fatalf("password.commands holds %d messages, want 2", len(got))
		}
		if out := mustPW(t, "parked", "list"); strings.Contains(out, cidParked) {
			t.Errorf("the redriven parked command is still listed:\n%s", out)
		}
	})

	t.Run("an interrupted redrive is completed by the next run, once", func(t *testing.T) {
		db := database(t, ctx, in.MongoURI())
		started := time.Now().Add(-2 * claimStale).UTC().Truncate(time.Millisecond)
		if _, err := db.Collection(mongostore.QueueActionsCollection).InsertOne(ctx, action{ID: dlqStale, Topic: kafkabus.TopicCommandsDLQ, CorrelationID: cidStale,
			Action: actRedrive, Operator: "carol", Note: "crashed", StartedAt: started}); err != nil {
			t.Fatal(err)
		}
		if out := mustPW(t, "dlq", "list"); !strings.Contains(out, dlqStale) || !strings.Contains(out, stateRedriving) {
			t.Errorf("list does not show the interrupted redrive:\n%s", out)
		}
		if out, err := pw(t, "dlq", "purge", "-id", dlqStale, "-reason", "no", "-operator", "dave"); err == nil || !strings.Contains(out, "claimed for a redrive") {
			t.Errorf("a purge of a message claimed for a redrive: %v\n%s", err, out)
		}
		before := len(commands(t))
		if out := mustPW(t, "dlq", "redrive", "-id", dlqStale, "-operator", "carol"); !strings.Contains(out, "1 redriven") {
			t.Fatalf("completing the interrupted redrive: %s", out)
		}
		if out := mustPW(t, "dlq", "redrive", "-id", dlqStale, "-operator", "carol"); !strings.Contains(out, "already redriven") {
			t.Fatalf("redrive after completion: %s", out)
		}
		if n := len(commands(t)); n != before+1 {
			t.Fatalf("%d messages produced, want 1", n-before)
		}
	})

	t.Run("purge hides a message from list, -all shows it", func(t *testing.T) {
		if _, err := pw(t, "dlq", "purge", "-id", dlqPoison, "-operator", "bob"); err == nil {
			t.Fatal("purge without -reason was accepted")
		}
		if _, err := pw(t, "dlq", "purge", "-id", dlqPoison, "-operator", "bob", "-reason", "member "+plantedLogin); err == nil {
			t.Fatal("a reason holding member data was accepted")
		}
		out := mustPW(t, "dlq", "purge", "-id", dlqPoison, "-operator", "bob", "-reason", "foreign producer, ACL fixed")
		if !strings.Contains(out, "1 purged") {
			t.Fatalf("purge: %s", out)
		}
		out = mustPW(t, "dlq", "list")
		if strings.Contains(out, dlqPoison) || !strings.Contains(out, "1 not handled") || !strings.Contains(out, "2 redriven, 1 purged") {
			t.Errorf("list after the purge:\n%s", out)
		}
		out = mustPW(t, "dlq", "list", "-all")
		if !strings.Contains(out, dlqPoison) || !strings.Contains(out, "purged (bob: foreign producer, ACL fixed)") ||
			!strings.Contains(out, "redriven (alice: seal keys aligned, INC-4711)") {
			t.Errorf("list -all:\n%s", out)
		}
		if out := mustPW(t, "dlq", "purge", "-id", dlqPoison, "-operator", "bob", "-reason", "again"); !strings.Contains(out, "already purged") {
			t.Errorf("second purge: %s", out)
		}
	})

	t.Run("every action is audited and the chain verifies", func(t *testing.T) {
		db := database(t, ctx, in.MongoURI())
		trail := mongostore.NewAuditLog(db)
		for _, c := range []struct{ cid, code, who, note string }{
			{cidSealed + "@" + dlq0, actRedrive, "pwctl:alice", "seal keys aligned, INC-4711"},
			{"@" + dlqPoison, actPurge, "pwctl:bob", "foreign producer, ACL fixed"},
			{cidStale + "@" + dlqStale, actRedrive, "pwctl:carol", "redrive; queued for: open sealed part"},
		} {
			recs, err := trail.Find(ctx, c.cid, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].Kind != audit.KindOperator || recs[0].Code != c.code || recs[0].WorkerID != c.who || recs[0].Note != c.note {
				t.Errorf("audit records of %s: %+v", c.cid, recs)
			}
		}
		if out := mustPW(t, "audit", "verify"); !strings.Contains(out, "ok: every chain verifies") {
			t.Fatalf("audit verify: %s", out)
		}
		// The note is inside the hash: editing it breaks the chain.
		if _, err := db.Collection(mongostore.AuditCollection).UpdateOne(ctx, bson.D{{Key: "correlationId", Value: "@" + dlqPoison}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "note", Value: "nothing to see"}}}}); err != nil {
			t.Fatal(err)
		}
		if out, err := pw(t, "audit", "verify"); err == nil || !strings.Contains(out, "BROKEN") {
			t.Fatalf("audit verify after editing a note: %v\n%s", err, out)
		}
	})
}

func mustRead(t *testing.T, ctx context.Context, cluster kafkabus.Cluster, topic string) []kafka.Message {
	t.Helper()
	got, err := readPartition(ctx, cluster, topic, 0, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func database(t *testing.T, ctx context.Context, uri string) *mongo.Database {
	t.Helper()
	store, err := mongostore.Open(mongostore.Config{URI: uri, Database: "queues"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(context.Background()) })
	return store.Database()
}

// TestRedriveAfterTheKeyIsDeployed: a command sealed with a key the worker
// lacks is parked; once a worker with the key runs, the redriven copy and
// the parked copy both reach it and the command completes once.
// parkedFixture runs the embedded servers with one member, and commands
// sealed with a key (k2) that a worker with k1 only lacks: it parks them.
type parkedFixture struct {
	t       *testing.T
	ctx     context.Context
	in      *sandbox.Infra
	cluster kafkabus.Cluster
	env     map[string]string
	ring    *seal.Keyring // k2, as the ingress that has it seals
	store   *mongostore.Store
	member  string // the member's id
}

const (
	fixtureK1    = "k1:" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	fixtureK2    = "k2:azItc2VhbC1rZXktMzItYnl0ZXMtbG9uZy0xMjM0NTY="
	fixtureLogin = "parked@sandbox.example"
)

func newParkedFixture(t *testing.T) *parkedFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the embedded broker and database and a worker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	in, err := sandbox.StartInfra(ctx, sandbox.InfraConfig{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", MongoAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	f := &parkedFixture{t: t, ctx: ctx, in: in, cluster: kafkabus.Cluster{Brokers: in.Brokers()}, env: map[string]string{
		"PINRESET_SEAL_KEYS": fixtureK1, "PINRESET_PEPPERS": "p1:" + strings.Repeat("A", 43) + "=",
		"PINRESET_FINGERPRINT_KEYS": "f1:" + strings.Repeat("A", 43) + "=", "PINRESET_ARGON2_MEMORY_KIB": "64", "PINRESET_ARGON2_TIME": "1",
		"PINRESET_MONGO_URI": in.MongoURI(), "PINRESET_KAFKA_BROKERS": strings.Join(in.Brokers(), ","), "PINRESET_TOPIC_PARTITIONS": "3",
		"PINRESET_WORKER_CONCURRENCY": "2", "PWCTL_PIN": "240810",
	}}
	var out, errb bytes.Buffer
	if err := membersCmdEnv(ctx, []string{"add", "-login", fixtureLogin}, f.getenv, &out, &errb); err != nil {
		t.Fatalf("members add: %v %s", err, errb.String())
	}
	if err := kafkabus.EnsureTopics(ctx, f.cluster, kafkabus.Topics(3, 1, 1)); err != nil {
		t.Fatal(err)
	}
	_, secret, _ := strings.Cut(fixtureK2, ":")
	key, _ := base64.StdEncoding.DecodeString(secret)
	if f.ring, err = seal.NewKeyring(seal.Key{ID: "k2", Secret: key}); err != nil {
		t.Fatal(err)
	}
	if f.store, err = mongostore.Open(mongostore.Config{URI: in.MongoURI(), Database: "pinreset"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close(context.Background()) })
	if f.member, err = f.store.MemberIDOf(ctx, testASP, fixtureLogin); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *parkedFixture) getenv(k string) string { return f.env[k] }

// startWorker runs a worker with sealKeys until stop or the test's end.
func (f *parkedFixture) startWorker(sealKeys string) (stop func()) {
	f.t.Helper()
	return f.startWorkerOn(sealKeys, "")
}

// startWorkerOn is startWorker with its admin listener on admin ("": none).
func (f *parkedFixture) startWorkerOn(sealKeys, admin string) (stop func()) {
	t := f.t
	t.Helper()
	f.env["PINRESET_SEAL_KEYS"] = sealKeys
	cfg, err := config.LoadWorker(f.getenv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminAddr = admin
	wctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- compose.Run(wctx, cfg, zap.NewNop()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// send publishes a reset of the member to newPIN under cid, sealed with k2.
func (f *parkedFixture) send(cid, newPIN string) {
	t := f.t
	t.Helper()
	c := pinreset.NewCommand(cid, "fedcba9876543210", testASP,
		pinreset.Request{LoginID: fixtureLogin, NewPIN: newPIN, Reset: true}, time.Now(), 2*time.Minute)
	v, err := wire.EncodeCommand(c, f.ring)
	if err != nil {
		t.Fatal(err)
	}
	p := kafkabus.NewProducer(f.cluster, kafkabus.ProducerConfig{})
	defer p.Close()
	if err := p.Publish(f.ctx, kafkabus.Message{Topic: kafkabus.TopicCommands, Key: []byte(cid), Value: v}); err != nil {
		t.Fatal(err)
	}
}

// parked runs pwctl parked with args against the fixture's servers.
func (f *parkedFixture) parked(args ...string) (string, error) {
	var out, errb bytes.Buffer
	base := []string{"-brokers", strings.Join(f.in.Brokers(), ","), "-mongo-uri", f.in.MongoURI()}
	err := run(f.ctx, append(append([]string{"parked"}, args...), base...), strings.NewReader(""), &out, &errb)
	return out.String() + errb.String(), err
}

// waitParked waits until cid is listed as parked for its missing key.
func (f *parkedFixture) waitParked(cid string) {
	f.t.Helper()
	waitFor(f.t, 60*time.Second, "the command parked", func() bool {
		out, err := f.parked("list")
		return err == nil && strings.Contains(out, cid) && strings.Contains(out, "missing_key")
	})
}

// results returns the codes published for cid.
func (f *parkedFixture) results(cid string) []pinreset.Code {
	f.t.Helper()
	var codes []pinreset.Code
	for _, r := range mustReadAll(f.t, f.ctx, f.cluster, kafkabus.TopicResults) {
		if string(r.Key) != cid {
			continue
		}
		res, err := wire.DecodeResult(r.Value)
		if err != nil {
			f.t.Fatal(err)
		}
		codes = append(codes, res.Code)
	}
	return codes
}

func (f *parkedFixture) version() int64 {
	f.t.Helper()
	m, err := f.store.FindMemberByID(f.ctx, f.member)
	if err != nil {
		f.t.Fatal(err)
	}
	return m.Version
}

func (f *parkedFixture) auditVerifies() {
	f.t.Helper()
	var out, errb bytes.Buffer
	if err := run(f.ctx, []string{"audit", "verify", "-mongo-uri", f.in.MongoURI()}, nil, &out, &errb); err != nil || !strings.Contains(out.String(), "ok: every chain verifies") {
		f.t.Errorf("audit verify: %v\n%s%s", err, out.String(), errb.String())
	}
}

func TestRedriveAfterTheKeyIsDeployed(t *testing.T) {
	f := newParkedFixture(t)
	const cid = "261207010000-e1e2e3e"
	f.send(cid, "703152")
	stop1 := f.startWorker(fixtureK1)
	f.waitParked(cid)
	stop1()
	// The key is deployed: redrive, then a worker with the key runs.
	if out, err := f.parked("redrive", "-correlation-id", cid, "-operator", "ops", "-note", "seal key k2 deployed"); err != nil || !strings.Contains(out, "1 redriven") {
		t.Fatalf("parked redrive: %v\n%s", err, out)
	}
	f.startWorker(fixtureK1 + "," + fixtureK2)
	waitFor(t, 60*time.Second, "the command completed", func() bool { return f.version() == 2 })
	// The parked copy, tried again by the worker, is answered from the record.
	waitFor(t, 60*time.Second, "the parked copy tried again", func() bool {
		out, err := f.parked("list")
		return err == nil && !strings.Contains(out, cid)
	})
	if v := f.version(); v != 2 {
		t.Fatalf("member after both copies: version %d; want 2 (one change)", v)
	}
	codes := f.results(cid)
	if len(codes) == 0 {
		t.Error("no result published")
	}
	for _, c := range codes {
		if c != pinreset.CodeSuccess {
			t.Errorf("results %v: want 000_000 for every copy", codes)
		}
	}
	f.auditVerifies()
}

// TestPurgeWithdrawsAParkedCommand: a purged parked command is ended by
// the worker's next try as rejected (000_422), and nothing applies it
// after, not even a worker that has its key.
func TestPurgeWithdrawsAParkedCommand(t *testing.T) {
	f := newParkedFixture(t)
	ctx := f.ctx
	const cid = "261207010000-f1f2f3f"
	f.send(cid, "703152")
	f.startWorker(fixtureK1)
	f.waitParked(cid)
	if out, err := f.parked("purge", "-correlation-id", cid, "-operator", "ops", "-reason", "ASP withdrew the request, INC-4711"); err != nil || !strings.Contains(out, "1 purged") {
		t.Fatalf("parked purge: %v\n%s", err, out)
	}
	waitFor(t, 60*time.Second, "the withdrawn command ended", func() bool {
		o, err := f.store.Outcome(ctx, testASP, cid)
		return err == nil && o.Code == pinreset.CodeRejected
	})
	// The client retries (the same message again) while one worker has the
	// key and one has not: whichever takes it answers the rejection.
	admin := freeaddr.For(t)
	f.startWorkerOn(fixtureK1+","+fixtureK2, admin)
	f.send(cid, "703152")
	waitFor(t, 60*time.Second, "the retry answered", func() bool { return len(f.results(cid)) == 2 })
	if codes := f.results(cid); codes[0] != pinreset.CodeRejected || codes[1] != pinreset.CodeRejected {
		t.Errorf("results %v: want 000_422 for both", codes)
	}
	if v := f.version(); v != 1 {
		t.Errorf("member version %d, want 1: nothing applied", v)
	}
	out, err := f.parked("list", "-all")
	if err != nil || strings.Count(out, cid) != 1 || !strings.Contains(out, "purged") {
		t.Errorf("parked list -all: %v\n%s\nwant the one purged copy and no later one", err, out)
	}
	f.auditVerifies()
	// The workers count the operator's purge (pwctl has no /metrics).
	waitFor(t, 60*time.Second, "the purge counted", func() bool {
		res, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return strings.Contains(string(b), `pinreset_queue_actions{action="purge",queue="parked"} 1`)
	})
	var trace, errb bytes.Buffer
	if err := traceCmdEnv(ctx, []string{"-asp", testASP, "-correlation-id", cid, "-brokers", strings.Join(f.in.Brokers(), ","),
		"-mongo-uri", f.in.MongoURI()}, f.getenv, &trace, &errb); err != nil || !strings.Contains(trace.String(), "purge") ||
		!strings.Contains(trace.String(), "withdrawn by an operator (parked, purged): 000_422") {
		t.Errorf("pwctl trace: %v %s\n%s\nwant the purge and the rejection", err, errb.String(), trace.String())
	}
	t.Logf("pwctl trace (purged):\n%s", trace.String())
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	if !waitfor.Every(500*time.Millisecond, d, ok) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func mustReadAll(t *testing.T, ctx context.Context, cluster kafkabus.Cluster, topic string) []kafka.Message {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(cluster.Brokers...)}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	var all []kafka.Message
	for _, part := range md.Topics[0].Partitions {
		offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(part.ID)}}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := readPartition(ctx, cluster, topic, part.ID, 0, offs.Topics[topic][0].LastOffset)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got...)
	}
	return all
}
