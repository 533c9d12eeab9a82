// Package storetest is the contract of decision.Store as a test suite: Run
// it against every implementation (mongostore on FerretDB, memstore), so
// that what the decision service's unit tests assume of their fake is what the
// database does.
package storetest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Store is a decision.Store that can be seeded.
type Store interface {
	decision.Store
	PutMember(ctx context.Context, m pinreset.Member) error
}

// New returns an empty store.
type New func(t *testing.T) Store

const asp = "KMTESTASP000001"

// at is a time the database keeps exactly (BSON dates are milliseconds).
var at = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)

func seed(t *testing.T, s Store, id string) pinreset.Member {
	t.Helper()
	m := pinreset.Member{ID: id, ASPID: asp, LoginID: id + "@example.com", PINHash: "hash-of-" + id, UpdatedAt: at}
	if err := s.PutMember(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return read(t, s, id)
}

func read(t *testing.T, s Store, id string) pinreset.Member {
	t.Helper()
	got, err := s.FindMemberByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return *got
}

func outcome(m pinreset.Member, cid string, code pinreset.Code) pinreset.Outcome {
	return pinreset.Outcome{ASPID: m.ASPID, CorrelationID: cid, Kind: pinreset.KindReset, Fingerprint: "f1:" + cid, Code: code,
		MemberID: m.ID, AcceptedAt: at, CompletedAt: at, WorkerID: "w1"}
}

// decided is the decision of cid about m: a PIN set with one event, its
// outcome and event in the outbox.
func decided(m pinreset.Member, cid string) pinreset.Member {
	next := m
	next.Version++
	next.PINHash = "hash-set-by-" + cid
	next.Recent = append(append([]pinreset.Applied(nil), m.Recent...), pinreset.Applied{CorrelationID: cid, Code: pinreset.CodeSuccess, At: at, Fingerprint: "f1:" + cid})
	next.UpdatedAt = at
	next.Outbox = append(append([]pinreset.Pending(nil), m.Outbox...), pinreset.Pending{Version: next.Version,
		Outcome: outcome(m, cid, pinreset.CodeSuccess),
		Events: []pinreset.Event{{ID: m.ID + ":" + cid, Type: pinreset.EventPINSet, Version: next.Version, MemberID: m.ID, ASPID: m.ASPID,
			CorrelationID: cid, Kind: pinreset.KindReset, At: at}}})
	return next
}

// commit decides cid about the member of login and commits it.
func commit(ctx context.Context, s Store, login, cid string) (pinreset.Member, error) {
	return s.Update(ctx, asp, login, cid, func(cur pinreset.Member, _ *pinreset.Outcome) (pinreset.Member, bool, error) {
		return decided(cur, cid), true, nil
	})
}

// Run runs the contract against the stores newStore makes.
func Run(t *testing.T, newStore New) {
	ctx := context.Background()

	t.Run("no member; an outcome recorded once, the first stands", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Update(ctx, asp, "nobody@example.com", "cid-none", func(pinreset.Member, *pinreset.Outcome) (pinreset.Member, bool, error) {
			t.Fatal("decide called without a member")
			return pinreset.Member{}, false, nil
		})
		if !errors.Is(err, pinreset.ErrMemberNotFound) {
			t.Fatalf("Update of an unknown login: %v, want ErrMemberNotFound", err)
		}
		if _, err := s.Outcome(ctx, asp, "cid-none"); !errors.Is(err, pinreset.ErrNoOutcome) {
			t.Fatalf("Outcome before Record: %v, want ErrNoOutcome", err)
		}
		o := pinreset.Outcome{ASPID: asp, CorrelationID: "cid-none", Kind: pinreset.KindReset, Fingerprint: "f1:x", Code: pinreset.CodeUserNotFound,
			AcceptedAt: at, CompletedAt: at, WorkerID: "w1"}
		if got, fresh, err := s.Record(ctx, o); err != nil || !fresh || got != o {
			t.Fatalf("Record: %+v, %v, %v", got, fresh, err)
		}
		if got, err := s.Outcome(ctx, asp, "cid-none"); err != nil || got != o {
			t.Fatalf("Outcome: %+v, %v; want %+v", got, err, o)
		}
		second := o
		second.Code = pinreset.CodeExpired
		if got, fresh, err := s.Record(ctx, second); err != nil || fresh || got != o {
			t.Fatalf("second Record: %+v, %v, %v; want the first outcome, not fresh", got, fresh, err)
		}
	})

	t.Run("a decision is committed with everything it carries", func(t *testing.T) {
		s := newStore(t)
		m := seed(t, s, "m-commit")
		m.WrongAttempts = []pinreset.Attempt{{Key: "f1:wrong", At: at}}
		m.Sets = []pinreset.SetClaim{{Fingerprint: "f1:set", CorrelationID: "cid-0", At: at}}
		m.LockedUntil = at.Add(time.Hour)
		m.CI = "ci"
		if err := s.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
		m = read(t, s, "m-commit")
		want := decided(m, "cid-1")
		want.LockedUntil, want.CI, want.WrongAttempts = time.Time{}, "", nil // fields a decision clears
		calls := 0
		got, err := s.Update(ctx, asp, m.LoginID, "cid-1", func(cur pinreset.Member, rec *pinreset.Outcome) (pinreset.Member, bool, error) {
			calls++
			if !reflect.DeepEqual(cur, m) || rec != nil {
				t.Errorf("decide got %+v, %v; want the stored state %+v and no record", cur, rec, m)
			}
			return want, true, nil
		})
		if err != nil || calls != 1 || !reflect.DeepEqual(got, want) {
			t.Fatalf("Update: %+v, %v after %d decisions", got, err, calls)
		}
		if cur := read(t, s, m.ID); !reflect.DeepEqual(cur, want) {
			t.Fatalf("stored %+v\nwant   %+v", cur, want)
		}
		// Nothing to write: the member as read is returned, unchanged.
		got, err = s.Update(ctx, asp, m.LoginID, "cid-1", func(cur pinreset.Member, _ *pinreset.Outcome) (pinreset.Member, bool, error) {
			return pinreset.Member{}, false, nil
		})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Update writing nothing: %+v, %v", got, err)
		}
	})

	t.Run("the transaction's recorded outcome comes with the member", func(t *testing.T) {
		s := newStore(t)
		a, b := seed(t, s, "m-a"), seed(t, s, "m-b")
		o := outcome(a, "cid-shared", pinreset.CodeSuccess)
		if _, _, err := s.Record(ctx, o); err != nil {
			t.Fatal(err)
		}
		var seen *pinreset.Outcome
		if _, err := s.Update(ctx, asp, b.LoginID, "cid-shared", func(cur pinreset.Member, rec *pinreset.Outcome) (pinreset.Member, bool, error) {
			seen = rec
			return cur, false, nil
		}); err != nil {
			t.Fatal(err)
		}
		if seen == nil || *seen != o {
			t.Fatalf("decide saw %+v, want member a's outcome %+v", seen, o)
		}
	})

	t.Run("decide's error is returned and nothing is stored", func(t *testing.T) {
		s := newStore(t)
		m := seed(t, s, "m-err")
		boom := errors.New("hasher down")
		if _, err := s.Update(ctx, asp, m.LoginID, "cid-err", func(pinreset.Member, *pinreset.Outcome) (pinreset.Member, bool, error) {
			return pinreset.Member{}, false, boom
		}); !errors.Is(err, boom) {
			t.Fatalf("Update: %v, want decide's error", err)
		}
		bad := decided(m, "cid-skip")
		bad.Version += 2
		if _, err := s.Update(ctx, asp, m.LoginID, "cid-skip", func(pinreset.Member, *pinreset.Outcome) (pinreset.Member, bool, error) { return bad, true, nil }); err == nil {
			t.Fatal("a decision skipping versions was committed")
		}
		if cur := read(t, s, m.ID); cur.Version != m.Version {
			t.Fatalf("member at version %d, want %d", cur.Version, m.Version)
		}
	})

	t.Run("a decision that loses its version decides again on the winner's state", func(t *testing.T) {
		s := newStore(t)
		m := seed(t, s, "m-race")
		var seen []int64
		got, err := s.Update(ctx, asp, m.LoginID, "cid-mine", func(cur pinreset.Member, _ *pinreset.Outcome) (pinreset.Member, bool, error) {
			seen = append(seen, cur.Version)
			if len(seen) == 1 {
				if _, err := commit(ctx, s, m.LoginID, "cid-other"); err != nil { // another command commits in between
					return pinreset.Member{}, false, err
				}
			}
			return decided(cur, "cid-mine"), true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 2 || seen[0] != m.Version || seen[1] != m.Version+1 || got.Version != m.Version+2 {
			t.Fatalf("decided on versions %v, committed %d; want %d then %d, committing %d", seen, got.Version, m.Version, m.Version+1, m.Version+2)
		}
		if cur := read(t, s, m.ID); len(cur.Outbox) != 2 || cur.Outbox[0].Outcome.CorrelationID != "cid-other" || cur.Outbox[1].Outcome.CorrelationID != "cid-mine" {
			t.Fatalf("outbox %+v, want the other decision's then mine", cur.Outbox)
		}
	})

	t.Run("of deciders racing from one version exactly one commits it", func(t *testing.T) {
		s := newStore(t)
		m := seed(t, s, "m-many")
		const n = 8
		var wg sync.WaitGroup
		start := make(chan struct{})
		var mu sync.Mutex
		onVersion := map[int64]int{} // commits built on each version
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				cid := "cid-" + string(rune('a'+i))
				var built int64
				_, err := s.Update(ctx, asp, m.LoginID, cid, func(cur pinreset.Member, _ *pinreset.Outcome) (pinreset.Member, bool, error) {
					built = cur.Version
					return decided(cur, cid), true, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				onVersion[built]++
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		cur := read(t, s, m.ID)
		if cur.Version != m.Version+n || len(cur.Outbox) != n || len(cur.Recent) != n {
			t.Fatalf("member at version %d with %d pending and %d recent, want %d, %d, %d", cur.Version, len(cur.Outbox), len(cur.Recent), m.Version+n, n, n)
		}
		for v, k := range onVersion {
			if k != 1 {
				t.Errorf("%d decisions committed on version %d", k, v)
			}
		}
		for i, p := range cur.Outbox {
			if p.Version != m.Version+int64(i)+1 {
				t.Fatalf("outbox out of version order: %+v", cur.Outbox)
			}
		}
	})

	t.Run("a decision whose outcome is recorded is delivered; pruned unless the member moved", func(t *testing.T) {
		s := newStore(t)
		m := seed(t, s, "m-out")
		for _, cid := range []string{"cid-1", "cid-2", "cid-3"} {
			if _, err := commit(ctx, s, m.LoginID, cid); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Undelivered(ctx, time.Now(), 10); err != nil || len(got) != 1 || got[0].ID != m.ID || len(got[0].Outbox) != 3 {
			t.Fatalf("Undelivered: %+v, %v", got, err)
		}
		if got, err := s.Undelivered(ctx, at, 10); err != nil || len(got) != 0 {
			t.Fatalf("Undelivered before the decisions: %d members, %v", len(got), err)
		}
		cur := read(t, s, m.ID)
		for _, p := range cur.Outbox[:2] {
			if _, _, err := s.Record(ctx, p.Outcome); err != nil {
				t.Fatal(err)
			}
		}
		cur = read(t, s, m.ID)
		if len(cur.Outbox) != 1 || cur.Outbox[0].Version != m.Version+3 {
			t.Fatalf("after recording two outcomes the outbox reads %+v, want version %d alone", cur.Outbox, m.Version+3)
		}
		// The next decision keeps only what is undelivered.
		if _, err := commit(ctx, s, m.LoginID, "cid-4"); err != nil {
			t.Fatal(err)
		}
		cur = read(t, s, m.ID)
		if len(cur.Outbox) != 2 || cur.Outbox[0].Version != m.Version+3 || cur.Outbox[1].Version != m.Version+4 {
			t.Fatalf("outbox %+v, want versions %d and %d", cur.Outbox, m.Version+3, m.Version+4)
		}
		// Prune at a version the member has left changes nothing; at its
		// version it empties the outbox.
		stale := cur
		stale.Version--
		if err := s.Prune(ctx, []pinreset.Member{stale}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Undelivered(ctx, time.Now(), 10); err != nil || len(got) != 1 {
			t.Fatalf("after a stale prune: %d members undelivered, %v", len(got), err)
		}
		if err := s.Prune(ctx, []pinreset.Member{cur}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Undelivered(ctx, time.Now(), 10); err != nil || len(got) != 0 {
			t.Fatalf("after the prune: %d members undelivered, %v", len(got), err)
		}
		if cur := read(t, s, m.ID); len(cur.Outbox) != 0 || cur.Version != m.Version+4 {
			t.Fatalf("after the prune: %+v", cur)
		}
	})

	t.Run("a decision sets the audit chain's head", func(t *testing.T) {
		s := newStore(t)
		m := seed(t, s, "m-audit")
		link := pinreset.AuditLink{Seq: 4, Hash: "h4"}
		if _, err := s.Update(ctx, asp, m.LoginID, "cid-1", func(cur pinreset.Member, _ *pinreset.Outcome) (pinreset.Member, bool, error) {
			next := decided(cur, "cid-1")
			next.Audit, next.Outbox[0].Audit, next.Outbox[0].AuditPrev = link, link, "h3"
			return next, true, nil
		}); err != nil {
			t.Fatal(err)
		}
		cur := read(t, s, m.ID)
		if cur.Audit != link || cur.Outbox[0].Audit != link || cur.Outbox[0].AuditPrev != "h3" {
			t.Fatalf("stored audit head %+v, pending %+v", cur.Audit, cur.Outbox[0])
		}
	})

	t.Run("a put keeps the outbox and the audit link", func(t *testing.T) {
		s := newStore(t)
		m := seed(t, s, "m-put")
		if _, err := commit(ctx, s, m.LoginID, "cid-1"); err != nil {
			t.Fatal(err)
		}
		put := m
		put.PINHash = "hash-by-operator"
		if err := s.PutMember(ctx, put); err != nil {
			t.Fatal(err)
		}
		cur := read(t, s, m.ID)
		if cur.Version != m.Version+2 || cur.PINHash != "hash-by-operator" || len(cur.Outbox) != 1 {
			t.Fatalf("after a put: %+v", cur)
		}
		before := cur
		if _, err := s.Update(ctx, asp, m.LoginID, "cid-2", func(c pinreset.Member, _ *pinreset.Outcome) (pinreset.Member, bool, error) {
			next := decided(c, "cid-2")
			next.Audit = pinreset.AuditLink{Seq: 9, Hash: "h9"}
			return next, true, nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMember(ctx, put); err != nil {
			t.Fatal(err)
		}
		if cur := read(t, s, m.ID); cur.Audit != (pinreset.AuditLink{Seq: 9, Hash: "h9"}) || len(cur.Outbox) != len(before.Outbox)+1 {
			t.Fatalf("a put changed the audit head or the outbox: %+v", cur)
		}
	})
}
