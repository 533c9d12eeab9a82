package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

// TestAuditTrail: after a mixed run of 200 commands every outcome has one
// audit record, the chains verify (also with pwctl audit verify, a tool
// nobody here wrote the checks of twice), and a record edited directly in
// MongoDB is reported.
func TestAuditTrail(t *testing.T) {
	// Processes, so that FerretDB does not run under the race detector.
	in := startInfraProcesses(t)
	e := in.Env
	members := seedMembers(t, e, 40)
	_, addr := startIngressProcess(t, e, map[string]string{"PINRESET_RESULT_WAIT": "60s"})
	startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_LOCK_AFTER": "0"}))
	e.HTTPAddr = addr
	c := newClient(t, e)
	bodies := []string{
		`{"loginId":"%s","newPassword":"%06d","isResetPassword":true}`,
		`{"loginId":"%s","currentPassword":"999999","newPassword":"%06d"}`,
		`{"loginId":"nobody-%s","newPassword":"%06d","isResetPassword":true}`,
		`{"loginId":"%s","currentPassword":"240810","newPassword":"%06d"}`,
	}
	policy := pinreset.PINPolicy{Enabled: true}
	pin := 240000
	nextPIN := func() int { // distinct PINs the policy accepts: every request reaches the worker
		for pin++; policy.Check(fmt.Sprintf("%06d", pin)) != nil; pin++ {
		}
		return pin
	}
	pins := make([]int, 200)
	for i := range pins {
		pins[i] = nextPIN()
	}
	cids := make([]string, 200)
	codes := make([]string, 200)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range 200 {
		cids[i] = kmheader.NewCorrelationID(time.Now(), nil)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := c.post([]byte(fmt.Sprintf(bodies[i%4], members[i%len(members)], pins[i])), cids[i], nil)
			codes[i] = string(r.body.Code)
		}()
	}
	wg.Wait()

	mc, err := mongo.Connect(options.Client().ApplyURI(e.MongoURI))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(context.Background())
	trail := mongostore.NewAuditLog(mc.Database(e.Database))
	ctx := context.Background()
	// The worker appends a record after publishing the result, so the last
	// answers may reach the client before their records: read the trail
	// until it holds a record for every command, for a while.
	var records []audit.Record
	var rep audit.Report
	waitfor.Every(200*time.Millisecond, 15*time.Second, func() bool {
		records = records[:0]
		rep, err = trail.Verify(ctx, func(r audit.Record) { records = append(records, r) })
		if err != nil || !rep.OK() {
			t.Fatalf("verify after the run: %+v %v", rep, err)
		}
		return len(records) >= len(cids)
	})
	byCID := map[string][]audit.Record{}
	for _, r := range records {
		byCID[r.CorrelationID] = append(byCID[r.CorrelationID], r)
		if strings.Contains(r.LoginIDHash, "@") {
			t.Errorf("record %s holds a loginId", r.CorrelationID)
		}
	}
	for i, cid := range cids {
		got := byCID[cid]
		if len(got) != 1 || got[0].Code != codes[i] {
			t.Errorf("command %s (answered %s): %d audit records %+v, want exactly one with its code", cid, codes[i], len(got), got)
		}
	}
	t.Logf("%d commands, %d chains, %d records", len(cids), rep.Chains, rep.Records)

	pwctl := filepath.Join(binaries(t), "pwctl")
	out, err := exec.Command(pwctl, "audit", "verify", "-mongo-uri", e.MongoURI, "-db", e.Database).CombinedOutput()
	if err != nil {
		t.Fatalf("pwctl audit verify on an intact trail: %v\n%s", err, out)
	}
	out, err = exec.Command(pwctl, "audit", "show", "-mongo-uri", e.MongoURI, "-db", e.Database, "-correlation-id", cids[0]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), cids[0]) {
		t.Fatalf("pwctl audit show: %v\n%s", err, out)
	}

	// Tamper: turn a refusal into a success, directly in MongoDB.
	victim := byCID[cids[2]][0]
	res, err := mc.Database(e.Database).Collection(mongostore.AuditCollection).UpdateOne(ctx,
		bson.M{"chain": victim.Chain, "seq": victim.Seq}, bson.M{"$set": bson.M{"code": "000_000"}})
	if err != nil || res.ModifiedCount != 1 {
		t.Fatalf("tamper: %+v %v", res, err)
	}
	out, err = exec.Command(pwctl, "audit", "verify", "-mongo-uri", e.MongoURI, "-db", e.Database).CombinedOutput()
	if err == nil || !strings.Contains(string(out), fmt.Sprintf("%s seq %d", victim.Chain, victim.Seq)) {
		t.Fatalf("pwctl audit verify after tampering with %s seq %d: %v\n%s", victim.Chain, victim.Seq, err, out)
	}
}
