package memstore_test

import (
	"testing"

	"github.com/kmwallet/pinreset/internal/decision/memstore"
	"github.com/kmwallet/pinreset/internal/decision/storetest"
)

// TestContract holds the fake to the contract the real store passes.
func TestContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) storetest.Store { return memstore.New() })
}
