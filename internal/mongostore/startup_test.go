package mongostore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/kmwallet/pinreset/internal/mongostore"
)

// TestStartSendsNoFailingCommand: a process's start (the store's and the
// audit trail's EnsureIndexes) on a new database, then again on the same
// one, sends no command the server refuses. FerretDB logs every refused
// command as an ERROR of its own, so an expected refusal (a drop of an
// index that is gone, the indexes of a collection not created yet) read
// as a fault in the database's log at every start.
func TestStartSendsNoFailingCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in, _ := startStore(t, "unused")
	var (
		mu     sync.Mutex
		failed []string
	)
	store, err := mongostore.Open(mongostore.Config{URI: in.MongoURI(), Database: "startup", Monitor: &event.CommandMonitor{
		Failed: func(_ context.Context, e *event.CommandFailedEvent) {
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, fmt.Sprintf("%s: %v", e.CommandName, e.Failure))
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	for _, start := range []string{"first start", "second start"} {
		if err := store.EnsureIndexes(ctx); err != nil {
			t.Fatalf("%s: %v", start, err)
		}
		if err := mongostore.NewAuditLog(store.Database()).EnsureIndexes(ctx); err != nil {
			t.Fatalf("%s: %v", start, err)
		}
		mu.Lock()
		if len(failed) > 0 {
			t.Errorf("%s: refused commands %q", start, failed)
		}
		failed = nil
		mu.Unlock()
	}
}
