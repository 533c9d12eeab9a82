package worker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/worker"
)

type counts struct {
	n   []mongostore.QueueActionCount
	err error
}

func (c counts) QueueActionCounts(context.Context) ([]mongostore.QueueActionCount, error) {
	return c.n, c.err
}

// TestCountQueueActions: the operators' redrives and purges become
// pinreset_queue_actions{queue,action}; a failed read keeps the last figures.
func TestCountQueueActions(t *testing.T) {
	t.Parallel()
	m := metrics.NewWorker(prometheus.NewRegistry())
	c := counts{n: []mongostore.QueueActionCount{{Topic: "password.commands.dlq", Action: "purge", N: 3},
		{Topic: "password.commands.retry", Action: "redrive", N: 2}, {Topic: "elsewhere", Action: "purge", N: 9}}}
	if err := worker.CountQueueActions(context.Background(), c, m); err != nil {
		t.Fatal(err)
	}
	get := func(q, a string) float64 { return testutil.ToFloat64(m.QueueActions.WithLabelValues(q, a)) }
	if get("dlq", "purge") != 3 || get("parked", "redrive") != 2 || get("dlq", "redrive") != 0 || get("parked", "purge") != 0 {
		t.Fatalf("dlq purge %v, parked redrive %v, dlq redrive %v, parked purge %v", get("dlq", "purge"), get("parked", "redrive"), get("dlq", "redrive"), get("parked", "purge"))
	}
	if n := testutil.CollectAndCount(m.QueueActions); n != 4 {
		t.Fatalf("%d series, want the 4 of dlq and parked (another topic is not a queue)", n)
	}
	if err := worker.CountQueueActions(context.Background(), counts{err: errors.New("down")}, m); err == nil || get("dlq", "purge") != 3 {
		t.Fatalf("a failed read: %v, dlq purge %v; want the error and 3 kept", err, get("dlq", "purge"))
	}
}
