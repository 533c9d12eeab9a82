package decision_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/decision/decisiontest"
	"github.com/kmwallet/pinreset/internal/decision/memstore"
	"github.com/kmwallet/pinreset/internal/decision/storetest"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// The unit tests of the service run on in-memory fakes of its ports
// (decisiontest): plain commands in, results and events out, no sealing
// and no Kafka. The crash-point table runs on these and again on FerretDB.

const testASP = decisiontest.ASP

// published is an announced event: its id and the member version it announces.
type published struct {
	id, typ, member, cid string
	version              int64
}

// inOrder reports an event of a member first published after an event of
// a later version of the same member: what the README promises never
// happens. A copy of an event published before (a delivery done again) is
// a duplicate, which consumers drop by its id.
func inOrder(evs []published) error {
	last := map[string]int64{}
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.id] {
			continue
		}
		seen[e.id] = true
		if e.version < last[e.member] {
			return fmt.Errorf("event %s (version %d) published after version %d of member %s", e.id, e.version, last[e.member], e.member)
		}
		last[e.member] = e.version
	}
	return nil
}

// harness is the service on fakes (or on the stores the crash table
// passes), with the hasher and fingerprints commands need.
type harness struct {
	t      *testing.T
	store  *decisiontest.Store
	trail  decision.Trail
	mem    *decisiontest.Trail // when trail is the fake
	pub    *decisiontest.Publisher
	hasher *decisiontest.Hasher
	plain  *pinhash.Hasher
	svc    *decision.Service
	parked map[string]bool
	clock  atomic.Int64 // offset added to time.Now, nanoseconds
	seq    int
	// auditFails makes a real trail refuse records (failingTrail).
	auditFails atomic.Bool
}

// failingTrail refuses records while fail is set.
type failingTrail struct {
	decision.Trail
	fail *atomic.Bool
}

func (a failingTrail) AppendOutcome(ctx context.Context, o pinreset.Outcome, loginIDHash string) error {
	if a.fail.Load() {
		return errors.New("audit trail unavailable")
	}
	return a.Trail.AppendOutcome(ctx, o, loginIDHash)
}

func (a failingTrail) RecordDecision(ctx context.Context, memberID string, pd pinreset.Pending) error {
	if a.fail.Load() {
		return errors.New("audit trail unavailable")
	}
	return a.Trail.RecordDecision(ctx, memberID, pd)
}

// realAudit is the real trail under the harness's wrapper.
func (h *harness) realAudit() *mongostore.AuditLog {
	return h.trail.(failingTrail).Trail.(*mongostore.AuditLog)
}

func (h *harness) IsParked(_ context.Context, aspID, cid string) (bool, error) {
	return h.parked[aspID+":"+cid], nil
}

// newHarness builds a service on store and trail (nil: the fakes).
func newHarness(t *testing.T, store storetest.Store, trail decision.Trail) *harness {
	t.Helper()
	plain, fingerprints, _ := decisiontest.Keys(t)
	if store == nil {
		store = memstore.New()
	}
	h := &harness{t: t, store: &decisiontest.Store{Store: store}, pub: &decisiontest.Publisher{},
		hasher: &decisiontest.Hasher{PINHasher: plain}, plain: plain, parked: map[string]bool{}}
	if trail == nil {
		h.mem = decisiontest.NewTrail()
		trail = h.mem
	} else {
		trail = failingTrail{Trail: trail, fail: &h.auditFails}
	}
	h.trail = trail
	h.svc = &decision.Service{Store: h.store, Trail: trail, Fingerprinter: fingerprints, Publisher: h.pub,
		Hasher: h.hasher, Rules: pinreset.DefaultRules(), Parked: h, WorkerID: "w-test",
		Now: func() time.Time { return time.Now().Add(time.Duration(h.clock.Load())) }}
	return h
}

// member seeds a member with pin (and ci).
func (h *harness) member(id, pin, ci string) {
	h.t.Helper()
	decisiontest.PutMember(h.t, h.store, h.plain, id, pin, ci)
}

// cmd builds a command for member login (its id + "@example.com").
func (h *harness) cmd(kind pinreset.Kind, member, cur, next string) pinreset.Command {
	h.seq++
	return decisiontest.Command(h.seq, kind, member, cur, next)
}

// handle handles c once and returns Handle's error.
func (h *harness) handle(c pinreset.Command) error {
	_, err := h.svc.Handle(context.Background(), c)
	return err
}

// send handles c and returns the code of its (last) result; Handle must
// succeed.
func (h *harness) send(c pinreset.Command) pinreset.Code {
	h.t.Helper()
	if err := h.handle(c); err != nil {
		h.t.Fatalf("Handle %s: %v", c.CorrelationID, err)
	}
	codes := h.pub.ResultsOf(c.CorrelationID)
	if len(codes) == 0 {
		h.t.Fatalf("no result for %s", c.CorrelationID)
	}
	return codes[len(codes)-1]
}

// events are the events announced, in order.
func (h *harness) events() []published {
	var out []published
	for _, e := range h.pub.Events() {
		out = append(out, published{id: e.ID, typ: string(e.Type), member: e.MemberID, cid: e.CorrelationID, version: e.Version})
	}
	return out
}

func (h *harness) get(id string) pinreset.Member {
	h.t.Helper()
	m, err := h.store.FindMemberByID(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return *m
}

// pinIs reports whether member id's settled PIN is pin.
func (h *harness) pinIs(id, pin string) bool {
	h.t.Helper()
	ok, _, err := h.plain.Verify(pin, h.get(id).PINHash)
	if err != nil {
		h.t.Fatal(err)
	}
	return ok
}
