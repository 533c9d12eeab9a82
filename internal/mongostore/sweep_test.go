package mongostore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestSweepable: the retention sweep's store side deletes exactly a slice
// of time, and tells whether anything older is left.
func TestSweepable(t *testing.T) {
	ctx := context.Background()
	_, store := startStore(t, "sweep")
	now := time.Now().UTC().Truncate(time.Millisecond)
	var os []pinreset.Outcome
	for i := range 30 {
		at := now.Add(-time.Duration(i) * time.Hour) // one an hour, the newest now
		os = append(os, pinreset.Outcome{ASPID: "KMTESTASP000001", CorrelationID: fmt.Sprintf("261201120000-%07d", i), Kind: pinreset.KindReset,
			Code: pinreset.CodeSuccess, MemberID: "m1", AcceptedAt: at, CompletedAt: at, WorkerID: "w"})
	}
	if n, err := store.InsertOutcomes(ctx, os); err != nil || n != len(os) {
		t.Fatalf("InsertOutcomes: %d, %v", n, err)
	}
	w := store.OutcomeSweep()
	// [now-20h, now-10h): the records of hours 11..20 (hour 10 is its end).
	if n, err := w.DeleteBetween(ctx, now.Add(-20*time.Hour), now.Add(-10*time.Hour)); err != nil || n != 10 {
		t.Fatalf("DeleteBetween: %d, %v; want 10", n, err)
	}
	for i, kept := range map[int]bool{9: true, 10: true, 11: false, 20: false, 21: true} {
		_, err := store.Outcome(ctx, "KMTESTASP000001", fmt.Sprintf("261201120000-%07d", i))
		if (err == nil) != kept {
			t.Errorf("hour %d: %v, kept %v", i, err, kept)
		}
	}
	for _, c := range []struct {
		before time.Time
		want   bool
	}{{now.Add(-29 * time.Hour), false}, {now.Add(-28*time.Hour - time.Minute), true}, {now.Add(-15 * time.Hour), true}} {
		if got, err := w.AnyBefore(ctx, c.before); err != nil || got != c.want {
			t.Errorf("AnyBefore(%v ago): %v, %v; want %v", now.Sub(c.before), got, err, c.want)
		}
	}
	if err := store.MarkParked(ctx, "KMTESTASP000001", "261201120000-0000001", "transient", now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := store.ParkedSweep().DeleteBetween(ctx, now.Add(-49*time.Hour), now); err != nil || n != 1 {
		t.Fatalf("parked DeleteBetween: %d, %v; want 1", n, err)
	}
}
