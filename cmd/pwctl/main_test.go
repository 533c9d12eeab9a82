package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/events"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/sandbox"
)

func TestSignPrintsVerifiableHeaders(t *testing.T) {
	body := `{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`
	hd := signed(t, "-asp-file", "../../deployments/sandbox/asps.json", "-body", body, "-zone", "KST")
	tok, _ := kmheader.ParseToken(hd.TranToken)
	creds, err := credentials("../../deployments/sandbox/asps.json", "")
	if err != nil {
		t.Fatal(err)
	}
	if !kmheader.VerifyMAC(tok, []byte(body), creds.SecretKey) {
		t.Fatal("the printed token's MAC does not verify over the body")
	}
	tran, tokTime, err := hd.Times()
	if err != nil || kmheader.CheckFresh(tran, tokTime, time.Now(), time.Minute) != nil {
		t.Fatalf("printed times are not fresh: %v %v %v", tran, tokTime, err)
	}
}

func TestUnknownCommandAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, nil, &out, &errb); err == nil || !strings.Contains(errb.String(), "usage") {
		t.Fatalf("unknown command: %v %q", err, errb.String())
	}
	if err := run(context.Background(), []string{"sign", "-h"}, nil, &out, &errb); err == nil || !strings.Contains(errb.String(), "-body") {
		t.Fatalf("sign -h: %v %q", err, errb.String())
	}
}

// TestEventsPrintsWhatWasPublished runs the example consumer against a real
// embedded broker.
func TestEventsPrintsWhatWasPublished(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded broker")
	}
	ctx := context.Background()
	in, err := sandbox.StartInfra(ctx, sandbox.InfraConfig{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", NoMongo: true})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := kafkabus.EnsureTopics(ctx, kafkabus.Cluster{Brokers: in.Brokers()}, kafkabus.Topics(3, 1, 1)); err != nil {
		t.Fatal(err)
	}
	p := kafkabus.NewProducer(kafkabus.Cluster{Brokers: in.Brokers()}, kafkabus.ProducerConfig{})
	defer p.Close()
	msgs, err := events.Messages([]pinreset.Event{
		{ID: "m1:2:0", Type: pinreset.EventPINSet, Version: 2, MemberID: "m1", ASPID: "KMSANDBOXASP001", CorrelationID: "c1", Kind: pinreset.KindReset, At: time.Now()},
		{ID: "m2:5:0", Type: pinreset.EventLocked, Version: 5, MemberID: "m2", ASPID: "KMSANDBOXASP001", CorrelationID: "c2", At: time.Now(), LockedUntil: time.Now().Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := run(ctx, []string{"events", "-brokers", strings.Join(in.Brokers(), ","), "-n", "2", "-json"}, nil, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e struct{ ID, Type string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got[e.ID] = e.Type
	}
	if got["m1:2:0"] != string(pinreset.EventPINSet) || got["m2:5:0"] != string(pinreset.EventLocked) {
		t.Fatalf("printed %v", got)
	}
}

// TestBootstrapIsIdempotent creates the topics and indexes on the embedded
// servers twice; the second run finds everything present.
func TestBootstrapIsIdempotent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded broker and database")
	}
	ctx := context.Background()
	in, err := sandbox.StartInfra(ctx, sandbox.InfraConfig{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", MongoAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for run := 1; run <= 2; run++ {
		var out, errb bytes.Buffer
		err := run_(ctx, []string{"bootstrap", "-brokers", strings.Join(in.Brokers(), ","), "-replication", "1", "-partitions", "4",
			"-mongo-uri", in.MongoURI(), "-db", "boot"}, &out, &errb)
		if err != nil {
			t.Fatalf("run %d: %v: %s", run, err, errb.String())
		}
		if !strings.Contains(out.String(), "topic password.commands: present") || !strings.Contains(out.String(), "indexes present") {
			t.Fatalf("run %d printed %q", run, out.String())
		}
	}
	if err := kafkabus.Ping(ctx, kafkabus.Cluster{Brokers: in.Brokers()}, kafkabus.TopicCommands, kafkabus.TopicResults, kafkabus.TopicEvents, kafkabus.TopicCommandsDLQ); err != nil {
		t.Fatalf("topics after bootstrap: %v", err)
	}
}

func run_(ctx context.Context, args []string, stdout, stderr *bytes.Buffer) error {
	return run(ctx, args, strings.NewReader(""), stdout, stderr)
}

// TestMembersImport: 10,000 lines with 100 bad ones: every good line is
// imported, every bad one reported with its line number, the run goes on
// past them, the exit is an error; a re-run imports nothing twice.
func TestMembersImport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded database")
	}
	ctx := context.Background()
	in, err := sandbox.StartInfra(ctx, sandbox.InfraConfig{DataDir: t.TempDir(), MongoAddr: "127.0.0.1:0", KafkaAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	env := map[string]string{
		"PINRESET_KAFKA_BROKERS": strings.Join(in.Brokers(), ","),
		"PINRESET_SEAL_KEYS":     "k1:" + strings.Repeat("A", 43) + "=", "PINRESET_PEPPERS": "p1:" + strings.Repeat("A", 43) + "=",
		"PINRESET_FINGERPRINT_KEYS":  "f1:" + strings.Repeat("A", 43) + "=",
		"PINRESET_ARGON2_MEMORY_KIB": "64", "PINRESET_ARGON2_TIME": "1", "PINRESET_MONGO_URI": in.MongoURI(),
	}
	var file strings.Builder
	bad := map[int]bool{}
	for n := 1; n <= 10000; n++ {
		switch {
		case n%100 == 7: // 100 bad lines of assorted kinds
			bad[n] = true
			fmt.Fprintf(&file, "%s\n", []string{`{"aspId":"KMSANDBOXASP001","loginId":"not-an-email","pin":"240810"}`,
				`{"aspId":"SHORT","loginId":"a@b.example","pin":"240810"}`, `{"aspId":"KMSANDBOXASP001","loginId":"c@d.example","pin":"111222"}`,
				`not json`}[n%4])
		default:
			fmt.Fprintf(&file, `{"aspId":"KMSANDBOXASP001","loginId":"imp%05d@sandbox.example","pin":"240810"}`+"\n", n)
		}
	}
	path := filepath.Join(t.TempDir(), "members.jsonl")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string { return env[k] }
	var out, errb bytes.Buffer
	err = membersCmdEnv(ctx, []string{"import", path}, getenv, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "100 line(s) refused") {
		t.Fatalf("import: %v, want 100 refused\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "9900 members imported (9900 new, 0 already there), 100 refused") {
		t.Fatalf("summary: %s", firstLines(out.String(), 3))
	}
	for n := range bad {
		if !strings.Contains(out.String(), fmt.Sprintf("line %d refused: ", n)) {
			t.Errorf("bad line %d not reported", n)
		}
	}
	if strings.Contains(out.String(), "240810") || strings.Contains(out.String(), "111222") {
		t.Errorf("the report shows a PIN")
	}
	if errb.Len() != 0 {
		t.Errorf("progress on standard error that is not a terminal: %q", firstLines(errb.String(), 1))
	}
	out.Reset()
	_ = membersCmdEnv(ctx, []string{"import", "-progress", path}, getenv, &out, &errb)
	if !strings.Contains(out.String(), "9900 members imported (0 new, 9900 already there)") {
		t.Fatalf("re-run: %s", firstLines(out.String(), 1))
	}
	if bar := errb.String(); !strings.Contains(bar, "importing members") || !strings.HasSuffix(bar, "\r") || strings.Contains(bar, "\n") {
		t.Errorf("-progress: want a bar on standard error, cleared at the end: %q", firstLines(bar, 1))
	}
	out.Reset()
	if err := membersCmdEnv(ctx, []string{"show", "-login", "imp00001@sandbox.example", "-mongo-uri", in.MongoURI()}, getenv, &out, &errb); err != nil ||
		!strings.Contains(out.String(), "version 1") || strings.Contains(out.String(), "argon2") {
		t.Fatalf("show: %v\n%s", err, out.String())
	}
	env["PWCTL_PIN"] = "581379"
	if err := membersCmdEnv(ctx, []string{"add", "-login", "added@sandbox.example"}, getenv, &out, &errb); err != nil {
		t.Fatalf("add: %v", err)
	}
	if err := membersCmdEnv(ctx, []string{"add", "-login", "added@sandbox.example"}, getenv, &out, &errb); err == nil {
		t.Fatal("adding the same login twice was accepted")
	}
	if err := membersCmdEnv(ctx, []string{"add", "-login", "weak@sandbox.example", "-pin", "123456"}, getenv, &out, &errb); err == nil ||
		strings.Contains(err.Error(), "123456") {
		t.Fatalf("a weak PIN: %v, want refused without echoing it", err)
	}

	// A damaged member (a malformed hash and a field of the wrong type) is
	// repaired through the decision path: decodable again at its next
	// version with the new PIN, its id and loginId kept; a password.changed
	// event, an operator's audit record with the reason (the trail
	// verifies), and an outcome record.
	store, err := mongostore.Open(mongostore.Config{URI: in.MongoURI(), Database: "pinreset"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(ctx)
	id, err := store.MemberIDOf(ctx, "KMSANDBOXASP001", "added@sandbox.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Database().Collection(mongostore.MembersCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "pinHash", Value: "$argon2id$broken"}, {Key: "failedAttempts", Value: "three"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.FindMemberByID(ctx, id); !errors.Is(err, pinreset.ErrDamagedMember) {
		t.Fatalf("the damaged member reads as %v", err)
	}
	if err := kafkabus.EnsureTopics(ctx, kafkabus.Cluster{Brokers: in.Brokers()}, kafkabus.Topics(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	env["PWCTL_PIN"] = "246813"
	out.Reset()
	if err := membersCmdEnv(ctx, []string{"repair", "-login", "added@sandbox.example", "-operator", "ops1"}, getenv, &out, &errb); err == nil {
		t.Fatal("a repair without a reason was accepted")
	}
	if err := membersCmdEnv(ctx, []string{"repair", "-login", "added@sandbox.example", "-operator", "ops1", "-reason", "hash damaged by a bad migration"}, getenv, &out, &errb); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if strings.Contains(out.String(), "246813") {
		t.Fatalf("repair printed the PIN: %s", out.String())
	}
	var trail []audit.Record
	rep, err := mongostore.NewAuditLog(store.Database()).Verify(ctx, func(r audit.Record) { trail = append(trail, r) })
	if err != nil || !rep.OK() {
		t.Fatalf("the audit trail after the repair: %+v, %v", rep, err)
	}
	var repaired *audit.Record
	for i, r := range trail {
		if r.MemberID == id && r.Kind == audit.KindOperator && r.Code == audit.CodeRepair {
			repaired = &trail[i]
		}
	}
	if repaired == nil || repaired.WorkerID != "pwctl:ops1" || repaired.Note != "hash damaged by a bad migration" {
		t.Fatalf("no operator's repair record of %s in %+v", id, trail)
	}
	if o, err := store.Outcome(ctx, "KMSANDBOXASP001", repaired.CorrelationID); err != nil || o.Code != pinreset.CodeSuccess || o.MemberID != id {
		t.Fatalf("the repair's outcome: %+v, %v", o, err)
	}
	evs := mustReadAll(t, ctx, kafkabus.Cluster{Brokers: in.Brokers()}, kafkabus.TopicEvents)
	if len(evs) != 1 || string(evs[0].Key) != id || !strings.HasSuffix(headerValue(evs[0], "ce_id"), ":2:0") || headerValue(evs[0], "ce_type") != string(pinreset.EventPINSet) {
		t.Fatalf("events after the repair: %+v, want one password.changed of %s at version 2", evs, id)
	}
	m, err := store.FindMemberByID(ctx, id)
	if err != nil || m.Version != 2 || m.LoginID != "added@sandbox.example" || m.FailedAttempts != 0 {
		t.Fatalf("repaired member %+v, %v", m, err)
	}
	cfg, err := config.LoadWorker(getenv)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := compose.NewHasher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := hasher.Verify("246813", m.PINHash); !ok || err != nil {
		t.Fatalf("the repaired member's PIN does not verify: %v %v", ok, err)
	}
	if err := membersCmdEnv(ctx, []string{"repair", "-login", "nobody@sandbox.example"}, getenv, &out, &errb); err == nil {
		t.Fatal("repair of an unknown member succeeded")
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// TestASPRegistryLifecycle: add prints a credential the registry accepts;
// rotate adds a second one, both authenticate; retire keeps only the new.
func TestASPRegistryLifecycle(t *testing.T) {
	file := filepath.Join(t.TempDir(), "asps.json")
	var out, errb bytes.Buffer
	cred := func() (string, string) {
		var ak, sk string
		for _, l := range strings.Split(out.String(), "\n") {
			if v, ok := strings.CutPrefix(l, "access key: "); ok {
				ak = v
			}
			if v, ok := strings.CutPrefix(l, "secret key: "); ok {
				sk = v
			}
		}
		out.Reset()
		return ak, sk
	}
	if err := run(context.Background(), []string{"asp", "add", "-file", file, "-id", "KMNEWASP0000001", "-name", "New"}, nil, &out, &errb); err != nil {
		t.Fatalf("add: %v %s", err, errb.String())
	}
	ak1, sk1 := cred()
	if err := run(context.Background(), []string{"asp", "add", "-file", file, "-id", "KMNEWASP0000001"}, nil, &out, &errb); err == nil {
		t.Fatal("adding the same ASP twice was accepted")
	}
	if err := run(context.Background(), []string{"asp", "rotate", "-file", file, "-id", "KMNEWASP0000001"}, nil, &out, &errb); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	ak2, sk2 := cred()
	reg, err := asp.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{ak1, sk1}, {ak2, sk2}} {
		if secrets, ok := reg.Authenticate("KMNEWASP0000001", c[0]); !ok || string(secrets[0]) != c[1] {
			t.Fatalf("credential %s does not authenticate during the rotation", c[0][:4])
		}
	}
	if err := run(context.Background(), []string{"asp", "retire", "-file", file, "-id", "KMNEWASP0000001"}, nil, &out, &errb); err != nil {
		t.Fatalf("retire: %v", err)
	}
	reg, _ = asp.Load(file)
	if _, ok := reg.Authenticate("KMNEWASP0000001", ak1); ok {
		t.Fatal("the retired credential still authenticates")
	}
	if _, ok := reg.Authenticate("KMNEWASP0000001", ak2); !ok {
		t.Fatal("the new credential no longer authenticates")
	}
}

// signed runs pwctl sign with args and returns the headers it printed.
func signed(t *testing.T, args ...string) kmheader.Headers {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(context.Background(), append([]string{"sign"}, args...), strings.NewReader(""), &out, &errb); err != nil {
		t.Fatalf("sign %v: %v: %s", args, err, errb.String())
	}
	h := http.Header{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		h.Set(k, v)
	}
	hd, err := kmheader.Parse(h, true)
	if err != nil {
		t.Fatalf("printed headers do not parse: %v\n%s", err, out.String())
	}
	return hd
}

// TestSignSchemesAndStatus: sign follows the ASP's registered scheme or
// -scheme, and signs a status GET over its path (KMV1) or its canonical
// request (KMV2), each verifying as the ingress verifies.
func TestSignSchemesAndStatus(t *testing.T) {
	sandbox := "../../deployments/sandbox/asps.json"
	creds, err := credentials(sandbox, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := asp.Parse(readTestFile(t, sandbox))
	if err != nil {
		t.Fatal(err)
	}
	f.ASPs[0].TokenSchemes = []pinreset.Scheme{pinreset.SchemeKMV1, pinreset.SchemeKMV2}
	migrating := filepath.Join(t.TempDir(), "asps.json")
	b, _ := json.Marshal(f)
	if err := os.WriteFile(migrating, b, 0o600); err != nil {
		t.Fatal(err)
	}
	body := `{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`
	cid := "260101093000-a1b2c3d"
	for _, tc := range []struct {
		rule   string
		args   []string
		scheme pinreset.Scheme
		req    kmheader.Request
	}{
		{"a KMV1 ASP's POST is signed KMV1 over the body", []string{"-asp-file", sandbox, "-body", body}, pinreset.SchemeKMV1,
			kmheader.Request{Method: http.MethodPost, Path: kmheader.ResetPath, Body: []byte(body)}},
		{"a KMV2 ASP's POST is signed KMV2 by default", []string{"-asp-file", migrating, "-body", body}, pinreset.SchemeKMV2,
			kmheader.Request{Method: http.MethodPost, Path: kmheader.ResetPath, Body: []byte(body)}},
		{"-scheme KMV1 overrides the registry", []string{"-asp-file", migrating, "-scheme", "KMV1", "-body", body}, pinreset.SchemeKMV1,
			kmheader.Request{Method: http.MethodPost, Path: kmheader.ResetPath, Body: []byte(body)}},
		{"-scheme KMV2 signs the whole request", []string{"-asp-file", sandbox, "-scheme", "KMV2", "-body", body}, pinreset.SchemeKMV2,
			kmheader.Request{Method: http.MethodPost, Path: kmheader.ResetPath, Body: []byte(body)}},
		{"a KMV1 status GET signs its path", []string{"-asp-file", sandbox, "-method", "GET", "-correlation-id", cid}, pinreset.SchemeKMV1,
			kmheader.Request{Method: http.MethodGet, Path: kmheader.ResetPath + "/" + cid}},
		{"a KMV2 status GET signs its canonical request", []string{"-asp-file", migrating, "-method", "GET", "-correlation-id", cid}, pinreset.SchemeKMV2,
			kmheader.Request{Method: http.MethodGet, Path: kmheader.ResetPath + "/" + cid}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			hd := signed(t, tc.args...)
			tok, err := kmheader.ParseToken(hd.TranToken)
			if err != nil || tok.Scheme != tc.scheme {
				t.Fatalf("token %v scheme %q, want %s", err, tok.Scheme, tc.scheme)
			}
			tc.req.Headers = hd
			if !kmheader.Verify(tok, tc.req, creds.SecretKey) {
				t.Fatalf("the printed token does not verify for %s %s", tc.req.Method, tc.req.Path)
			}
			if tc.req.Method == http.MethodGet && hd.CorrelationID != cid {
				t.Fatalf("GET signed with correlation id %q, want the one asked for %q", hd.CorrelationID, cid)
			}
		})
	}
	for _, args := range [][]string{
		{"-asp-file", sandbox, "-method", "GET"},                                        // no correlation id
		{"-asp-file", sandbox, "-method", "GET", "-correlation-id", cid, "-body", body}, // a GET has no body
		{"-asp-file", sandbox, "-method", "PUT", "-body", body},
		{"-asp-file", sandbox, "-scheme", "KMV3", "-body", body},
	} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), append([]string{"sign"}, args...), strings.NewReader(""), &out, &errb); err == nil {
			t.Errorf("sign %v was accepted", args)
		}
	}
}

func readTestFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestASPSchemes: add -schemes registers a KMV2 ASP; schemes opens and ends
// a migration; KMV1 alone is written as no tokenSchemes at all.
func TestASPSchemes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "asps.json")
	var out, errb bytes.Buffer
	pw := func(args ...string) error {
		out.Reset()
		errb.Reset()
		return run(context.Background(), append([]string{"asp"}, args...), nil, &out, &errb)
	}
	accepts := func(id string) (kmv1, kmv2 bool) {
		t.Helper()
		reg, err := asp.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		return reg.Accepts(id, pinreset.SchemeKMV1), reg.Accepts(id, pinreset.SchemeKMV2)
	}
	if err := pw("add", "-file", file, "-id", "KMV2ASP00000001", "-schemes", "KMV2"); err != nil {
		t.Fatalf("add -schemes KMV2: %v %s", err, errb.String())
	}
	if v1, v2 := accepts("KMV2ASP00000001"); v1 || !v2 {
		t.Fatalf("added with -schemes KMV2: accepts KMV1 %t, KMV2 %t", v1, v2)
	}
	if err := pw("add", "-file", file, "-id", "KMV1ASP00000001"); err != nil {
		t.Fatal(err)
	}
	if v1, v2 := accepts("KMV1ASP00000001"); !v1 || v2 {
		t.Fatalf("added without -schemes: accepts KMV1 %t, KMV2 %t, want KMV1 only", v1, v2)
	}
	if err := pw("schemes", "-file", file, "-id", "KMV1ASP00000001", "-schemes", "KMV1,KMV2"); err != nil {
		t.Fatal(err)
	}
	if v1, v2 := accepts("KMV1ASP00000001"); !v1 || !v2 {
		t.Fatalf("migrating: accepts KMV1 %t, KMV2 %t, want both", v1, v2)
	}
	if !strings.Contains(out.String(), "KMV1 KMV2") {
		t.Errorf("schemes printed %q, want the schemes set", out.String())
	}
	if err := pw("schemes", "-file", file, "-id", "KMV1ASP00000001", "-schemes", "KMV2"); err != nil {
		t.Fatal(err)
	}
	if v1, v2 := accepts("KMV1ASP00000001"); v1 || !v2 {
		t.Fatalf("migrated: accepts KMV1 %t, KMV2 %t, want KMV2 only", v1, v2)
	}
	if err := pw("schemes", "-file", file, "-id", "KMV2ASP00000001", "-schemes", "KMV1"); err != nil {
		t.Fatal(err)
	}
	if b := readTestFile(t, file); strings.Count(string(b), "tokenSchemes") != 1 {
		t.Fatalf("a KMV1 ASP is written with tokenSchemes (ingresses before KMV2 refuse unknown fields):\n%s", b)
	}
	for _, args := range [][]string{
		{"schemes", "-file", file, "-id", "KMV1ASP00000001"},                          // no -schemes
		{"schemes", "-file", file, "-id", "KMNOSUCHASP0001", "-schemes", "KMV2"},      // not registered
		{"schemes", "-file", file, "-id", "KMV1ASP00000001", "-schemes", "KMV3"},      // unknown
		{"schemes", "-file", file, "-id", "KMV1ASP00000001", "-schemes", "KMV2,KMV2"}, // twice
		{"add", "-file", file, "-id", "KMV3ASP00000001", "-schemes", "kmv2"},
	} {
		if err := pw(args...); err == nil {
			t.Errorf("asp %v was accepted", args)
		}
	}
}
