package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/cmd/ingress/compose"
	workercompose "github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/ingress"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/sandbox"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/wire"
)

// TestTraceFlags: the ids are required and checked, and a malformed one is
// not echoed (it could be anything pasted by mistake).
func TestTraceFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-asp", testASP},
		{"-correlation-id", "261207004500-a1b2c3d"},
		{"-asp", testASP, "-correlation-id", plantedPIN},
		{"-asp", plantedCI, "-correlation-id", "261207004500-a1b2c3d"},
		{"-asp", testASP, "-correlation-id", "261207004500-a1b2c3d", "extra"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"trace"}, args...), strings.NewReader(""), &out, &errb)
		if err == nil {
			t.Errorf("trace %v was accepted", args)
			continue
		}
		secretsIn(t, "trace "+strings.Join(args, " "), out.String()+errb.String()+err.Error())
	}
}

// TestTrace runs the worker and an ingress on the embedded broker and
// database, makes one transaction of each kind (through the ingress, or
// published as an ingress or a foreign producer would), and traces each,
// in text and as JSON. The member's loginId, CI and PINs, and a token in a
// header, are planted values that no output may contain.
func TestTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded broker and database, a worker and an ingress")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	in, err := sandbox.StartInfra(ctx, sandbox.InfraConfig{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", MongoAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	const (
		sealKey = "k1:" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
		k2      = "k2:azItc2VhbC1rZXktMzItYnl0ZXMtbG9uZy0xMjM0NTY=" // a key the worker lacks
	)
	env := map[string]string{
		"PINRESET_SEAL_KEYS": sealKey, "PINRESET_PEPPERS": "p1:" + strings.Repeat("A", 43) + "=",
		"PINRESET_FINGERPRINT_KEYS": "f1:" + strings.Repeat("A", 43) + "=", "PINRESET_ARGON2_MEMORY_KIB": "64", "PINRESET_ARGON2_TIME": "1",
		"PINRESET_MONGO_URI": in.MongoURI(), "PINRESET_KAFKA_BROKERS": strings.Join(in.Brokers(), ","), "PINRESET_TOPIC_PARTITIONS": "3",
		"PINRESET_WORKER_CONCURRENCY": "2", "PINRESET_WORKER_ID": "worker-3", "PINRESET_INGRESS_ID": "ingress-7",
		"PINRESET_ASP_FILE": "../../deployments/sandbox/asps.json", "PINRESET_HTTP_ADDR": "127.0.0.1:0", "PWCTL_PIN": plantedOldPIN,
	}
	getenv := func(k string) string { return env[k] }
	var out, errb bytes.Buffer
	if err := membersCmdEnv(ctx, []string{"add", "-login", plantedLogin, "-ci", plantedCI}, getenv, &out, &errb); err != nil {
		t.Fatalf("members add: %v %s", err, errb.String())
	}
	cluster := kafkabus.Cluster{Brokers: in.Brokers()}
	if err := kafkabus.EnsureTopics(ctx, cluster, kafkabus.Topics(3, 1, 1)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	wcfg, err := config.LoadWorker(getenv)
	if err != nil {
		t.Fatal(err)
	}
	wcfg.AdminAddr = ""
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := workercompose.Run(runCtx, wcfg, zap.NewNop()); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	icfg, err := config.LoadIngress(getenv)
	if err != nil {
		t.Fatal(err)
	}
	icfg.AdminAddr = ""
	addr := make(chan string, 1)
	go func() {
		defer wg.Done()
		if err := ingress.Run(runCtx, compose.Config(icfg), zap.NewNop(), func(a string) { addr <- a }); err != nil {
			t.Errorf("ingress: %v", err)
		}
	}()
	var api string
	select {
	case api = <-addr:
	case <-ctx.Done():
		t.Fatal("the ingress did not start")
	}

	store, err := mongostore.Open(mongostore.Config{URI: in.MongoURI(), Database: "pinreset"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	memberID, err := store.MemberIDOf(ctx, testASP, plantedLogin)
	if err != nil {
		t.Fatal(err)
	}
	// What else must never be printed: the tran tokens sent, the ASP's
	// keys, the member's PIN hash and the outcomes' fingerprints.
	creds, err := credentials("../../deployments/sandbox/asps.json", testASP)
	if err != nil {
		t.Fatal(err)
	}
	never := []string{creds.AccessKey, string(creds.SecretKey), "$argon2"}
	var neverMu sync.Mutex
	post := func(cid, body string) pinreset.Code {
		t.Helper()
		hd := kmheader.SignRequest(creds, http.MethodPost, kmheader.ResetPath, []byte(body), cid, time.Now(), "UTC")
		neverMu.Lock()
		never = append(never, string(hd.TranToken))
		neverMu.Unlock()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+api+kmheader.ResetPath, strings.NewReader(body))
		kmheader.Set(req.Header, hd)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b struct{ Code pinreset.Code }
		if err := json.NewDecoder(res.Body).Decode(&b); err != nil {
			t.Fatal(err)
		}
		return b.Code
	}
	ring := func(spec string) *seal.Keyring {
		t.Helper()
		r, err := seal.ParseKeyring("test", []string{spec})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// publish writes a command as an ingress does (request id and ingress
	// id headers), with extra headers.
	publish := func(cid string, value []byte, extra ...kafka.Header) {
		t.Helper()
		p := kafkabus.NewProducer(cluster, kafkabus.ProducerConfig{})
		defer p.Close()
		h := append([]kafka.Header{{Key: wire.HeaderRequestID, Value: []byte("00000000000000aa")}, {Key: wire.HeaderIngressID, Value: []byte("ingress-7")}}, extra...)
		if err := p.Publish(ctx, kafkabus.Message{Topic: kafkabus.TopicCommands, Key: []byte(cid), Value: value, Headers: h}); err != nil {
			t.Fatal(err)
		}
	}
	sealed := func(cid string, r pinreset.Request, acceptedAt time.Time, keys *seal.Keyring) []byte {
		t.Helper()
		v, err := wire.EncodeCommand(pinreset.NewCommand(cid, "00000000000000aa", testASP, r, acceptedAt, 2*time.Minute), keys)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	base := []string{"-brokers", strings.Join(in.Brokers(), ","), "-mongo-uri", in.MongoURI()}
	var lastJSON string // of the last trace, for the log
	// trace runs pwctl trace in text and as JSON, checks neither prints a
	// planted or forbidden value, and returns both.
	trace := func(t *testing.T, cid string) (string, traceReport, error) {
		t.Helper()
		var out, errb, jout bytes.Buffer
		err := run(ctx, append([]string{"trace", "-asp", testASP, "-correlation-id", cid}, base...), strings.NewReader(""), &out, &errb)
		jerr := run(ctx, append([]string{"trace", "-asp", testASP, "-correlation-id", cid, "-json"}, base...), strings.NewReader(""), &jout, &errb)
		if (err == nil) != (jerr == nil) {
			t.Fatalf("text and JSON runs disagree: %v, %v", err, jerr)
		}
		all := out.String() + jout.String() + errb.String()
		secretsIn(t, "trace "+cid, all)
		neverMu.Lock()
		for _, s := range never {
			if strings.Contains(all, s) {
				t.Errorf("trace %s prints a secret %.12q...", cid, s)
			}
		}
		neverMu.Unlock()
		lastJSON = jout.String()
		var rep traceReport
		if err := json.Unmarshal(jout.Bytes(), &rep); err != nil {
			t.Fatalf("-json printed no JSON object: %v\n%s", err, jout.String())
		}
		return out.String(), rep, err
	}
	// settled waits until the trace shows what a decided transaction
	// leaves (its events and audit records are written after its result).
	settled := func(t *testing.T, cid string, done func(traceReport) bool) (string, traceReport) {
		t.Helper()
		var (
			text string
			rep  traceReport
		)
		waitFor(t, 45*time.Second, "the trace of "+cid, func() bool {
			_, rep, _ = trace(t, cid)
			return done(rep)
		})
		// Once more, so that the text and the JSON show the same state.
		text, rep, _ = trace(t, cid)
		return text, rep
	}
	contains := func(t *testing.T, what, out string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, out)
			}
		}
	}
	fingerprint := func(cid string) {
		if o, err := store.Outcome(ctx, testASP, cid); err == nil && o.Fingerprint != "" {
			neverMu.Lock()
			never = append(never, o.Fingerprint)
			neverMu.Unlock()
		}
	}
	stamp := time.Now().UTC().Format("060102150405")
	cids := map[string]string{
		"success": stamp + "-a000001", "refused": stamp + "-a000002", "expired": stamp + "-a000003",
		"dead": stamp + "-a000004", "parked": stamp + "-a000005", "unknown": stamp + "-a0000ff",
	}

	t.Run("expired", func(t *testing.T) {
		cid := cids["expired"]
		publish(cid, sealed(cid, pinreset.Request{LoginID: plantedLogin, NewPIN: "703152", Reset: true}, time.Now().Add(-10*time.Minute), ring(sealKey)))
		text, rep := settled(t, cid, func(r traceReport) bool { return r.Outcome != nil && len(r.Results) > 0 && len(r.Audit.Records) > 0 })
		fingerprint(cid)
		t.Logf("pwctl trace (expired):\n%s", text)
		contains(t, "text", text, "expired: 000_408", "accepted by ingress ingress-7", "password.commands/", "password.results/", "decided", "audited", "not found:", "no event")
		if rep.Outcome.Code != "000_408" || rep.Results[0].Code != "000_408" || rep.Commands[0].IngressID != "ingress-7" || len(rep.Events) != 0 {
			t.Errorf("JSON: %+v", rep)
		}
	})

	t.Run("success", func(t *testing.T) {
		cid := cids["success"]
		code := post(cid, fmt.Sprintf(`{"loginId":%q,"ci":%q,"currentPassword":%q,"newPassword":%q}`, plantedLogin, plantedCI, plantedOldPIN, plantedPIN))
		if code != pinreset.CodeSuccess && code != pinreset.CodeAccepted {
			t.Fatalf("POST answered %s", code)
		}
		text, rep := settled(t, cid, func(r traceReport) bool { return len(r.Events) > 0 && len(r.Audit.Records) > 0 && len(r.Results) > 0 })
		fingerprint(cid)
		m, err := store.FindMemberByID(ctx, memberID)
		if err != nil {
			t.Fatal(err)
		}
		neverMu.Lock()
		never = append(never, string(m.PINHash))
		neverMu.Unlock()
		text, rep, err = trace(t, cid)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pwctl trace (success):\n%s\npwctl trace -json (success):\n%s", text, lastJSON)
		// The member's version: 1 when added, and the expired command's
		// outcome may have been recorded with it (one more version).
		v := m.Version
		contains(t, "text", text, "succeeded: 000_000 Success.", "change accepted by ingress ingress-7 (request ", "password.commands/",
			fmt.Sprintf("password.changed (change), member %s version %d, event %s:%d:0", memberID, v, memberID, v), "audit m:"+memberID+" seq ",
			"m:"+memberID+": verifies", "000_000 Success. (change, member "+memberID+", by worker-3)", "change 000_000, member "+memberID+", by worker-3")
		if o := rep.Outcome; !rep.Found || o == nil || o.Code != "000_000" || o.MemberID != memberID || o.WorkerID != "worker-3" {
			t.Errorf("JSON outcome: %+v", o)
		}
		if len(rep.Commands) != 1 || rep.Commands[0].IngressID != "ingress-7" || rep.Commands[0].Kind != "change" || rep.Commands[0].RequestID == "" ||
			rep.Commands[0].ReadByWorkers == nil || !*rep.Commands[0].ReadByWorkers {
			t.Errorf("JSON commands: %+v", rep.Commands)
		}
		if len(rep.Events) != 1 || rep.Events[0].MemberVersion != v || rep.Events[0].Type != string(pinreset.EventPINSet) || rep.Events[0].Kind != "change" {
			t.Errorf("JSON events: %+v", rep.Events)
		}
		if len(rep.Audit.Chains) != 1 || rep.Audit.Chains[0].Verified == nil || !*rep.Audit.Chains[0].Verified {
			t.Errorf("JSON audit chains: %+v", rep.Audit)
		}
		if len(rep.Results) == 0 || rep.Results[0].Code != "000_000" || rep.Results[0].RequestID != rep.Commands[0].RequestID {
			t.Errorf("JSON results: %+v", rep.Results)
		}
		for i := 1; i < len(rep.Timeline); i++ {
			if rep.Timeline[i].At.Before(rep.Timeline[i-1].At) {
				t.Errorf("timeline out of order at %d: %+v", i, rep.Timeline)
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		cid := cids["refused"]
		// A wrong current PIN (the member's is plantedPIN now).
		code := post(cid, fmt.Sprintf(`{"loginId":%q,"currentPassword":%q,"newPassword":"703152"}`, plantedLogin, plantedOldPIN))
		if code != pinreset.CodeInvalidUserInfo && code != pinreset.CodeAccepted {
			t.Fatalf("POST answered %s", code)
		}
		text, rep := settled(t, cid, func(r traceReport) bool { return r.Outcome != nil && len(r.Audit.Records) > 0 && len(r.Results) > 0 })
		fingerprint(cid)
		t.Logf("pwctl trace (refused):\n%s", text)
		contains(t, "text", text, "refused: 001_035 Invalid user info", "accepted by ingress ingress-7", "change 001_035", "verifies",
			"no event of this correlation id")
		if rep.Outcome.Code != "001_035" || rep.Outcome.MemberID != memberID || len(rep.Events) != 0 || len(rep.Audit.Records) != 1 {
			t.Errorf("JSON: outcome %+v, events %+v, audit %+v", rep.Outcome, rep.Events, rep.Audit)
		}
	})

	t.Run("dead-lettered", func(t *testing.T) {
		cid := cids["dead"]
		// An old-format command with its secrets in clear, and a token in
		// a header: not decodable, its ids readable.
		foreign := fmt.Sprintf(`{"v":1,"correlationId":%q,"aspId":%q,"kind":"change","loginId":%q,"ci":%q,"currentPassword":%q,"newPassword":%q}`,
			cid, testASP, plantedLogin, plantedCI, plantedOldPIN, plantedPIN)
		publish(cid, []byte(foreign), kafka.Header{Key: "x-km-tran-token", Value: []byte(plantedToken)},
			kafka.Header{Key: "authorization", Value: []byte("Bearer " + plantedToken)})
		text, rep := settled(t, cid, func(r traceReport) bool {
			return len(r.DLQ) > 0 && r.Outcome != nil && len(r.Results) > 0 && len(r.Audit.Records) > 0
		})
		t.Logf("pwctl trace (dead-lettered):\n%s", text)
		contains(t, "text", text, "dead-lettered: 000_422", "password.commands.dlq/0/", "by worker worker-3, from password.commands/",
			"reason: poison message", "state waiting", "accepted by ingress ingress-7")
		if rep.Outcome.Code != "000_422" || rep.DLQ[0].Reason == "" || rep.DLQ[0].Source == "" || rep.Results[0].Code != "000_422" {
			t.Errorf("JSON: outcome %+v, dlq %+v, results %+v", rep.Outcome, rep.DLQ, rep.Results)
		}
	})

	t.Run("parked", func(t *testing.T) {
		cid := cids["parked"]
		publish(cid, sealed(cid, pinreset.Request{LoginID: plantedLogin, NewPIN: "703152", Reset: true}, time.Now(), ring(k2)))
		text, rep := settled(t, cid, func(r traceReport) bool { return len(r.Parked) > 0 && r.Marked })
		t.Logf("pwctl trace (parked):\n%s", text)
		contains(t, "text", text, "parked: no outcome yet", "password.commands.retry/", "missing_key", "no outcome recorded for ASP "+testASP+": the command is parked")
		if rep.Outcome != nil || rep.Parked[0].Reason != "missing_key" || rep.Parked[0].Attempt < 1 {
			t.Errorf("JSON: outcome %+v, parked %+v", rep.Outcome, rep.Parked)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		text, rep, err := trace(t, cids["unknown"])
		if !errors.Is(err, errNoTransaction) {
			t.Fatalf("trace of an unknown transaction: %v, want %v", err, errNoTransaction)
		}
		t.Logf("pwctl trace (unknown):\n%s", text)
		contains(t, "text", text, "no such transaction", "no command on password.commands", "nothing was removed by retention",
			"no outcome recorded", "no result on password.results", "no audit record")
		if rep.Found || rep.Outcome != nil || len(rep.Commands)+len(rep.Results)+len(rep.Timeline) != 0 || len(rep.NotFound) < 4 {
			t.Errorf("JSON: %+v", rep)
		}
	})
}
