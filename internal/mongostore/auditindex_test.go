package mongostore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/audit"
)

// TestOnceKeyNamesOnePair: two (chain, correlation id) pairs never share
// a once key, whatever NULs they hold.
func TestOnceKeyNamesOnePair(t *testing.T) {
	if got := onceKey("m:m1", "261201090000-0000001"); got != "m:m1\x00261201090000-0000001" {
		t.Errorf("onceKey = %q", got)
	}
	parts := []string{"", "a", "m:m1", "\x00", "a\x00", "\x00a", "a\x00b", "\x00\x00", "61", "6100", "\x0061", "m:m1\x00c", "6100\x00a"}
	seen := map[string][2]string{}
	for _, chain := range parts {
		for _, cid := range parts {
			k := onceKey(chain, cid)
			if prev, dup := seen[k]; dup {
				t.Errorf("onceKey(%q, %q) = onceKey(%q, %q) = %q", chain, cid, prev[0], prev[1], k)
			}
			seen[k] = [2]string{chain, cid}
		}
	}
}

// legacyDoc is r as a release before once stored it: every field but once.
func legacyDoc(t testing.TB, r audit.Record) bson.D {
	t.Helper()
	raw, err := bson.Marshal(toAuditDoc(r))
	if err != nil {
		t.Fatal(err)
	}
	var d bson.D
	if err := bson.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(d, func(e bson.E) bool { return e.Key == "once" })
}

// legacyTrail stores a trail as a release before once did: its indexes
// (the unique one on (chain, correlationId)) and n records without once,
// in member chains of up to 40 records, memberless chains and an
// operator's record with a note. It returns the records by _id.
func legacyTrail(t *testing.T, ctx context.Context, coll *mongo.Collection, n int) map[string]audit.Record {
	t.Helper()
	for _, ix := range []mongo.IndexModel{
		{Keys: bson.D{{Key: "chain", Value: 1}, {Key: "correlationId", Value: 1}}, Options: options.Index().SetName(legacyOnceIndex.Name).SetUnique(true)},
		{Keys: bson.D{{Key: "correlationId", Value: 1}}, Options: options.Index().SetName("correlation_id")},
		{Keys: bson.D{{Key: "memberId", Value: 1}}, Options: options.Index().SetName("member_id")},
		{Keys: bson.D{{Key: "chain", Value: 1}, {Key: "seq", Value: 1}}, Options: options.Index().SetName("chain_seq")},
	} {
		if _, err := coll.Indexes().CreateOne(ctx, ix); err != nil {
			t.Fatal(err)
		}
	}
	heads := map[string]audit.Record{}
	out := map[string]audit.Record{}
	var docs []any
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		cid := fmt.Sprintf("261201090000-%07d", i)
		var r audit.Record
		switch {
		case i%7 == 3:
			r = memberlessRec(cid, i)
		case i == n-1:
			r = audit.Record{ASPID: "KMSANDBOXASP001", Kind: audit.KindOperator, CorrelationID: cid + "@password.commands.dlq/0/7",
				Code: "purge", WorkerID: "pwctl:ops", Note: "poison message"}
		default:
			r = memberRec(fmt.Sprintf("m%03d", i/40), cid, "000_000")
		}
		r.At = at.Add(time.Duration(i) * time.Second)
		head := heads[audit.ChainOf(r)]
		r, err := audit.Link(r, head.Seq, head.Hash)
		if err != nil {
			t.Fatal(err)
		}
		heads[r.Chain] = r
		out[audit.ID(r.Chain, r.Seq)] = r
		docs = append(docs, legacyDoc(t, r))
		if len(docs) == 1000 || i == n-1 {
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				t.Fatal(err)
			}
			docs = nil
		}
	}
	return out
}

func indexNames(t *testing.T, ctx context.Context, l *AuditLog) []string {
	t.Helper()
	names, err := l.indexNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestAuditMigratesLegacyTrail: a trail stored before once, with the
// unique index on (chain, correlationId), is moved to once by
// EnsureIndexes run by two processes at once: every record gets its
// once, in batches, no hash changes, the trail verifies as before, the old
// index is gone, and once refuses a second record of an old command.
// Before the migration, a refusal by the old index is ErrRecorded too.
func TestAuditMigratesLegacyTrail(t *testing.T) {
	ctx, uri := testCtx(t), auditEngine(t)
	db := connect(t, uri).Database("legacy")
	coll := db.Collection(AuditCollection)
	const n = 2500 // three batches
	before := legacyTrail(t, ctx, coll, n)
	l := NewAuditLog(db)
	if rep := mustVerify(t, ctx, l); !rep.OK() || rep.Records != n {
		t.Fatalf("the legacy trail does not verify: %+v", rep)
	}

	// Not migrated yet: the old index refuses, and says so.
	old := before[audit.ID("m:m001", 3)]
	dup := memberRec("m001", old.CorrelationID, "000_000")
	if _, err := l.Append(ctx, dup); !errors.Is(err, audit.ErrRecorded) {
		t.Fatalf("a command the old index holds, appended again: %v, want ErrRecorded", err)
	}

	// Two workers start at once, each with its own connection.
	other := NewAuditLog(connect(t, uri).Database("legacy"))
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, w := range []*AuditLog{l, other} {
		wg.Go(func() { errs[i] = w.EnsureIndexes(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("EnsureIndexes at once: %v", err)
	}
	t.Logf("%d records migrated by two workers at once in %v", n, time.Since(start))

	names := indexNames(t, ctx, l)
	if !slices.Contains(names, auditOnceIndex.Name) || slices.Contains(names, legacyOnceIndex.Name) || slices.Contains(names, onceBackfillIndex) {
		t.Errorf("indexes after the migration: %v", names)
	}
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []auditDoc
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != n {
		t.Fatalf("%d records after the migration, want %d", len(docs), n)
	}
	for _, d := range docs {
		if d.Once != onceKey(d.Chain, d.CorrelationID) {
			t.Fatalf("record %s: once %q", d.ID, d.Once)
		}
		if r := d.record(); !reflect.DeepEqual(r, before[d.ID]) || r.Hash != audit.Hash(r) {
			t.Fatalf("record %s changed: %+v, was %+v", d.ID, r, before[d.ID])
		}
	}
	if rep := mustVerify(t, ctx, l); !rep.OK() || rep.Records != n {
		t.Fatalf("the migrated trail does not verify: %+v", rep)
	}
	if _, err := NewAuditLog(db).Append(ctx, dup); !errors.Is(err, audit.ErrRecorded) {
		t.Fatalf("a command of the old trail, appended again: %v, want ErrRecorded", err)
	}
	if _, err := l.Append(ctx, memberRec("m001", "261201090000-new0001", "000_000")); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatalf("EnsureIndexes again: %v", err)
	}
	t.Logf("EnsureIndexes on the migrated trail: %v", time.Since(start))
	if n, err := db.Collection(auditLeaseCollection).CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("%d leases left (%v)", n, err)
	}
}

// TestAuditMigrationResumes: a migration that stopped after dropping the
// old index (its mark still there) is finished by the next EnsureIndexes,
// also when an older release appended, meanwhile, a second record of a
// command whose first record had no once yet: that one is left without
// once, and the trail verifies.
func TestAuditMigrationResumes(t *testing.T) {
	ctx, db := testCtx(t), auditDB(t)
	coll := db.Collection(AuditCollection)
	before := legacyTrail(t, ctx, coll, 300)
	l := NewAuditLog(db)
	// What a worker that died in the backfill left: its lease, expired,
	// the mark, the old index gone, the first 100 records with once.
	if _, err := db.Collection(auditLeaseCollection).InsertOne(ctx, bson.D{{Key: "_id", Value: "once"}, {Key: "owner", Value: "dead"},
		{Key: "until", Value: time.Now().Add(-time.Second)}}); err != nil {
		t.Fatal(err)
	}
	if err := l.createIndex(ctx, auditOnceIndex.Name, bson.D{{Key: "once", Value: 1}},
		options.Index().SetUnique(true).SetPartialFilterExpression(bson.D{{Key: "once", Value: bson.D{{Key: "$exists", Value: true}}}})); err != nil {
		t.Fatal(err)
	}
	if err := l.createIndex(ctx, onceBackfillIndex, bson.D{{Key: "onceBackfillPending", Value: 1}}, options.Index().SetSparse(true)); err != nil {
		t.Fatal(err)
	}
	if err := l.dropIndex(ctx, legacyOnceIndex.Name); err != nil {
		t.Fatal(err)
	}
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(100))
	if err != nil {
		t.Fatal(err)
	}
	var first []auditDoc
	if err := cur.All(ctx, &first); err != nil {
		t.Fatal(err)
	}
	for _, d := range first {
		if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "once", Value: onceKey(d.Chain, d.CorrelationID)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	// An older release appends the last record of m:m005 again, as its
	// next record, without once: nothing refuses it.
	var head audit.Record
	for _, r := range before {
		if r.Chain == "m:m005" && r.Seq > head.Seq {
			head = r
		}
	}
	again, err := audit.Link(memberRec("m005", head.CorrelationID, "000_000"), head.Seq, head.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, legacyDoc(t, again)); err != nil {
		t.Fatal(err)
	}

	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatalf("EnsureIndexes after an interrupted migration: %v", err)
	}
	if names := indexNames(t, ctx, l); slices.Contains(names, onceBackfillIndex) || slices.Contains(names, legacyOnceIndex.Name) {
		t.Errorf("indexes after the migration: %v", names)
	}
	missing, err := coll.Find(ctx, bson.D{{Key: "once", Value: bson.D{{Key: "$exists", Value: false}}}})
	if err != nil {
		t.Fatal(err)
	}
	var left []auditDoc
	if err := missing.All(ctx, &left); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].CorrelationID != head.CorrelationID {
		t.Fatalf("records left without once: %+v, want only one of %s", left, head.CorrelationID)
	}
	if rep := mustVerify(t, ctx, l); !rep.OK() || rep.Records != 301 {
		t.Fatalf("the trail does not verify: %+v", rep)
	}
	if n, err := db.Collection(auditLeaseCollection).CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("%d leases left (%v)", n, err)
	}
}
