package mongostore_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// pairIndex is an index of two fields, whose order ClassifyDuplicate
// tells apart (the members' unique index of earlier versions).
var pairIndex = mongostore.Index{Name: "asp_login_unique", Fields: []string{"aspId", "loginId"}}

// writeError is a duplicate-key write error as a server sends it in
// writeErrors (raw is the whole entry), wrapped as the driver returns it.
func writeError(msg string, raw bson.D) error {
	b, err := bson.Marshal(raw)
	if err != nil {
		panic(err)
	}
	return mongo.WriteException{WriteErrors: mongo.WriteErrors{{Index: 0, Code: 11000, Message: msg, Raw: b}}}
}

// TestClassifyDuplicate: the index that refused a write is read from the
// error alone: the keyPattern MongoDB sends, else the index name in the
// message (MongoDB's two formats and FerretDB's), else it is unnamed (as
// DocumentDB's exclusion-constraint answer to a findAndModify); anything
// else is not a duplicate.
func TestClassifyDuplicate(t *testing.T) {
	t.Parallel()
	const modern = "E11000 duplicate key error collection: pinreset.members index: asp_login_unique dup key: { aspId: \"A\", loginId: \"l\" }"
	for _, tc := range []struct {
		rule string
		err  error
		want mongostore.Duplicate
	}{
		{"a keyPattern of the index's fields is that index",
			writeError("E11000 duplicate key error", bson.D{{Key: "keyPattern", Value: bson.D{{Key: "aspId", Value: 1}, {Key: "loginId", Value: 1}}}}), mongostore.DuplicateOn},
		{"a keyPattern of _id is another index",
			writeError("E11000 duplicate key error", bson.D{{Key: "keyPattern", Value: bson.D{{Key: "_id", Value: 1}}}}), mongostore.DuplicateOnOther},
		{"a keyPattern with the fields in another order is another index",
			writeError("E11000", bson.D{{Key: "keyPattern", Value: bson.D{{Key: "loginId", Value: 1}, {Key: "aspId", Value: 1}}}}), mongostore.DuplicateOnOther},
		{"keyPattern wins over the message",
			writeError(modern, bson.D{{Key: "keyPattern", Value: bson.D{{Key: "_id", Value: 1}}}}), mongostore.DuplicateOnOther},
		{"the index named in a message of today's format", writeError(modern, bson.D{}), mongostore.DuplicateOn},
		{"another index named in a message of today's format",
			writeError("E11000 duplicate key error collection: pinreset.members index: _id_ dup key: { _id: \"m\" }", bson.D{}), mongostore.DuplicateOnOther},
		{"the index named in a message of the old format",
			writeError("E11000 duplicate key error index: pinreset.members.$asp_login_unique dup key: { : \"A\", : \"l\" }", bson.D{}), mongostore.DuplicateOn},
		{"the index named in FerretDB's message",
			writeError("Duplicate key violation on the requested collection: Index 'asp_login_unique'", bson.D{}), mongostore.DuplicateOn},
		{"another index named in FerretDB's message",
			writeError("Duplicate key violation on the requested collection: Index '_id_'", bson.D{}), mongostore.DuplicateOnOther},
		{"a message that names no index is unnamed",
			writeError("E11000 duplicate key error collection: pinreset.members", bson.D{}), mongostore.DuplicateUnnamed},
		{"DocumentDB's exclusion conflict on a findAndModify is an unnamed duplicate",
			mongo.CommandError{Code: 1, Name: "InternalError", Message: `conflicting key value violates exclusion constraint "documents_rum_index_4"`}, mongostore.DuplicateUnnamed},
		{"another internal error is not a duplicate",
			mongo.CommandError{Code: 1, Name: "InternalError", Message: "could not serialize access"}, mongostore.NotDuplicate},
		{"a bulk write's duplicate is classified too",
			mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: 11000, Message: modern}}}}, mongostore.DuplicateOn},
		{"another write error is not a duplicate",
			mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 121, Message: "Document failed validation"}}}, mongostore.NotDuplicate},
		{"a plain error is not a duplicate", errors.New("E11000 duplicate key error index: asp_login_unique dup key"), mongostore.NotDuplicate},
		{"no error is not a duplicate", nil, mongostore.NotDuplicate},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			if got := mongostore.ClassifyDuplicate(tc.err, pairIndex); got != tc.want {
				t.Errorf("ClassifyDuplicate = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestFerretDBDuplicates records what the embedded FerretDB says of a
// duplicate key: an insert or an update refused by a unique index names
// the index (code 11000, no keyPattern), so ClassifyDuplicate tells _id
// from the login's index; a findOneAndUpdate refused by one is an
// InternalError about an exclusion constraint, which IsDuplicateKey still
// recognises (as unnamed). If an upgrade changes either, this fails.
func TestFerretDBDuplicates(t *testing.T) {
	ctx := context.Background()
	_, store := startStore(t, "dupkey")
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	members := store.Database().Collection(mongostore.MembersCollection)
	doc := func(id, login string) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "aspId", Value: "KMTESTASP000001"}, {Key: "loginId", Value: login},
			{Key: "aspLogin", Value: mongostore.LoginKey("KMTESTASP000001", login)}}
	}
	for _, d := range []bson.D{doc("m-1", "one@example.com"), doc("m-2", "two@example.com")} {
		if _, err := members.InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	_, errID := members.InsertOne(ctx, doc("m-1", "three@example.com"))
	_, errLogin := members.InsertOne(ctx, doc("m-3", "one@example.com"))
	toOne := bson.D{{Key: "$set", Value: bson.D{{Key: "loginId", Value: "one@example.com"},
		{Key: "aspLogin", Value: mongostore.LoginKey("KMTESTASP000001", "one@example.com")}}}}
	_, errUpdate := members.UpdateOne(ctx, bson.D{{Key: "_id", Value: "m-2"}}, toOne)
	errFind := members.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "m-2"}}, toOne).Err()
	for _, c := range []struct {
		write string
		err   error
		want  mongostore.Duplicate
	}{
		{"insert, duplicate _id", errID, mongostore.DuplicateOnOther},
		{"insert, duplicate login", errLogin, mongostore.DuplicateOn},
		{"updateOne, duplicate login", errUpdate, mongostore.DuplicateOn},
		{"findOneAndUpdate, duplicate login", errFind, mongostore.DuplicateUnnamed},
	} {
		if !mongostore.IsDuplicateKey(c.err) {
			t.Errorf("%s: %v, want a duplicate-key error", c.write, c.err)
		}
		if got := mongostore.ClassifyDuplicate(c.err, mongostore.LoginIndex); got != c.want {
			t.Errorf("%s on FerretDB classified %d, want %d (%v)", c.write, got, c.want, c.err)
		}
		t.Logf("FerretDB, %s: %v", c.write, c.err)
	}
}

// TestPutMemberDuplicates: on FerretDB, both unique indexes of members are
// told apart: a login that another member has is refused with
// ErrLoginTaken at once (not after a hundred retries), and the same new
// member put by several writers at once is inserted by one and updated by
// the others.
func TestPutMemberDuplicates(t *testing.T) {
	ctx := context.Background()
	_, store := startStore(t, "putdup")
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	a := pinreset.Member{ID: "m-a", ASPID: "KMTESTASP000001", LoginID: "shared@example.com", PINHash: "h"}
	if err := store.PutMember(ctx, a); err != nil {
		t.Fatal(err)
	}
	b := a
	b.ID = "m-b"
	if err := store.PutMember(ctx, b); !errors.Is(err, mongostore.ErrLoginTaken) {
		t.Fatalf("PutMember of another member with the same login: %v, want ErrLoginTaken", err)
	}

	c := pinreset.Member{ID: "m-c", ASPID: "KMTESTASP000001", LoginID: "c@example.com", PINHash: "h"}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = store.PutMember(ctx, c)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent PutMember #%d: %v", i, err)
		}
	}
	got, err := store.FindMember(ctx, c.ASPID, c.LoginID)
	if err != nil || got.ID != c.ID {
		t.Fatalf("FindMember after concurrent puts: %+v, %v", got, err)
	}
}
