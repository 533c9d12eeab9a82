package mongostore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

// TestFindsKeepTheirConnections: the store's batched reads (the relay's
// every 5 s, the login key backfill of every EnsureIndexes, the workers'
// other periodic reads) leave
// FerretDB's PostgreSQL connections in its pool. A find with a positive
// limit made FerretDB keep its connection for a cursor and close it, so
// PostgreSQL forked a new backend for each, and a decision that needed a
// connection then waited 20 to 30 ms for it (make bench's light load: one
// request in 25 every 5 s). Checked beneath the MongoDB wire: no backend
// of FerretDB's goes away.
func TestFindsKeepTheirConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in, store := startStore(t, "connections")
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	pg, err := pgx.Connect(ctx, in.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	backends := func() []int32 {
		rows, err := pg.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = 'FerretDB' ORDER BY pid")
		if err != nil {
			t.Fatal(err)
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			t.Fatal(err)
		}
		return pids
	}
	for name, read := range map[string]func() error{
		"the relay's read of undelivered decisions": func() error {
			_, err := store.Undelivered(ctx, time.Now(), 500)
			return err
		},
		"EnsureIndexes (its login key backfill)": func() error { return store.EnsureIndexes(ctx) },
		"the workers' count of operators' queue actions": func() error {
			_, err := store.QueueActionCounts(ctx)
			return err
		},
		"a retention sweep's slice": func() error {
			sw := store.OutcomeSweep()
			if _, err := sw.AnyBefore(ctx, time.Now()); err != nil {
				return err
			}
			_, err := sw.DeleteBetween(ctx, time.Now().Add(-time.Hour), time.Now())
			return err
		},
		"the outcomes of pending decisions": func() error {
			_, err := store.Pending(ctx, []pinreset.Pending{{Outcome: pinreset.Outcome{ASPID: "KMTESTASP000001", CorrelationID: "261201120000-0000001"}}})
			return err
		},
	} {
		before := backends()
		if len(before) == 0 {
			t.Fatal("no FerretDB backend in pg_stat_activity")
		}
		for range 3 {
			if err := read(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		// A closed connection's backend leaves within moments.
		var gone []int32
		waitfor.Every(100*time.Millisecond, time.Second, func() bool {
			now := backends()
			gone = slices.DeleteFunc(slices.Clone(before), func(pid int32) bool { return slices.Contains(now, pid) })
			return len(gone) > 0
		})
		if len(gone) > 0 {
			t.Errorf("%s: FerretDB closed %d of its %d PostgreSQL connections (backends %v)", name, len(gone), len(before), gone)
		}
	}
}
