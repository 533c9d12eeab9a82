// Package storetest is the contract of worker.Store as a test suite: Run
// it against every implementation (mongostore on FerretDB, memstore), so
// that what the worker's unit tests assume of their fake is what the
// database does.
package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/worker"
)

// Store is a worker.Store that can be seeded.
type Store interface {
	worker.Store
	PutMember(ctx context.Context, m pinreset.Member) error
}

// New returns an empty store whose unsettled decisions are reported as
// unsettled after lease (and ErrBusy before).
type New func(t *testing.T, lease time.Duration) Store

const asp = "KMTESTASP000001"

// at is a time the database keeps exactly (BSON dates are milliseconds).
var at = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)

func seed(t *testing.T, s Store, id string) pinreset.Member {
	t.Helper()
	m := pinreset.Member{ID: id, ASPID: asp, LoginID: id + "@example.com", PINHash: "hash-of-" + id, UpdatedAt: at}
	if err := s.PutMember(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindMemberByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return *got
}

// decision is the decision of cid about m: a PIN set with one event.
func decision(m pinreset.Member, cid string, code pinreset.Code) pinreset.Commit {
	next := m
	next.Version++
	next.PINHash = "hash-set-by-" + cid
	next.Recent = append(append([]pinreset.Applied(nil), m.Recent...), pinreset.Applied{CorrelationID: cid, Code: code, At: at, Fingerprint: "f1:" + cid})
	next.UpdatedAt = at
	return pinreset.Commit{
		Outcome: pinreset.Outcome{ASPID: m.ASPID, CorrelationID: cid, Kind: pinreset.KindReset, Fingerprint: "f1:" + cid, Code: code,
			MemberID: m.ID, AcceptedAt: at, CompletedAt: time.Now().UTC().Truncate(time.Millisecond), WorkerID: "w1"},
		Member: next,
		Events: []pinreset.Event{{ID: m.ID + ":" + cid, Type: pinreset.EventPINSet, MemberID: m.ID, ASPID: m.ASPID, CorrelationID: cid,
			Kind: pinreset.KindReset, At: at}},
	}
}

func decided(t *testing.T, err error) pinreset.Commit {
	t.Helper()
	var d *pinreset.DecidedError
	if !errors.As(err, &d) {
		t.Fatalf("got %v, want a *pinreset.DecidedError", err)
	}
	return d.Commit
}

// Run runs the contract against the stores newStore makes.
func Run(t *testing.T, newStore New) {
	ctx := context.Background()
	long := time.Hour

	t.Run("no member, then its outcome recorded once", func(t *testing.T) {
		s := newStore(t, long)
		_, err := s.Update(ctx, asp, "nobody@example.com", func(pinreset.Member) (pinreset.Commit, error) {
			t.Fatal("decide called without a member")
			return pinreset.Commit{}, nil
		})
		if !errors.Is(err, pinreset.ErrMemberNotFound) {
			t.Fatalf("Update of an unknown login: %v, want ErrMemberNotFound", err)
		}
		if _, err := s.Outcome(ctx, asp, "cid-none"); !errors.Is(err, pinreset.ErrNoOutcome) {
			t.Fatalf("Outcome before Record: %v, want ErrNoOutcome", err)
		}
		o := pinreset.Outcome{ASPID: asp, CorrelationID: "cid-none", Kind: pinreset.KindReset, Fingerprint: "f1:x", Code: pinreset.CodeUserNotFound,
			AcceptedAt: at, CompletedAt: at, WorkerID: "w1"}
		if err := s.Record(ctx, o); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Outcome(ctx, asp, "cid-none"); err != nil || got != o {
			t.Fatalf("Outcome: %+v, %v; want %+v", got, err, o)
		}
		second := o
		second.Code = pinreset.CodeExpired
		c := decided(t, s.Record(ctx, second))
		if c.Outcome != o || !c.Settled {
			t.Fatalf("second Record: %+v, want the first outcome, settled", c)
		}
	})

	t.Run("a decision is committed with everything it carries, then settled", func(t *testing.T) {
		s := newStore(t, long)
		m := seed(t, s, "m-commit")
		m.WrongAttempts = []pinreset.Attempt{{Key: "f1:wrong", At: at}}
		m.Sets = []pinreset.SetClaim{{Fingerprint: "f1:set", CorrelationID: "cid-0", At: at}}
		m.Audit = pinreset.AuditLink{Seq: 7, Hash: "abc"}
		m.LockedUntil = at.Add(time.Hour)
		if err := s.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
		m = seed(t, s, "m-commit") // read back as stored (PutMember keeps the audit link it has)
		want := decision(m, "cid-1", pinreset.CodeSuccess)
		calls := 0
		got, err := s.Update(ctx, asp, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			calls++
			if !reflect.DeepEqual(cur, m) {
				t.Errorf("decide got %+v, want the settled state %+v", cur, m)
			}
			return want, nil
		})
		if err != nil || calls != 1 {
			t.Fatalf("Update: %v after %d decisions", err, calls)
		}
		if got.Settled || !reflect.DeepEqual(got.Member, want.Member) {
			t.Fatalf("Update returned %+v, want the decision unsettled", got)
		}
		if o, err := s.Outcome(ctx, asp, "cid-1"); err != nil || o != want.Outcome {
			t.Fatalf("Outcome: %+v, %v; want %+v", o, err, want.Outcome)
		}
		if cur, _ := s.FindMemberByID(ctx, m.ID); cur.Version != m.Version {
			t.Fatalf("before Settle the member reads at version %d, want the settled %d", cur.Version, m.Version)
		}
		// The same command again: refused by its id, with the decision as committed.
		again := decided(t, errOf(s.Update(ctx, asp, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			return decision(cur, "cid-1", pinreset.CodeSamePIN), nil
		})))
		if again.Settled || again.Outcome != want.Outcome || !reflect.DeepEqual(again.Member, want.Member) || !reflect.DeepEqual(again.Events, want.Events) {
			t.Fatalf("the command decided again: %+v, want the first decision, unsettled", again)
		}
		if err := s.Settle(ctx, got); err != nil {
			t.Fatal(err)
		}
		cur, err := s.FindMemberByID(ctx, m.ID)
		if err != nil || !reflect.DeepEqual(*cur, want.Member) {
			t.Fatalf("after Settle: %+v, %v; want %+v", cur, err, want.Member)
		}
		if c := decided(t, errOf(s.Update(ctx, asp, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			return decision(cur, "cid-1", pinreset.CodeSamePIN), nil
		}))); !c.Settled {
			t.Fatalf("after Settle the decision reads unsettled: %+v", c)
		}
	})

	t.Run("decide's error is returned and nothing is stored", func(t *testing.T) {
		s := newStore(t, long)
		m := seed(t, s, "m-err")
		boom := errors.New("hasher down")
		if _, err := s.Update(ctx, asp, m.LoginID, func(pinreset.Member) (pinreset.Commit, error) { return pinreset.Commit{}, boom }); !errors.Is(err, boom) {
			t.Fatalf("Update: %v, want decide's error", err)
		}
		if _, err := s.Outcome(ctx, asp, "cid-err"); !errors.Is(err, pinreset.ErrNoOutcome) {
			t.Fatalf("Outcome: %v, want none", err)
		}
		bad := decision(m, "cid-skip", pinreset.CodeSuccess)
		bad.Member.Version += 2
		if _, err := s.Update(ctx, asp, m.LoginID, func(pinreset.Member) (pinreset.Commit, error) { return bad, nil }); err == nil {
			t.Fatal("a decision skipping versions was committed")
		}
	})

	t.Run("a correlation id decided about one member is refused about another", func(t *testing.T) {
		s := newStore(t, long)
		a, b := seed(t, s, "m-a"), seed(t, s, "m-b")
		first, err := s.Update(ctx, asp, a.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			return decision(cur, "cid-shared", pinreset.CodeSuccess), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		c := decided(t, errOf(s.Update(ctx, asp, b.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			return decision(cur, "cid-shared", pinreset.CodeSuccess), nil
		})))
		if c.Outcome.MemberID != a.ID || c.Outcome != first.Outcome {
			t.Fatalf("got %+v, want member a's decision", c.Outcome)
		}
		if cur, _ := s.FindMemberByID(ctx, b.ID); cur.Version != b.Version {
			t.Fatalf("member b changed to version %d", cur.Version)
		}
		o := pinreset.Outcome{ASPID: asp, CorrelationID: "cid-shared", Code: pinreset.CodeRejected, CompletedAt: at}
		if c := decided(t, s.Record(ctx, o)); c.Outcome.MemberID != a.ID {
			t.Fatalf("Record over a member's decision: %+v", c.Outcome)
		}
	})

	t.Run("of two decisions on one version the second waits for the first to settle, then decides again", func(t *testing.T) {
		s := newStore(t, long)
		m := seed(t, s, "m-race")
		var seen []int64
		got, err := s.Update(ctx, asp, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			seen = append(seen, cur.Version)
			if len(seen) == 1 {
				// Another command commits and settles in between.
				other, err := s.Update(ctx, asp, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
					return decision(cur, "cid-other", pinreset.CodeSuccess), nil
				})
				if err != nil {
					return pinreset.Commit{}, err
				}
				go func() {
					time.Sleep(50 * time.Millisecond)
					_ = s.Settle(ctx, other)
				}()
			}
			return decision(cur, "cid-mine", pinreset.CodeSuccess), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 2 || seen[0] != m.Version || seen[1] != m.Version+1 || got.Member.Version != m.Version+2 {
			t.Fatalf("decided on versions %v, committed %d; want %d then %d, committing %d", seen, got.Member.Version, m.Version, m.Version+1, m.Version+2)
		}
	})

	t.Run("a decision left unsettled holds the member up, and is handed over past its lease", func(t *testing.T) {
		s := newStore(t, 300*time.Millisecond)
		m := seed(t, s, "m-stuck")
		stuck, err := s.Update(ctx, asp, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			return decision(cur, "cid-stuck", pinreset.CodeSuccess), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
		_, err = s.Update(ctx, asp, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			return decision(cur, "cid-next", pinreset.CodeSuccess), nil
		})
		var unsettled *pinreset.UnsettledError
		if !errors.As(err, &unsettled) {
			t.Fatalf("Update behind an unsettled decision past its lease: %v, want an UnsettledError", err)
		}
		if unsettled.Commit.Outcome != stuck.Outcome || !reflect.DeepEqual(unsettled.Commit.Events, stuck.Events) || unsettled.Commit.Settled {
			t.Fatalf("handed over %+v, want the stuck decision %+v", unsettled.Commit, stuck)
		}
		if err := s.Settle(ctx, unsettled.Commit); err != nil {
			t.Fatal(err)
		}
		next, err := s.Update(ctx, asp, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			return decision(cur, "cid-next", pinreset.CodeSuccess), nil
		})
		if err != nil || next.Member.Version != m.Version+2 {
			t.Fatalf("after settling it: %+v, %v", next.Member.Version, err)
		}

		busy := newStore(t, long)
		m = seed(t, busy, "m-busy")
		if _, err := busy.Update(ctx, asp, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			return decision(cur, "cid-1", pinreset.CodeSuccess), nil
		}); err != nil {
			t.Fatal(err)
		}
		_, err = busy.Update(ctx, asp, m.LoginID, func(cur pinreset.Member) (pinreset.Commit, error) {
			return decision(cur, "cid-2", pinreset.CodeSuccess), nil
		})
		if !errors.Is(err, pinreset.ErrBusy) {
			t.Fatalf("Update behind an unsettled decision within its lease: %v, want ErrBusy", err)
		}
	})

}

func errOf(_ pinreset.Commit, err error) error { return err }
