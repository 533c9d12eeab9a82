package memstore_test

import (
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/worker/memstore"
	"github.com/kmwallet/pinreset/internal/worker/storetest"
)

// TestContract holds the fake to the contract the real store passes.
func TestContract(t *testing.T) {
	storetest.Run(t, func(_ *testing.T, lease time.Duration) storetest.Store {
		s := memstore.New()
		s.Lease, s.Patience = lease, min(lease, 2*time.Second)
		return s
	})
}
