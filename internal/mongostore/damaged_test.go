package mongostore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestUndecodableMemberIsDamaged: a member document that arrives and does
// not decode is a *pinreset.DamagedMemberError naming the member and the
// field (never its value), which the worker ends instead of retrying for
// ever; it is not mistaken for an outage.
func TestUndecodableMemberIsDamaged(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded database (not with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, store := startStore(t, "damaged")
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	m := pinreset.Member{ID: "m-damaged", ASPID: "KMTESTASP000001", LoginID: "d@b.example", PINHash: "h:1", Version: 1}
	if _, err := store.InsertMembers(ctx, []pinreset.Member{m}); err != nil {
		t.Fatal(err)
	}
	const secret = "SECRET-HASH-VALUE"
	if _, err := store.Database().Collection(mongostore.MembersCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: m.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: secret}}}}); err != nil {
		t.Fatal(err)
	}
	_, err := store.FindMemberByID(ctx, m.ID)
	var damaged *pinreset.DamagedMemberError
	if !errors.As(err, &damaged) || !errors.Is(err, pinreset.ErrDamagedMember) || damaged.MemberID != m.ID {
		t.Fatalf("FindMemberByID = %v, want a DamagedMemberError for %s", err, m.ID)
	}
	if !strings.Contains(err.Error(), "version") || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %q: want the field named and no value", err)
	}
	if _, err := store.Update(ctx, m.ASPID, m.LoginID, "261201090000-0000001", func(pinreset.Member, *pinreset.Outcome) (pinreset.Member, bool, error) {
		t.Fatal("decided on a damaged member")
		return pinreset.Member{}, false, nil
	}); !errors.Is(err, pinreset.ErrDamagedMember) {
		t.Fatalf("Update = %v, want ErrDamagedMember", err)
	}
	if mongostore.Unavailable(err) {
		t.Fatal("a damaged member is counted as an outage")
	}
}
