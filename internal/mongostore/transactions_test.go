package mongostore_test

import (
	"context"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TestFerretDBHasNoTransactions records why no code here relies on a
// MongoDB transaction: through the embedded FerretDB the driver's
// transaction calls do not make one. A write made inside a transaction is
// applied at once (others see it before any commit), an abort keeps it
// (the driver's AbortTransaction and WithTransaction report no failure of
// it), and the server answers commitTransaction and abortTransaction with
// CommandNotFound.
// Single-document atomicity carries the correctness instead. If an upgrade
// brings transactions, this fails.
func TestFerretDBHasNoTransactions(t *testing.T) {
	ctx := context.Background()
	_, store := startStore(t, "txn")
	coll := store.Database().Collection("txn")
	count := func(id string) int64 {
		t.Helper()
		n, err := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: id}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	isCommandNotFound := func(err error) bool {
		var ce mongo.CommandError
		return errors.As(err, &ce) && ce.Name == "CommandNotFound"
	}
	sess, err := store.Database().Client().StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(ctx)

	// StartTransaction, a write, a read from outside, an abort.
	if err := sess.StartTransaction(); err != nil {
		t.Fatal(err)
	}
	sctx := mongo.NewSessionContext(ctx, sess)
	if _, err := coll.InsertOne(sctx, bson.D{{Key: "_id", Value: "aborted"}}); err != nil {
		t.Fatalf("insert in a transaction: %v", err)
	}
	if n := count("aborted"); n != 1 {
		t.Errorf("a write inside a transaction, seen from outside before the end: %d documents, want 1 (applied at once)", n)
	}
	// The driver ignores the server's answer to an abort (the command
	// itself is checked at the end).
	_ = sess.AbortTransaction(ctx)
	if n := count("aborted"); n != 1 {
		t.Errorf("after the abort: %d documents, want 1 (kept)", n)
	}

	// WithTransaction whose body fails: the driver aborts, the write stays.
	_, err = sess.WithTransaction(ctx, func(ctx context.Context) (any, error) {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "rolled back?"}}); err != nil {
			return nil, err
		}
		return nil, errors.New("the body fails")
	})
	if err == nil || err.Error() != "the body fails" {
		t.Errorf("WithTransaction: %v, want the body's error", err)
	}
	if n := count("rolled back?"); n != 1 {
		t.Errorf("after WithTransaction failed: %d documents, want 1 (kept)", n)
	}

	// A commit is refused, and its write was applied anyway.
	if err := sess.StartTransaction(); err != nil {
		t.Fatal(err)
	}
	sctx = mongo.NewSessionContext(ctx, sess)
	if _, err := coll.InsertOne(sctx, bson.D{{Key: "_id", Value: "committed"}}); err != nil {
		t.Fatalf("insert in a transaction: %v", err)
	}
	if err := sess.CommitTransaction(ctx); !isCommandNotFound(err) {
		t.Errorf("commitTransaction: %v, want CommandNotFound", err)
	}
	if n := count("committed"); n != 1 {
		t.Errorf("after the refused commit: %d documents, want 1", n)
	}

	// The two commands themselves, as the server answers them.
	admin := store.Database().Client().Database("admin")
	for _, cmd := range []string{"commitTransaction", "abortTransaction"} {
		if err := admin.RunCommand(ctx, bson.D{{Key: cmd, Value: 1}}).Err(); !isCommandNotFound(err) {
			t.Errorf("%s: %v, want CommandNotFound", cmd, err)
		}
	}
}
