package mongostore

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// TestClientOptionsForceConsistency: a URI asking for secondary reads, local
// read concern, unacknowledged-by-majority writes and no timeout gets the
// primary, majority reads, majority journaled writes and the configured
// timeouts all the same.
func TestClientOptionsForceConsistency(t *testing.T) {
	t.Parallel()
	cfg := Config{
		URI: "mongodb://127.0.0.1:27017/?readPreference=secondary&readConcernLevel=local&w=1&journal=false&timeoutMS=0" +
			"&connectTimeoutMS=60000&serverSelectionTimeoutMS=60000",
	}.withDefaults()
	opts := clientOptions(cfg)
	if opts.ReadPreference == nil || opts.ReadPreference.Mode() != readpref.PrimaryMode {
		t.Errorf("read preference %v, want primary", opts.ReadPreference)
	}
	if opts.ReadConcern == nil || opts.ReadConcern.Level != "majority" {
		t.Errorf("read concern %+v, want majority", opts.ReadConcern)
	}
	if wc := opts.WriteConcern; wc == nil || wc.W != "majority" || wc.Journal == nil || !*wc.Journal {
		t.Errorf("write concern %+v, want w:majority, j:true", wc)
	}
	for _, d := range []struct {
		name      string
		got, want *time.Duration
	}{
		{"operation timeout", opts.Timeout, &cfg.OperationTimeout},
		{"connect timeout", opts.ConnectTimeout, &cfg.Timeout},
		{"server selection timeout", opts.ServerSelectionTimeout, &cfg.Timeout},
	} {
		if d.got == nil || *d.got != *d.want {
			t.Errorf("%s %v, want %v", d.name, d.got, *d.want)
		}
	}
	if cfg.OperationTimeout != DefaultOperationTimeout || cfg.Timeout != DefaultTimeout {
		t.Errorf("defaults: operation timeout %v, timeout %v; want %v, %v", cfg.OperationTimeout, cfg.Timeout, DefaultOperationTimeout, DefaultTimeout)
	}
}
