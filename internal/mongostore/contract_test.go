package mongostore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kmwallet/pinreset/internal/decision/storetest"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/sandbox"
)

// TestContract runs worker.Store's contract against the store on the
// embedded FerretDB, each case on a database of its own.
func TestContract(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded FerretDB (not with -short)")
	}
	in, err := sandbox.StartInfra(context.Background(), sandbox.InfraConfig{DataDir: t.TempDir(), MongoAddr: "127.0.0.1:0", NoKafka: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) storetest.Store {
		store, err := mongostore.Open(mongostore.Config{URI: in.MongoURI(), Database: fmt.Sprintf("contract%d", n.Add(1))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close(context.Background()) })
		if err := store.EnsureIndexes(context.Background()); err != nil {
			t.Fatal(err)
		}
		return store
	})
}
