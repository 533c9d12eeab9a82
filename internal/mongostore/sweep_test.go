package mongostore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestSweepDeletesInBatches: one call of the retention sweep deletes at
// most its limit, only records before the cutoff, so that no delete holds
// the database for longer than a batch takes, however much is due.
func TestSweepDeletesInBatches(t *testing.T) {
	ctx := context.Background()
	_, store := startStore(t, "sweep")
	now := time.Now().UTC().Truncate(time.Millisecond)
	var os []pinreset.Outcome
	for i := range 2510 {
		at := now.Add(-48 * time.Hour)
		if i >= 2500 {
			at = now // kept
		}
		os = append(os, pinreset.Outcome{ASPID: "KMTESTASP000001", CorrelationID: fmt.Sprintf("261201120000-%07d", i), Kind: pinreset.KindReset,
			Code: pinreset.CodeSuccess, MemberID: "m1", AcceptedAt: at, CompletedAt: at, WorkerID: "w"})
	}
	if n, err := store.InsertOutcomes(ctx, os); err != nil || n != len(os) {
		t.Fatalf("InsertOutcomes: %d, %v", n, err)
	}
	cutoff := now.Add(-24 * time.Hour)
	var got []int64
	for {
		n, err := store.DeleteOutcomesBefore(ctx, cutoff, 1000)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
		if n == 0 || len(got) > 5 {
			break
		}
	}
	if fmt.Sprint(got) != "[1000 1000 500 0]" {
		t.Fatalf("deleted per call %v, want [1000 1000 500 0]", got)
	}
	for _, i := range []int{2500, 2509} {
		if _, err := store.Outcome(ctx, "KMTESTASP000001", fmt.Sprintf("261201120000-%07d", i)); err != nil {
			t.Errorf("a record after the cutoff: %v, want it kept", err)
		}
	}
	if err := store.MarkParked(ctx, "KMTESTASP000001", "261201120000-0000001", "transient", now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := store.DeleteParkedBefore(ctx, cutoff, 1000); err != nil || n != 1 {
		t.Fatalf("DeleteParkedBefore: %d, %v; want 1", n, err)
	}
}
