package mongostore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestStoreQueriesUseIndexes: every filter the service sends, asked of the
// embedded engine with explain, is served by an index, never by reading
// the whole collection. On small data the planner would be as fast either
// way, which is why a missing index only shows at a platform's size; the
// plan shows it here. Each query is the filter the code sends (same fields,
// same operators).
func TestStoreQueriesUseIndexes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded database (not with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, store := startStore(t, "indexes")
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mongostore.NewAuditLog(store.Database()).EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	// A collection that does not exist yet is planned as an empty table:
	// give each its first document.
	if err := store.MarkParked(ctx, "KMTESTASP000001", "261201120000-0000009", "transient", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Record(ctx, pinreset.Outcome{ASPID: "KMTESTASP000001", CorrelationID: "261201120000-0000009", Code: pinreset.CodeUserNotFound}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		what, coll string
		filter     bson.D
		sort       bson.D
	}{
		{"member by ASP and loginId (command path)", mongostore.MembersCollection, mongostore.LoginFilter("KMTESTASP000001", "a@b.example"), nil},
		{"members without aspLogin (every EnsureIndexes)", mongostore.MembersCollection, bson.D{{Key: "aspLogin", Value: bson.D{{Key: "$exists", Value: false}}}}, nil},
		{"member by id", mongostore.MembersCollection, bson.D{{Key: "_id", Value: "m1"}}, nil},
		{"member by id and version (a decision's commit, the relay's prune)", mongostore.MembersCollection, bson.D{{Key: "_id", Value: "m1"}, {Key: "version", Value: int64(3)}}, nil},
		{"members with undelivered decisions (relay)", mongostore.MembersCollection, bson.D{{Key: "outbox.at", Value: bson.D{{Key: "$lt", Value: time.Now()}}}}, nil},
		{"outcome by transaction (status query)", mongostore.OutcomesCollection, bson.D{{Key: "_id", Value: "KMTESTASP000001:261201120000-0000001"}}, nil},
		{"retention sweep of outcomes", mongostore.OutcomesCollection, bson.D{{Key: "completedAt", Value: bson.D{{Key: "$lt", Value: time.Now()}}}}, nil},
		{"a retention sweep's slice of outcomes", mongostore.OutcomesCollection, bson.D{{Key: "completedAt", Value: bson.D{{Key: "$gte", Value: time.Now().Add(-time.Hour)}, {Key: "$lt", Value: time.Now()}}}}, nil},
		{"parked mark", mongostore.ParkedCollection, bson.D{{Key: "_id", Value: "KMTESTASP000001:261201120000-0000001"}}, nil},
		{"withdrawal of a parked command", mongostore.ParkedCollection, bson.D{{Key: "_id", Value: "KMTESTASP000001:261201120000-0000001"},
			{Key: "withdrawnAt", Value: bson.D{{Key: "$exists", Value: false}}}}, nil},
		{"retention sweep of parked marks", mongostore.ParkedCollection, bson.D{{Key: "parkedAt", Value: bson.D{{Key: "$lt", Value: time.Now()}}}}, nil},
		{"a retention sweep's slice of parked marks", mongostore.ParkedCollection, bson.D{{Key: "parkedAt", Value: bson.D{{Key: "$gte", Value: time.Now().Add(-time.Hour)}, {Key: "$lt", Value: time.Now()}}}}, nil},
		{"audit record by chain and seq", mongostore.AuditCollection, bson.D{{Key: "_id", Value: "m:m1:1"}}, nil},
		{"audit records of a transaction", mongostore.AuditCollection, bson.D{{Key: "correlationId", Value: "261201120000-0000001"}}, nil},
		{"audit records of a member", mongostore.AuditCollection, bson.D{{Key: "memberId", Value: "m1"}}, nil},
	} {
		t.Run(q.what, func(t *testing.T) {
			find := bson.D{{Key: "find", Value: q.coll}, {Key: "filter", Value: q.filter}}
			var out bson.Raw
			if err := store.Database().RunCommand(ctx, bson.D{{Key: "explain", Value: find}}).Decode(&out); err != nil {
				t.Fatalf("explain: %v", err)
			}
			plan, err := out.LookupErr("queryPlanner")
			if err != nil {
				t.Fatalf("explain has no queryPlanner: %s", out)
			}
			if !usesIndex(plan) {
				t.Errorf("%s on %s is not served by an index:\n%s", q.filter, q.coll, plan)
			}
		})
	}
}

// usesIndex reports whether an explained plan reads through an index on
// the filter's fields: MongoDB's IXSCAN or IDHACK stage, or in DocumentDB's
// PostgreSQL plan an index condition on a document field (an OPERATOR on
// the BSON, or object_id for _id). DocumentDB also scans a whole
// collection through its _id_ index with nothing but the shard key as the
// condition; that is not an index serving the filter.
func usesIndex(v bson.RawValue) bool {
	var walk func(bson.RawValue) bool
	walk = func(v bson.RawValue) bool {
		switch v.Type {
		case bson.TypeEmbeddedDocument, bson.TypeArray:
			var elems []bson.RawValue
			if v.Type == bson.TypeEmbeddedDocument {
				es, _ := v.Document().Elements()
				for _, e := range es {
					if e.Key() == "Index Cond" {
						cond := e.Value().StringValue()
						if strings.Contains(cond, "OPERATOR(") || strings.Contains(cond, "object_id") {
							return true
						}
					}
					elems = append(elems, e.Value())
				}
			} else {
				vs, _ := v.Array().Values()
				elems = vs
			}
			for _, e := range elems {
				if walk(e) {
					return true
				}
			}
		case bson.TypeString:
			s := v.StringValue()
			return s == "IXSCAN" || s == "IDHACK" || s == "EXPRESS_IXSCAN" || s == "EXPRESS_IDHACK"
		}
		return false
	}
	return walk(v)
}

// TestUniqueIndexesHaveOneKey: every unique index of the store's
// collections is on one field. On DocumentDB (FerretDB v2) a unique index
// is an exclusion constraint, and checking a new entry of a compound one
// reads every entry that shares its first key: each insert and each
// commit (an update writes all of a document's entries anew) then costs
// time in proportion to, say, the members of the ASP, which only shows at
// a platform's size (BenchmarkCommitScale, BenchmarkAuditAppendLongChain).
func TestUniqueIndexesHaveOneKey(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded database (not with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, store := startStore(t, "shapes")
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mongostore.NewAuditLog(store.Database()).EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	for _, coll := range []string{mongostore.MembersCollection, mongostore.OutcomesCollection, mongostore.ParkedCollection, mongostore.AuditCollection} {
		cur, err := store.Database().Collection(coll).Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var specs []struct {
			Name   string `bson:"name"`
			Key    bson.D `bson:"key"`
			Unique bool   `bson:"unique"`
		}
		if err := cur.All(ctx, &specs); err != nil {
			t.Fatal(err)
		}
		if len(specs) < 2 {
			t.Errorf("%s has indexes %+v: EnsureIndexes created none", coll, specs)
		}
		for _, ix := range specs {
			if ix.Unique && len(ix.Key) != 1 {
				t.Errorf("%s: unique index %s on %d fields %v: make it one field (a key of them all)", coll, ix.Name, len(ix.Key), ix.Key)
			}
		}
	}
}
