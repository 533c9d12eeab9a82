package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// legacyMember is a member document as earlier versions wrote it: no
// aspLogin.
func legacyMember(id, asp, login string) bson.D {
	return bson.D{{Key: "_id", Value: id}, {Key: "aspId", Value: asp}, {Key: "loginId", Value: login}, {Key: "pinHash", Value: "h"},
		{Key: "version", Value: int64(1)}, {Key: "failedAttempts", Value: 0}, {Key: "recent", Value: bson.A{}}, {Key: "updatedAt", Value: time.Now()}}
}

// TestLoginIndexMigration: EnsureIndexes, run by two workers at once on a
// database of an earlier version (member documents without aspLogin, a
// unique index on (aspId, loginId)), gives every member its key, so each
// is found by login as before, replaces the index, and refuses a second
// member with a login taken.
func TestLoginIndexMigration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in, store := startStore(t, "migrate")
	members := store.Database().Collection(mongostore.MembersCollection)
	if _, err := members.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "aspId", Value: 1}, {Key: "loginId", Value: 1}},
		Options: options.Index().SetUnique(true).SetName(mongostore.LegacyLoginIndex.Name),
	}); err != nil {
		t.Fatal(err)
	}
	const aspA, aspB = "KMTESTASP00000A", "KMTESTASP00000B"
	login := func(i int) string { return fmt.Sprintf("m%05d@example.com", i) }
	var docs []any
	for i := range 2500 { // more than one round of the backfill
		asp := aspA
		if i%2 == 1 {
			asp = aspB
		}
		docs = append(docs, legacyMember(fmt.Sprintf("m%05d", i), asp, login(i)))
	}
	// Damaged ones, which no login finds: no loginId, a loginId not a string.
	noLogin := legacyMember("damaged-1", aspA, "")[:2]
	numberLogin := legacyMember("damaged-2", aspA, "")
	numberLogin[2].Value = 42
	docs = append(docs, noLogin, numberLogin)
	if _, err := members.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = store.EnsureIndexes(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("EnsureIndexes of worker %d: %v", i, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if names := indexNames(t, members); !slices.Equal(names, []string{"_id_", "asp_login", "outbox_at"}) {
		t.Errorf("indexes after the migration: %v, want _id_, asp_login, outbox_at", names)
	}
	if n, err := members.CountDocuments(ctx, bson.D{{Key: "aspLogin", Value: bson.D{{Key: "$exists", Value: false}}}}); err != nil || n != 0 {
		t.Errorf("%d documents without aspLogin after the migration (%v)", n, err)
	}
	for i := 0; i < 2500; i += 97 {
		asp := aspA
		if i%2 == 1 {
			asp = aspB
		}
		m, err := store.FindMember(ctx, asp, login(i))
		if err != nil || m.ID != fmt.Sprintf("m%05d", i) {
			t.Fatalf("FindMember(%s, %s) after the migration: %+v, %v", asp, login(i), m, err)
		}
		if _, err := store.FindMember(ctx, map[string]string{aspA: aspB, aspB: aspA}[asp], login(i)); !errors.Is(err, mongostore.ErrNotFound) {
			t.Fatalf("FindMember of %s in the other ASP: %v, want ErrNotFound", login(i), err)
		}
	}

	// A login taken is refused, in the ASP that has it only.
	taken := pinreset.Member{ID: "m-new", ASPID: aspA, LoginID: login(0), PINHash: "h"}
	if err := store.PutMember(ctx, taken); !errors.Is(err, mongostore.ErrLoginTaken) {
		t.Errorf("PutMember with a migrated member's login: %v, want ErrLoginTaken", err)
	}
	if n, err := store.InsertMembers(ctx, []pinreset.Member{taken}); n != 0 || err != nil {
		t.Errorf("InsertMembers with a migrated member's login: %d inserted, %v; want it skipped", n, err)
	}
	taken.ASPID = aspB
	if err := store.PutMember(ctx, taken); err != nil {
		t.Errorf("PutMember with the login in the other ASP: %v", err)
	}

	// An earlier version's tool inserts after the migration: one member
	// without aspLogin goes in (to the index its key is null), found by
	// login once the next EnsureIndexes gave it its key; a second is refused.
	if _, err := members.InsertOne(ctx, legacyMember("late-1", aspA, "late1@example.com")); err != nil {
		t.Fatal(err)
	}
	if _, err := members.InsertOne(ctx, legacyMember("late-2", aspA, "late2@example.com")); !mongo.IsDuplicateKeyError(err) {
		t.Errorf("a second member without aspLogin: %v, want a duplicate key (null) in asp_login", err)
	}
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if m, err := store.FindMember(ctx, aspA, "late1@example.com"); err != nil || m.ID != "late-1" {
		t.Errorf("FindMember of a member inserted without aspLogin, after EnsureIndexes: %+v, %v", m, err)
	}

	// On the migrated database the next start drops nothing: a drop of
	// the missing index would be answered IndexNotFound, and logged by
	// FerretDB as an ERROR at every start.
	var drops atomic.Int64
	watched, err := mongostore.Open(mongostore.Config{URI: in.MongoURI(), Database: "migrate", Monitor: &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			if e.CommandName == "dropIndexes" {
				drops.Add(1)
			}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer watched.Close(context.Background())
	if err := watched.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if n := drops.Load(); n != 0 {
		t.Errorf("EnsureIndexes on a migrated database sent %d dropIndexes, want none", n)
	}
}

func indexNames(t *testing.T, c *mongo.Collection) []string {
	t.Helper()
	specs, err := c.Indexes().ListSpecifications(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}
