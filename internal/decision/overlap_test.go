package decision_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/decision/decisiontest"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// gatedStore is the real store with hooks between its steps, so that a
// test can interleave two deciders exactly as a rebalance can.
type gatedStore struct {
	*mongostore.Store
	afterFirstRead func() // once, when the first decision is about to be made on the state read
	once           sync.Once
	afterUpdate    func(err error)
}

func (g *gatedStore) Update(ctx context.Context, aspID, loginID, cid string, decide func(pinreset.Member, *pinreset.Outcome) (pinreset.Member, bool, error)) (pinreset.Member, error) {
	c, err := g.Store.Update(ctx, aspID, loginID, cid, func(m pinreset.Member, rec *pinreset.Outcome) (pinreset.Member, bool, error) {
		if g.afterFirstRead != nil {
			g.once.Do(g.afterFirstRead)
		}
		return decide(m, rec)
	})
	if g.afterUpdate != nil {
		g.afterUpdate(err)
	}
	return c, err
}

type codePublisher struct {
	mu    sync.Mutex
	codes []pinreset.Code
}

func (p *codePublisher) Answer(_ context.Context, r pinreset.Result) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.codes = append(p.codes, r.Code)
	return nil
}

func (p *codePublisher) Announce(context.Context, []pinreset.Event) error { return nil }

// wait blocks until c is closed, for at most 5 s: with the fix a gate may
// legitimately never open (the other processor takes another path).
func wait(c <-chan struct{}) {
	select {
	case <-c:
	case <-time.After(5 * time.Second):
	}
}

// TestOverlappingOwnersAgree: after a rebalance two workers may decide the
// same command at once. Worker A's clock finds it expired; worker B applies
// it. Whichever commits to the member first, both answer the same outcome,
// the recorded outcome is that one, and it is what the member's state says
// (no "expired, nothing changed" beside a PIN that was changed).
func TestOverlappingOwnersAgree(t *testing.T) {
	ctx := context.Background()
	d := decisiontest.NewDeps(t)
	in, hasher, fingerprints := d.Infra, d.Hasher, d.Fingerprints
	const asp = "KMTESTASP000001"

	for i, tc := range []struct {
		rule string
		// expiredFirst: the worker that finds the command expired commits
		// to the member first; else the one that applies it does.
		expiredFirst bool
		want         pinreset.Code
	}{
		{"the worker applying it commits first: both answer success", false, pinreset.CodeSuccess},
		{"the worker finding it expired commits first: both answer expired, nothing applied", true, pinreset.CodeExpired},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			store, err := mongostore.Open(mongostore.Config{URI: in.MongoURI(), Database: "overlap" + string(rune('a'+i))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = store.Close(context.Background()) })
			if err := compose.EnsureIndexes(ctx, store); err != nil {
				t.Fatal(err)
			}
			old, err := hasher.Hash("246810")
			if err != nil {
				t.Fatal(err)
			}
			if err := store.PutMember(ctx, pinreset.Member{ID: "m1", ASPID: asp, LoginID: "m1@example.com", PINHash: old}); err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			cmd := pinreset.Command{CorrelationID: "261201120000-00000a1", RequestID: "r1", ASPID: asp, Kind: pinreset.KindReset,
				LoginID: "m1@example.com", NewPIN: "581379", AcceptedAt: now, ExpiresAt: now.Add(2 * time.Minute)}

			// first commits to the member, second has read the member before
			// that commit and decides only after it.
			secondRead, firstCommitted := make(chan struct{}), make(chan struct{})
			var closeCommitted sync.Once
			first := &gatedStore{Store: store, afterUpdate: func(err error) {
				closeCommitted.Do(func() { close(firstCommitted) })
			}}
			second := &gatedStore{Store: store, afterFirstRead: func() { close(secondRead); wait(firstCommitted) }}

			svc := func(s *gatedStore, clock func() time.Time, pub *codePublisher) *decision.Service {
				return &decision.Service{Store: s, Trail: mongostore.NewAuditLog(store.Database()), Fingerprinter: fingerprints,
					Publisher: pub, Hasher: hasher, Rules: pinreset.DefaultRules(), WorkerID: "w", Now: clock}
			}
			applying := func() time.Time { return time.Now() }
			expiring := func() time.Time { return time.Now().Add(10 * time.Minute) }
			firstClock, secondClock := applying, expiring
			if tc.expiredFirst {
				firstClock, secondClock = expiring, applying
			}
			pubFirst, pubSecond := &codePublisher{}, &codePublisher{}
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, err := svc(second, secondClock, pubSecond).Handle(ctx, cmd)
				errs <- err
			}()
			go func() {
				defer wg.Done()
				wait(secondRead)
				_, err := svc(first, firstClock, pubFirst).Handle(ctx, cmd)
				errs <- err
			}()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("Handle: %v", err)
				}
			}

			rec, err := store.Outcome(ctx, asp, cmd.CorrelationID)
			if err != nil {
				t.Fatal(err)
			}
			m, err := store.FindMember(ctx, asp, "m1@example.com")
			if err != nil {
				t.Fatal(err)
			}
			changed, _, err := hasher.Verify("581379", m.PINHash)
			if err != nil {
				t.Fatal(err)
			}
			var inHistory pinreset.Code
			for _, a := range m.Recent {
				if a.CorrelationID == cmd.CorrelationID {
					inHistory = a.Code
				}
			}
			t.Logf("recorded %s, member history %q, PIN changed %v, answers %v and %v", rec.Code, inHistory, changed, pubFirst.codes, pubSecond.codes)
			if rec.Code != tc.want {
				t.Errorf("recorded outcome %s, want %s", rec.Code, tc.want)
			}
			if changed != (tc.want == pinreset.CodeSuccess) {
				t.Errorf("PIN changed = %v with the recorded outcome %s", changed, rec.Code)
			}
			if inHistory != "" && inHistory != rec.Code {
				t.Errorf("the member's history says %s, the recorded outcome %s", inHistory, rec.Code)
			}
			for _, c := range append(pubFirst.codes, pubSecond.codes...) {
				if c != rec.Code {
					t.Errorf("a worker answered %s, the recorded outcome is %s", c, rec.Code)
				}
			}
		})
	}
}
