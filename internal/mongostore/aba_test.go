package mongostore_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestStaleWriterCannotReclaimASweptVersion is the ABA case: the compare-
// and-set is "insert the next version's id", so a version deleted by the
// sweep frees an id that a writer holding an old read could claim, win,
// and roll the member copy back. Versions younger than SweepAge are never
// swept, so the stale writer conflicts; an old enough version still is.
func TestStaleWriterCannotReclaimASweptVersion(t *testing.T) {
	_, store := startStore(t, "aba")
	ctx := context.Background()
	m := pinreset.Member{ID: "m-aba", ASPID: "KMTESTASP000001", LoginID: "aba@example.com", PINHash: "h0"}
	if err := store.PutMember(ctx, m); err != nil {
		t.Fatal(err)
	}
	stale, err := store.FindMember(ctx, m.ASPID, m.LoginID)
	if err != nil {
		t.Fatal(err)
	}
	// Twenty commits after the stale read: the sweep used to delete
	// versions 2..4 on the way (KeepVersions behind each new one).
	cur := *stale
	for range 20 {
		next := cur
		next.Version++
		next.PINHash = "h" + time.Now().Format("150405.000000")
		if _, err := store.UpdateMember(ctx, next, cur.Version, "", nil); err != nil {
			t.Fatal(err)
		}
		cur = next
	}
	ghost := *stale
	ghost.Version++
	ghost.PINHash = "ghost"
	if _, err := store.UpdateMember(ctx, ghost, stale.Version, "", nil); !errors.Is(err, mongostore.ErrConflict) {
		t.Fatalf("a writer 20 versions behind committed (err %v): it must conflict", err)
	}
	got, err := store.FindMember(ctx, m.ASPID, m.LoginID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != cur.Version || got.PINHash != cur.PINHash {
		t.Fatalf("member at version %d (%s), want %d (%s): rolled back", got.Version, got.PINHash, cur.Version, cur.PINHash)
	}

	// A version older than SweepAge is swept as before: age version
	// cur-15 (the one the next write sweeps), then write.
	versions := store.Database().Collection(mongostore.VersionsCollection)
	id := func(v int64) string { return m.ID + ":" + strconv.FormatInt(v, 10) }
	old := cur.Version + 1 - mongostore.KeepVersions
	if _, err := versions.UpdateOne(ctx, bson.D{{Key: "_id", Value: id(old)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "committedAt", Value: time.Now().Add(-2 * mongostore.SweepAge)}}}}); err != nil {
		t.Fatal(err)
	}
	next := cur
	next.Version++
	if _, err := store.UpdateMember(ctx, next, cur.Version, "", nil); err != nil {
		t.Fatal(err)
	}
	if n, err := versions.CountDocuments(ctx, bson.D{{Key: "_id", Value: id(old)}}); err != nil || n != 0 {
		t.Errorf("version %d, older than SweepAge: %d left (%v), want it swept", old, n, err)
	}
	if n, err := versions.CountDocuments(ctx, bson.D{{Key: "_id", Value: id(old - 1)}}); err != nil || n != 1 {
		t.Errorf("version %d, younger than SweepAge: %d left (%v), want it kept", old-1, n, err)
	}
}
