package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/worker"
	"github.com/kmwallet/pinreset/internal/worker/memstore"
	"github.com/kmwallet/pinreset/internal/worker/storetest"
)

// crashPoints are the rows of the README's crash-point table ("How it
// works"): where a worker can die in a command's journey, made here by a
// dependency failing at that step (the attempt ends there, as a crash
// would end it), then the same message handled again by healthy
// dependencies, as the redelivery after a crash is. From the outside the
// result must be as if nothing had happened: the client's answers agree,
// the decision is taken once, its event published (the same id; never after
// a later version's), its audit record appended once, the member settled.
var crashPoints = []struct {
	point string
	// crash sets the failure up on h; heal undoes it.
	crash, heal func(h *harness)
	answered    bool // the client got its answer before the crash
}{
	{"before the commit (deciding)",
		func(h *harness) { h.hasher.fail.Store(true) }, func(h *harness) { h.hasher.fail.Store(false) }, false},
	{"after the commit, before the result",
		func(h *harness) { h.bus.setRefused(kafkabus.TopicResults, true) }, func(h *harness) { h.bus.setRefused(kafkabus.TopicResults, false) }, false},
	{"after the result, before the events",
		func(h *harness) { h.bus.setRefused(kafkabus.TopicEvents, true) }, func(h *harness) { h.bus.setRefused(kafkabus.TopicEvents, false) }, true},
	{"after the events, before the audit record",
		func(h *harness) { h.failAudit(true) }, func(h *harness) { h.failAudit(false) }, true},
	{"after the audit record, before the settlement",
		func(h *harness) { h.store.fail.Store(true) }, func(h *harness) { h.store.fail.Store(false) }, true},
	{"after the settlement, before the offset commit",
		func(h *harness) {}, func(h *harness) {}, true},
}

// failAudit makes the trail refuse appends (the fake's switch, or for the
// real trail a wrapper).
func (h *harness) failAudit(fail bool) {
	if h.mem != nil {
		h.mem.fail.Store(fail)
		return
	}
	h.auditFails.Store(fail)
}

// stores are the two stores the crash table runs on.
func stores(t *testing.T) map[string]func(t *testing.T) (storetest.Store, worker.Auditor) {
	return map[string]func(t *testing.T) (storetest.Store, worker.Auditor){
		"memstore": func(*testing.T) (storetest.Store, worker.Auditor) { return memstore.New(), nil },
		"FerretDB": func(t *testing.T) (storetest.Store, worker.Auditor) {
			d := newDeps(t)
			store, err := mongostore.Open(mongostore.Config{URI: d.infra.MongoURI(), Database: "crash"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = store.Close(context.Background()) })
			if err := worker.EnsureIndexes(context.Background(), store); err != nil {
				t.Fatal(err)
			}
			return store, audit.New(store.Database())
		},
	}
}

// TestCrashPoints: every row of the crash-point table, for a PIN set and
// for a wrong PIN (a decision without events), on both stores.
func TestCrashPoints(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store, auditor := open(t)
			for i, cp := range crashPoints {
				for _, kind := range []string{"PIN set", "wrong PIN"} {
					if kind == "wrong PIN" && cp.point == "after the result, before the events" {
						continue // a decision without events has no such point
					}
					t.Run(cp.point+", "+kind, func(t *testing.T) {
						h := newHarness(t, store, auditor)
						id := fmt.Sprintf("m-crash-%d-%d", i, len(kind))
						h.member(id, "246810", "")
						c := h.cmd(pinreset.KindChange, id, "246810", "581379")
						want := pinreset.CodeSuccess
						if kind == "wrong PIN" {
							c.CurrentPIN, want = "135791", pinreset.CodeInvalidUserInfo
						}
						c.CorrelationID = fmt.Sprintf("261201130000-%03d%04x", i, len(kind)) // unique across the shared store
						cp.crash(h)
						err := h.handle(c)
						cp.heal(h)
						crashed := err != nil
						if cp.point != "after the settlement, before the offset commit" && !crashed {
							t.Fatal("the failure did not end the attempt")
						}
						if got := len(h.bus.resultsOf(c.CorrelationID)) > 0; got != cp.answered {
							t.Fatalf("answered before the crash: %v, want %v", got, cp.answered)
						}
						// The redelivery.
						if code := h.send(c); code != want {
							t.Fatalf("redelivery answered %s, want %s", code, want)
						}
						h.checkOnce(t, c, id, want)
					})
				}
			}
		})
	}
}

// checkOnce checks the state a command leaves from the outside: every
// answer the same, one decision in the member's history, its event
// published in order, one audit record, the member settled.
func (h *harness) checkOnce(t *testing.T, c pinreset.Command, memberID string, want pinreset.Code) {
	t.Helper()
	for _, code := range h.bus.resultsOf(c.CorrelationID) {
		if code != want {
			t.Errorf("an answer %s, want %s", code, want)
		}
	}
	o, err := h.store.Outcome(context.Background(), c.ASPID, c.CorrelationID)
	if err != nil || o.Code != want {
		t.Errorf("recorded %+v, %v; want %s", o, err, want)
	}
	m := h.get(memberID)
	n := 0
	for _, a := range m.Recent {
		if a.CorrelationID == c.CorrelationID {
			n++
		}
	}
	if n != 1 || m.Version != 2 {
		t.Errorf("the member at version %d holds the command %d times, want once at version 2 (settled)", m.Version, n)
	}
	if changed := h.pinIs(memberID, c.NewPIN); changed != (want == pinreset.CodeSuccess) {
		t.Errorf("PIN changed %v with outcome %s", changed, want)
	}
	evs := h.bus.events()
	if err := inOrder(evs); err != nil {
		t.Error(err)
	}
	ids := map[string]bool{}
	for _, e := range evs {
		if e.member == memberID {
			ids[e.id] = true
		}
	}
	if wantEvents := map[bool]int{true: 1, false: 0}[want == pinreset.CodeSuccess]; len(ids) != wantEvents {
		t.Errorf("%d distinct events for the member, want %d", len(ids), wantEvents)
	}
	if got := h.auditRecords(t, c.CorrelationID); got != 1 {
		t.Errorf("%d audit records of the command, want 1", got)
	}
}

func (h *harness) auditRecords(t *testing.T, cid string) int {
	t.Helper()
	if h.mem != nil {
		return len(h.mem.records(cid))
	}
	rs, err := h.realAudit().Find(context.Background(), cid, "")
	if err != nil {
		t.Fatal(err)
	}
	return len(rs)
}

// TestUnsettledPastItsLease: a decision committed and never settled whose
// command does not come back (its message parked elsewhere, or an operator
// skipped it) holds up the member's next decision for the lease, after
// which that decision settles it first: its event goes out before the next
// one's, its audit record is appended, then the next is decided on it.
func TestUnsettledPastItsLease(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) (storetest.Store, worker.Auditor){
		"memstore": func(*testing.T) (storetest.Store, worker.Auditor) {
			s := memstore.New()
			s.Lease, s.Patience = 300*time.Millisecond, 300*time.Millisecond
			return s, nil
		},
		"FerretDB": func(t *testing.T) (storetest.Store, worker.Auditor) {
			d := newDeps(t)
			store, err := mongostore.Open(mongostore.Config{URI: d.infra.MongoURI(), Database: "lease", SettleLease: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = store.Close(context.Background()) })
			if err := worker.EnsureIndexes(context.Background(), store); err != nil {
				t.Fatal(err)
			}
			return store, audit.New(store.Database())
		},
	} {
		t.Run(name, func(t *testing.T) {
			store, auditor := open(t)
			h := newHarness(t, store, auditor)
			h.member("m1", "246810", "")
			first := h.cmd(pinreset.KindChange, "m1", "246810", "581379")
			h.bus.setRefused(kafkabus.TopicEvents, true)
			if err := h.handle(first); err == nil {
				t.Fatal("the events were refused and Handle succeeded")
			}
			h.bus.setRefused(kafkabus.TopicEvents, false)
			second := h.cmd(pinreset.KindReset, "m1", "", "975318")
			var err error
			deadline := time.Now().Add(10 * time.Second)
			for err = h.handle(second); err != nil && time.Now().Before(deadline); err = h.handle(second) {
				// ErrBusy within the lease: the consumer retries.
			}
			if err != nil {
				t.Fatalf("the next decision never went through: %v", err)
			}
			evs := h.bus.events()
			if len(evs) != 2 || evs[0].version != 2 || evs[1].version != 3 {
				t.Fatalf("events %+v, want version 2's then version 3's", evs)
			}
			if m := h.get("m1"); m.Version != 3 || !h.pinIs("m1", "975318") {
				t.Fatalf("member at %d", m.Version)
			}
			if h.auditRecords(t, first.CorrelationID) != 1 || h.auditRecords(t, second.CorrelationID) != 1 {
				t.Fatal("not audited once each")
			}
			// The first command's redelivery, when it comes, changes nothing.
			if code := h.send(first); code != pinreset.CodeSuccess || len(h.bus.events()) != 2 || h.get("m1").Version != 3 {
				t.Fatalf("late redelivery: %s, %d events", code, len(h.bus.events()))
			}
		})
	}
}

// TestCrashPointUnknownMember is the table's last row: a command for an
// unknown loginId dies after its outcome is recorded and before its audit
// record; the redelivery answers the recorded outcome and appends the
// record once.
func TestCrashPointUnknownMember(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store, auditor := open(t)
			h := newHarness(t, store, auditor)
			c := h.cmd(pinreset.KindReset, "nobody-"+name, "", "581379")
			h.failAudit(true)
			if err := h.handle(c); err == nil {
				t.Fatal("the audit trail refused and Handle succeeded")
			}
			h.failAudit(false)
			if code := h.send(c); code != pinreset.CodeUserNotFound {
				t.Fatalf("redelivery answered %s", code)
			}
			if o, err := h.store.Outcome(context.Background(), c.ASPID, c.CorrelationID); err != nil || o.Code != pinreset.CodeUserNotFound {
				t.Fatalf("recorded %+v, %v", o, err)
			}
			for _, code := range h.bus.resultsOf(c.CorrelationID) {
				if code != pinreset.CodeUserNotFound {
					t.Errorf("an answer %s", code)
				}
			}
			if n := h.auditRecords(t, c.CorrelationID); n != 1 {
				t.Fatalf("%d audit records, want 1", n)
			}
		})
	}
}

// stalePut is a store whose first Update reports an operator's put left
// unsettled past its lease (PutMember died between its claim and its
// settlement): no command, no events, no outcome.
type stalePut struct {
	storetest.Store
	put  pinreset.Commit
	once bool
}

func (s *stalePut) Update(ctx context.Context, aspID, loginID string, decide func(pinreset.Member) (pinreset.Commit, error)) (pinreset.Commit, error) {
	if !s.once {
		s.once = true
		return pinreset.Commit{}, &pinreset.UnsettledError{Commit: s.put}
	}
	return s.Store.Update(ctx, aspID, loginID, decide)
}

// TestUnsettledPutIsSettledWithoutAudit: the decision a command finds left
// unsettled may be an operator's put; it is settled (the member document)
// with no audit record, and the command is decided on it.
func TestUnsettledPutIsSettledWithoutAudit(t *testing.T) {
	mem := memstore.New()
	fake := &stalePut{Store: mem}
	h := newHarness(t, fake, nil)
	h.member("m1", "246810", "")
	cur := h.get("m1")
	put := cur
	put.Version++
	put.PINHash, _ = h.plain.Hash("975318") // what the operator set
	fake.put = pinreset.Commit{Member: put, Outcome: pinreset.Outcome{MemberID: put.ID, CompletedAt: time.Now().Add(-time.Hour)}}
	// The put as memstore would hold it once claimed.
	if err := mem.Settle(context.Background(), pinreset.Commit{Member: cur}); err != nil {
		t.Fatal(err)
	}
	c := h.cmd(pinreset.KindChange, "m1", "975318", "581379")
	if code := h.send(c); code != pinreset.CodeSuccess {
		t.Fatalf("the change on the put's PIN: %s", code)
	}
	if m := h.get("m1"); m.Version != put.Version+1 || !h.pinIs("m1", "581379") {
		t.Fatalf("member at %d", m.Version)
	}
	if n := len(h.mem.records("")); n != 0 {
		t.Fatalf("%d audit records without a correlation id", n)
	}
}
