package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/events"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/sandbox"
)

func TestSignPrintsVerifiableHeaders(t *testing.T) {
	body := `{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"sign", "-asp-file", "../../deployments/sandbox/asps.json", "-body", body, "-zone", "KST"},
		strings.NewReader(""), &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
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
	if err := kafkabus.EnsureTopics(ctx, in.Brokers(), kafkabus.Topics(3, 1)); err != nil {
		t.Fatal(err)
	}
	p := kafkabus.NewProducer(in.Brokers(), kafkabus.ProducerConfig{})
	defer p.Close()
	msgs, err := events.Messages([]pinreset.Event{
		{ID: "m1:2:0", Type: pinreset.EventPINSet, MemberID: "m1", ASPID: "KMSANDBOXASP001", CorrelationID: "c1", Kind: pinreset.KindReset, At: time.Now()},
		{ID: "m2:5:0", Type: pinreset.EventLocked, MemberID: "m2", ASPID: "KMSANDBOXASP001", CorrelationID: "c2", At: time.Now(), LockedUntil: time.Now().Add(time.Hour)},
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
	if err := kafkabus.Ping(ctx, in.Brokers(), kafkabus.TopicCommands, kafkabus.TopicResults, kafkabus.TopicEvents, kafkabus.TopicCommandsDLQ); err != nil {
		t.Fatalf("topics after bootstrap: %v", err)
	}
}

func run_(ctx context.Context, args []string, stdout, stderr *bytes.Buffer) error {
	return run(ctx, args, strings.NewReader(""), stdout, stderr)
}
