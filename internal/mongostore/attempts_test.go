package mongostore_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestWrongAttemptsAndUnlockAreStored: a member's remembered wrong attempts
// (keys and times) and a reset's "unlocked" on its event survive the
// database; a document of the former form (wrongPins, keys only) is read
// with those keys remembered, so attempts counted before the upgrade stay
// counted.
func TestWrongAttemptsAndUnlockAreStored(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded FerretDB (not with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, store := startStore(t, "attempts")
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	m := pinreset.Member{ID: "m-attempts", ASPID: "KMTESTASP000001", LoginID: "a@b.example", PINHash: "h:1", Version: 1, UpdatedAt: t0}
	if _, err := store.InsertMembers(ctx, []pinreset.Member{m}); err != nil {
		t.Fatal(err)
	}
	next := m
	next.Version = 2
	next.WrongAttempts = []pinreset.Attempt{{Key: "f1:AAAA", At: t0.Add(time.Minute)}, {Key: "f1:BBBB", At: t0.Add(2 * time.Minute)}}
	next.Recent = []pinreset.Applied{{CorrelationID: "261201090000-0000001", Code: pinreset.CodeSuccess, At: t0}}
	ev := pinreset.Event{ID: "m-attempts:2:0", Type: pinreset.EventPINSet, Version: 2, MemberID: m.ID, ASPID: m.ASPID,
		CorrelationID: "261201090000-0000001", Kind: pinreset.KindReset, At: t0, Unlocked: true}
	next.Outbox = []pinreset.Pending{{Version: 2, Outcome: pinreset.Outcome{ASPID: m.ASPID, CorrelationID: "261201090000-0000001", Kind: pinreset.KindReset,
		Code: pinreset.CodeSuccess, MemberID: m.ID, CompletedAt: t0}, Events: []pinreset.Event{ev}}}
	if _, err := store.Update(ctx, m.ASPID, m.LoginID, "261201090000-0000001", func(pinreset.Member, *pinreset.Outcome) (pinreset.Member, bool, error) {
		return next, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := store.FindMember(ctx, m.ASPID, m.LoginID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.WrongAttempts, next.WrongAttempts) {
		t.Errorf("WrongAttempts read back %+v, want %+v", got.WrongAttempts, next.WrongAttempts)
	}
	// The outbox keeps the decision's event as it was.
	if len(got.Outbox) != 1 || !reflect.DeepEqual(got.Outbox[0].Events, []pinreset.Event{ev}) {
		t.Errorf("the outbox read back as %+v, want the event with Unlocked", got.Outbox)
	}

	// A document of the former form.
	legacy := bson.M{"_id": "m-legacy", "aspId": "KMTESTASP000001", "loginId": "legacy@b.example", "pinHash": "h:1", "version": int64(1),
		"failedAttempts": 2, "wrongPins": bson.A{"p1:CCCC", "p1:DDDD"}, "recent": bson.A{}, "updatedAt": t0}
	if _, err := store.Database().Collection(mongostore.MembersCollection).InsertOne(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	old, err := store.FindMemberByID(ctx, "m-legacy")
	if err != nil {
		t.Fatal(err)
	}
	want := []pinreset.Attempt{{Key: "p1:CCCC", At: t0}, {Key: "p1:DDDD", At: t0}}
	if !reflect.DeepEqual(old.WrongAttempts, want) {
		t.Errorf("legacy wrongPins read as %+v, want %+v", old.WrongAttempts, want)
	}
}
