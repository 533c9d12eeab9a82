package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/waitfor"
	"github.com/kmwallet/pinreset/internal/wire"
)

// TestDeadLetteredCopyKeepsTheOutcome: a broken copy of a command already
// decided (as an ingress on an older command format would send on a
// client's retry) is dead-lettered, and the transaction keeps its recorded
// outcome everywhere a client looks: the result the copy gets, the status
// GET (answered from every ingress's cache of results) and a retry.
func TestDeadLetteredCopyKeepsTheOutcome(t *testing.T) {
	e := startSandbox(t, nil)
	c := newClient(t, e)
	body := []byte(`{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`)
	cid := kmheader.NewCorrelationID(time.Now(), nil)
	if r := c.post(body, cid, nil); r.status != 200 || r.body.Code != pinreset.CodeSuccess {
		t.Fatalf("first attempt: %d %+v", r.status, r.body)
	}

	ring, err := seal.ParseKeyring("PINRESET_SEAL_KEYS", strings.Split(e.Getenv("PINRESET_SEAL_KEYS"), ","))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	value, err := wire.EncodeCommand(pinreset.Command{CorrelationID: cid, RequestID: "0123456789abcdef", ASPID: c.creds.ASPID,
		Kind: pinreset.KindReset, LoginID: "success@sandbox.example", NewPIN: "703152", AcceptedAt: now, ExpiresAt: now.Add(time.Minute)}, ring)
	if err != nil {
		t.Fatal(err)
	}
	broken := bytes.Replace(value, []byte(`"kind":"reset"`), []byte(`"kind":"change"`), 1)
	w := &kafka.Writer{Addr: kafka.TCP(e.Brokers...), Topic: kafkabus.TopicCommands, Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte(cid), Value: broken}); err != nil {
		t.Fatal(err)
	}

	var codes []pinreset.Code
	waitfor.Every(100*time.Millisecond, 20*time.Second, func() bool {
		codes = codes[:0]
		for _, m := range readAll(t, e.Brokers, kafkabus.TopicResults) {
			if string(m.Key) != cid {
				continue
			}
			r, err := wire.DecodeResult(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			codes = append(codes, r.Code)
		}
		return len(codes) >= 2
	})
	if len(codes) != 2 || codes[0] != pinreset.CodeSuccess || codes[1] != pinreset.CodeSuccess {
		t.Fatalf("results of %s: %v, want 000_000 for the command and again for its dead-lettered copy", cid, codes)
	}
	if dlq := readAll(t, e.Brokers, kafkabus.TopicCommandsDLQ); len(dlq) != 1 || string(dlq[0].Key) != cid {
		t.Fatalf("DLQ holds %d messages, want the broken copy", len(dlq))
	}
	if r := c.get(cid); r.status != 200 || r.body.Code != pinreset.CodeSuccess {
		t.Errorf("status GET after the dead letter: %d %+v, want 200 000_000", r.status, r.body)
	}
	if r := c.post(body, cid, nil); r.status != 200 || r.body.Code != pinreset.CodeSuccess {
		t.Errorf("retry after the dead letter: %d %+v, want 200 000_000", r.status, r.body)
	}
}

// TestDamagedMemberEndsWithAnInternalFailure: a member whose stored hash is
// malformed (a bad import, a hand edit) is never decided; each command about
// it ends after the retry budget with 000_500 (no detail), recorded, so its
// client is never left with 202 for ever, while other members flow.
func TestDamagedMemberEndsWithAnInternalFailure(t *testing.T) {
	e := startSandbox(t, nil, "-infra-only")
	e.HTTPAddr = startIngress(t, e, map[string]string{"PINRESET_RESULT_WAIT": "1s"})
	startWorker(t, e, map[string]string{"PINRESET_RETRY_BUDGET": "2s", "PINRESET_COMMAND_TIMEOUT": "2s"})
	c := newClient(t, e)
	mc, err := mongo.Connect(options.Client().ApplyURI(e.MongoURI))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(context.Background())
	res, err := mc.Database(e.Database).Collection(mongostore.MembersCollection).UpdateOne(context.Background(),
		bson.D{{Key: "loginId", Value: "samepin@sandbox.example"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "pinHash", Value: "$argon2id$v=19$broken"}}}})
	if err != nil || res.MatchedCount != 1 {
		t.Fatalf("damage the member: %v %+v", err, res)
	}
	damaged := []byte(`{"loginId":"samepin@sandbox.example","newPassword":"703152","isResetPassword":true}`)
	cid := kmheader.NewCorrelationID(time.Now(), nil)
	r := c.post(damaged, cid, nil)
	if r.status != 202 && r.status != 500 {
		t.Fatalf("command about a damaged member: %d %+v, want 202 then 500, or 500", r.status, r.body)
	}
	// Another member's command is decided: within the result wait, or
	// after it when the machine is slow or the command shares a lane with
	// the damaged one (whose retry budget is 2 s).
	other := kmheader.NewCorrelationID(time.Now(), nil)
	ok := c.post([]byte(`{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`), other, nil)
	waitfor.Every(200*time.Millisecond, 30*time.Second, func() bool {
		if ok.status == 202 {
			ok = c.get(other)
		}
		return ok.status != 202
	})
	if ok.status != 200 {
		t.Fatalf("another member meanwhile: %d %+v", ok.status, ok.body)
	}
	var got response
	waitfor.Every(200*time.Millisecond, 30*time.Second, func() bool { got = c.get(cid); return got.status != 202 })
	if got.status != 500 || got.body.Code != pinreset.CodeInternal || got.body.Message != pinreset.CodeInternal.Message() {
		t.Fatalf("status of the damaged member's command: %d %+v, want 500 000_500 with no detail", got.status, got.body)
	}
	if again := c.post(damaged, cid, nil); again.status != 500 || again.body.Code != pinreset.CodeInternal {
		t.Fatalf("retry: %d %+v, want the recorded 000_500", again.status, again.body)
	}
}
