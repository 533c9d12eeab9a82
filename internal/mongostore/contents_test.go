package mongostore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/mongostore"
)

// TestRecordContent: the first record of a content is an insert, a later
// one replaces it (the same content under a new correlation id after the
// replay window), and FindContent returns the newest.
func TestRecordContent(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded FerretDB (not with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, store := startStore(t, "contents")

	if _, _, err := store.FindContent(ctx, "KMTESTASP000001", "fp1"); !errors.Is(err, mongostore.ErrNotFound) {
		t.Fatalf("FindContent before any record: %v, want ErrNotFound", err)
	}
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for i, rec := range []struct {
		cid string
		at  time.Time
	}{{"261101120000-aaaaaa1", t0}, {"261125120000-aaaaaa2", t0.Add(24 * time.Hour)}} {
		if err := store.RecordContent(ctx, "KMTESTASP000001", "fp1", rec.cid, rec.at); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		cid, at, err := store.FindContent(ctx, "KMTESTASP000001", "fp1")
		if err != nil || cid != rec.cid || !at.Equal(rec.at) {
			t.Fatalf("after record %d: %s %s %v, want %s %s", i, cid, at, err, rec.cid, rec.at)
		}
	}
	if _, _, err := store.FindContent(ctx, "KMTESTASP000002", "fp1"); !errors.Is(err, mongostore.ErrNotFound) {
		t.Fatalf("another ASP's content: %v, want ErrNotFound", err)
	}
}
