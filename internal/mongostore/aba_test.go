package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestStaleWriterCannotReclaimAClaim is the ABA case in the decision
// model: the compare-and-set is "insert the claim of the next version", so
// a claim freed while a writer still holds a read of the version before it
// would let that writer win over history it never saw. Before the redesign
// the per-write sweep of old versions freed such ids (the writer's read
// 16 versions old). Now a claim is freed only with its decision, by the
// retention sweep, and only once older than the retention: a sweep right
// after twenty decisions frees none, and the stale writer loses.
func TestStaleWriterCannotReclaimAClaim(t *testing.T) {
	_, store := startStore(t, "aba")
	ctx := context.Background()
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	m := pinreset.Member{ID: "m-aba", ASPID: "KMTESTASP000001", LoginID: "aba@example.com", PINHash: "h0"}
	if err := store.PutMember(ctx, m); err != nil {
		t.Fatal(err)
	}
	commit := func(cur pinreset.Member, cid string) pinreset.Commit {
		next := cur
		next.Version++
		next.PINHash = "set-by-" + cid
		next.Recent = append(append([]pinreset.Applied(nil), cur.Recent...), pinreset.Applied{CorrelationID: cid, Code: pinreset.CodeSuccess, At: time.Now().UTC()})
		return pinreset.Commit{Outcome: pinreset.Outcome{ASPID: cur.ASPID, CorrelationID: cid, Code: pinreset.CodeSuccess, MemberID: cur.ID,
			CompletedAt: time.Now().UTC()}, Member: next}
	}
	errAgain := errors.New("decided again, on the current state")
	calls := 0
	var staleVersion int64
	_, err := store.Update(ctx, m.ASPID, m.LoginID, func(stale pinreset.Member) (pinreset.Commit, error) {
		if calls++; calls > 1 {
			if stale.Version != staleVersion+20 {
				return pinreset.Commit{}, fmt.Errorf("decided again on version %d, want %d", stale.Version, staleVersion+20)
			}
			return pinreset.Commit{}, errAgain
		}
		staleVersion = stale.Version
		// While this decision is being made (a long stall), twenty others
		// are committed and settled, and the retention sweep runs as the
		// worker runs it (7 days by default; an hour here is as good:
		// every decision is seconds old).
		for i := range 20 {
			c, err := store.Update(ctx, m.ASPID, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
				return commit(cur, fmt.Sprintf("261201140000-%07d", i)), nil
			})
			if err != nil {
				return pinreset.Commit{}, err
			}
			if err := store.Settle(ctx, c); err != nil {
				return pinreset.Commit{}, err
			}
		}
		if n, err := store.DeleteOutcomesBefore(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
			return pinreset.Commit{}, fmt.Errorf("the sweep deleted %d young decisions (%v)", n, err)
		}
		// The stale decision claims the version after the one it read.
		return commit(stale, "261201140000-ghost01"), nil
	})
	if !errors.Is(err, errAgain) {
		t.Fatalf("Update: %v; want the stale claim refused and the decision made again", err)
	}
	if _, err := store.Outcome(ctx, m.ASPID, "261201140000-ghost01"); !errors.Is(err, pinreset.ErrNoOutcome) {
		t.Fatalf("the stale decision was recorded: %v", err)
	}
	if cur, _ := store.FindMemberByID(ctx, m.ID); cur.PINHash != "set-by-261201140000-0000019" || cur.Version != staleVersion+20 {
		t.Fatalf("member at version %d with %q after the stale writer", cur.Version, cur.PINHash)
	}
}
