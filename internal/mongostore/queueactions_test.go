package mongostore_test

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kmwallet/pinreset/internal/mongostore"
)

// TestQueueActionCounts: the confirmed redrives and purges, by topic and
// action; a claim not confirmed does not count.
func TestQueueActionCounts(t *testing.T) {
	ctx := context.Background()
	_, store := startStore(t, "queueactions")
	docs := []any{
		bson.D{{Key: "_id", Value: "password.commands.dlq/0/1"}, {Key: "topic", Value: "password.commands.dlq"}, {Key: "action", Value: "redrive"}, {Key: "done", Value: true}},
		bson.D{{Key: "_id", Value: "password.commands.dlq/0/2"}, {Key: "topic", Value: "password.commands.dlq"}, {Key: "action", Value: "redrive"}, {Key: "done", Value: true}},
		bson.D{{Key: "_id", Value: "password.commands.retry/1/7"}, {Key: "topic", Value: "password.commands.retry"}, {Key: "action", Value: "purge"}, {Key: "done", Value: true}},
		bson.D{{Key: "_id", Value: "password.commands.retry/1/8"}, {Key: "topic", Value: "password.commands.retry"}, {Key: "action", Value: "redrive"}, {Key: "done", Value: false}},
	}
	if _, err := store.Database().Collection(mongostore.QueueActionsCollection).InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	got, err := store.QueueActionCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b mongostore.QueueActionCount) int { return len(a.Topic) - len(b.Topic) })
	want := []mongostore.QueueActionCount{{Topic: "password.commands.dlq", Action: "redrive", N: 2}, {Topic: "password.commands.retry", Action: "purge", N: 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
}
