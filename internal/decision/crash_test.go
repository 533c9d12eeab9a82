package decision_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/decision/decisiontest"
	"github.com/kmwallet/pinreset/internal/decision/memstore"
	"github.com/kmwallet/pinreset/internal/decision/storetest"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// crashPoints are the rows of the README's crash-point table ("How it
// works"): where a worker can die in a command's journey, made here by a
// dependency failing at that step (the attempt ends there, as a crash
// would end it), then the same message handled again by healthy
// dependencies, as the redelivery after a crash is. From the outside the
// result must be as if nothing had happened: the client's answers agree,
// the decision is taken once, its event published (the same id; never
// first after a later version's), its audit record appended once, its
// outcome recorded, the outbox empty.
var crashPoints = []struct {
	point string
	// crash sets the failure up on h; heal undoes it.
	crash, heal func(h *harness)
	answered    bool // the client got its answer before the crash
}{
	{"before the commit (deciding)",
		func(h *harness) { h.hasher.Fail.Store(true) }, func(h *harness) { h.hasher.Fail.Store(false) }, false},
	{"after the commit, before the result",
		func(h *harness) { h.pub.Refuse(true, false) }, func(h *harness) { h.pub.Refuse(false, false) }, false},
	{"after the result, before the events",
		func(h *harness) { h.pub.Refuse(false, true) }, func(h *harness) { h.pub.Refuse(false, false) }, true},
	{"after the events, before the audit record",
		func(h *harness) { h.failAudit(true) }, func(h *harness) { h.failAudit(false) }, true},
	{"after the audit record, before the outcome record",
		func(h *harness) { h.store.FailRecord.Store(true) }, func(h *harness) { h.store.FailRecord.Store(false) }, true},
	{"after the outcome record (delivered), before the offset commit",
		func(h *harness) {}, func(h *harness) {}, true},
}

// failAudit makes the trail refuse appends (the fake's switch, or for the
// real trail a wrapper).
func (h *harness) failAudit(fail bool) {
	if h.mem != nil {
		h.mem.Fail.Store(fail)
		return
	}
	h.auditFails.Store(fail)
}

// stores are the two stores the crash table runs on.
func stores(t *testing.T) map[string]func(t *testing.T) (storetest.Store, decision.Trail) {
	return map[string]func(t *testing.T) (storetest.Store, decision.Trail){
		"memstore": func(*testing.T) (storetest.Store, decision.Trail) { return memstore.New(), nil },
		"FerretDB": func(t *testing.T) (storetest.Store, decision.Trail) {
			d := decisiontest.NewDeps(t)
			store, err := mongostore.Open(mongostore.Config{URI: d.Infra.MongoURI(), Database: "crash"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = store.Close(context.Background()) })
			if err := compose.EnsureIndexes(context.Background(), store); err != nil {
				t.Fatal(err)
			}
			return store, mongostore.NewAuditLog(store.Database())
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
						if cp.point != "after the outcome record (delivered), before the offset commit" && !crashed {
							t.Fatal("the failure did not end the attempt")
						}
						if got := len(h.pub.ResultsOf(c.CorrelationID)) > 0; got != cp.answered {
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
// published in order, one audit record, its outcome recorded, nothing left
// to deliver.
func (h *harness) checkOnce(t *testing.T, c pinreset.Command, memberID string, want pinreset.Code) {
	t.Helper()
	for _, code := range h.pub.ResultsOf(c.CorrelationID) {
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
	if n != 1 || m.Version != 2 || len(m.Outbox) != 0 {
		t.Errorf("the member at version %d holds the command %d times with %d undelivered, want once at version 2, all delivered", m.Version, n, len(m.Outbox))
	}
	if changed := h.pinIs(memberID, c.NewPIN); changed != (want == pinreset.CodeSuccess) {
		t.Errorf("PIN changed %v with outcome %s", changed, want)
	}
	evs := h.events()
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
		return len(h.mem.Records(cid))
	}
	rs, err := h.realAudit().Find(context.Background(), cid, "")
	if err != nil {
		t.Fatal(err)
	}
	return len(rs)
}

// TestRelayDeliversWhatADeadWorkerLeft: a decision committed and answered
// whose worker died before delivering it, and whose command does not come
// back (parked elsewhere, purged by an operator), is delivered by the
// relay once it is older than RelayAfter: its event, audit record and
// outcome record; and the member's next decision, coming first, delivers
// it before its own, so the events keep their order.
func TestRelayDeliversWhatADeadWorkerLeft(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store, auditor := open(t)
			h := newHarness(t, store, auditor)
			id := "m-relay-" + name
			h.member(id, "246810", "")
			first := h.cmd(pinreset.KindChange, id, "246810", "581379")
			h.pub.Refuse(false, true)
			if err := h.handle(first); err == nil {
				t.Fatal("the events were refused and Handle succeeded")
			}
			h.pub.Refuse(false, false)
			if n, err := h.svc.Relay(context.Background(), 10); err != nil || n != 0 {
				t.Fatalf("a young decision relayed: %d, %v", n, err)
			}
			h.clock.Store(int64(decision.RelayAfter + time.Second))
			if n, err := h.svc.Relay(context.Background(), 10); err != nil || n != 1 {
				t.Fatalf("Relay: %d members, %v; want 1", n, err)
			}
			h.checkOnce(t, first, id, pinreset.CodeSuccess)

			// The next decision delivers an undelivered one first.
			second := h.cmd(pinreset.KindReset, id, "", "975318")
			h.pub.Refuse(false, true)
			if err := h.handle(second); err == nil {
				t.Fatal("the events were refused and Handle succeeded")
			}
			h.pub.Refuse(false, false)
			third := h.cmd(pinreset.KindReset, id, "", "802468")
			if code := h.send(third); code != pinreset.CodeSuccess {
				t.Fatalf("the next decision: %s", code)
			}
			evs := h.events()
			if err := inOrder(evs); err != nil {
				t.Fatal(err)
			}
			if len(evs) != 3 || evs[1].version != 3 || evs[2].version != 4 {
				t.Fatalf("events %+v, want versions 2, 3, 4", evs)
			}
			if m := h.get(id); m.Version != 4 || len(m.Outbox) != 0 || !h.pinIs(id, "802468") {
				t.Fatalf("member at %d with %d undelivered", m.Version, len(m.Outbox))
			}
			for _, c := range []pinreset.Command{second, third} {
				if h.auditRecords(t, c.CorrelationID) != 1 {
					t.Fatalf("%s not audited once", c.CorrelationID)
				}
				if o, err := h.store.Outcome(context.Background(), c.ASPID, c.CorrelationID); err != nil || o.Code != pinreset.CodeSuccess {
					t.Fatalf("outcome of %s: %+v, %v", c.CorrelationID, o, err)
				}
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
			for _, code := range h.pub.ResultsOf(c.CorrelationID) {
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

// TestEachEventOnceWithoutFaults: without a fault every event is published
// once: a delivered decision is not delivered again by the member's next
// decisions (its outcome record marks it delivered).
func TestEachEventOnceWithoutFaults(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store, auditor := open(t)
			h := newHarness(t, store, auditor)
			id := "m-once-" + name
			h.member(id, "246810", "")
			for i, pin := range []string{"581379", "975318", "802468"} {
				if code := h.send(h.cmd(pinreset.KindReset, id, "", pin)); code != pinreset.CodeSuccess {
					t.Fatalf("command %d: %s", i, code)
				}
			}
			evs := h.events()
			if len(evs) != 3 {
				t.Fatalf("%d events published, want 3: %+v", len(evs), evs)
			}
		})
	}
}
