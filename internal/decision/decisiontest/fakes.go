package decisiontest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/decision/storetest"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Trail is an audit trail in memory with the contract of *mongostore.AuditLog's
// Trail methods: one record per correlation id and chain (a second is
// success and changes nothing), seqs in order, each record linked to the
// one before. Fail makes every record fail (a crash before it).
type Trail struct {
	Fail   atomic.Bool
	mu     sync.Mutex
	chains map[string][]audit.Record
}

// NewTrail returns an empty trail.
func NewTrail() *Trail { return &Trail{chains: map[string][]audit.Record{}} }

// RecordDecision stores a linked record at its seq, or, when another
// command's record has it, at the head (as audit.Log.RecordDecision).
func (a *Trail) RecordDecision(_ context.Context, memberID string, pd pinreset.Pending) error {
	r := audit.OfDecision(memberID, pd)
	r.Seq, r.PrevHash, r.Hash = pd.Audit.Seq, pd.AuditPrev, pd.Audit.Hash
	return a.add(r, true)
}

// AppendOutcome appends the record at the head of its chain.
func (a *Trail) AppendOutcome(_ context.Context, o pinreset.Outcome, loginIDHash string) error {
	return a.add(audit.OfOutcome(o, loginIDHash), false)
}

func (a *Trail) add(r audit.Record, linked bool) error {
	if a.Fail.Load() {
		return errors.New("audit trail unavailable")
	}
	if r.Code == "" || r.Kind == "" {
		return errors.New("audit: a record needs a kind and an outcome code") // as audit.Log refuses it
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r.Chain = audit.ChainOf(r)
	chain := a.chains[r.Chain]
	for _, x := range chain {
		if x.CorrelationID == r.CorrelationID {
			return nil
		}
	}
	prev := ""
	if len(chain) > 0 {
		prev = chain[len(chain)-1].Hash
	}
	if !linked || r.Seq != int64(len(chain)+1) || r.PrevHash != prev {
		if linked && r.Seq <= int64(len(chain)) {
			return fmt.Errorf("linked record %s at seq %d: taken", r.CorrelationID, r.Seq)
		}
		r, _ = audit.Link(r, int64(len(chain)), prev)
	}
	a.chains[r.Chain] = append(chain, r)
	return nil
}

// Records returns the records of correlation id cid in every chain.
func (a *Trail) Records(cid string) []audit.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Record
	for _, c := range a.chains {
		for _, r := range c {
			if r.CorrelationID == cid {
				out = append(out, r)
			}
		}
	}
	return out
}

// Publisher records the results and events the service publishes, in
// order, and can refuse either (a broker failure, or a crash before that
// publish).
type Publisher struct {
	mu                          sync.Mutex
	results                     []pinreset.Result
	events                      []pinreset.Event
	refuseAnswers, refuseEvents bool
}

// Answer records r.
func (p *Publisher) Answer(_ context.Context, r pinreset.Result) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuseAnswers {
		return errors.New("publish the result: broker unavailable")
	}
	p.results = append(p.results, r)
	return nil
}

// Announce records events.
func (p *Publisher) Announce(_ context.Context, events []pinreset.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuseEvents {
		return errors.New("publish events: broker unavailable")
	}
	p.events = append(p.events, events...)
	return nil
}

// Refuse makes Answer and Announce fail, or succeed again.
func (p *Publisher) Refuse(answers, events bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuseAnswers, p.refuseEvents = answers, events
}

// ResultsOf returns the codes answered for correlation id cid.
func (p *Publisher) ResultsOf(cid string) []pinreset.Code {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []pinreset.Code
	for _, r := range p.results {
		if r.CorrelationID == cid {
			out = append(out, r.Code)
		}
	}
	return out
}

// Events returns the events announced, in order.
func (p *Publisher) Events() []pinreset.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]pinreset.Event(nil), p.events...)
}

// Hasher counts the argon2 calls of the hasher it wraps, and fails them
// while Fail is set.
type Hasher struct {
	pinreset.PINHasher
	N    atomic.Int64
	Fail atomic.Bool
}

func (h *Hasher) Hash(pin string) (string, error) {
	h.N.Add(1)
	if h.Fail.Load() {
		return "", errors.New("hasher failed")
	}
	return h.PINHasher.Hash(pin)
}

func (h *Hasher) Verify(pin, enc string) (bool, bool, error) {
	h.N.Add(1)
	if h.Fail.Load() {
		return false, false, errors.New("hasher failed")
	}
	return h.PINHasher.Verify(pin, enc)
}

// Store is a store whose outcome records fail while FailRecord is set: a
// crash at the last step of a delivery.
type Store struct {
	storetest.Store
	FailRecord atomic.Bool
}

func (s *Store) Record(ctx context.Context, o pinreset.Outcome) (pinreset.Outcome, bool, error) {
	if s.FailRecord.Load() {
		return pinreset.Outcome{}, false, errors.New("database unavailable")
	}
	return s.Store.Record(ctx, o)
}

// ASP is the ASP of the members and commands the tests make.
const ASP = "KMTESTASP000001"

// PutMember seeds member id of ASP, with loginId id + "@example.com",
// pin hashed by h, and ci.
func PutMember(t *testing.T, s storetest.Store, h pinreset.PINHasher, id, pin, ci string) {
	t.Helper()
	hash, err := h.Hash(pin)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutMember(context.Background(), pinreset.Member{ID: id, ASPID: ASP, LoginID: id + "@example.com", CI: ci, PINHash: hash}); err != nil {
		t.Fatal(err)
	}
}

// Command is the seq-th command of a test, about member (its loginId id
// + "@example.com"), accepted now and expiring in 2 minutes.
func Command(seq int, kind pinreset.Kind, member, cur, next string) pinreset.Command {
	now := time.Now().UTC()
	return pinreset.Command{CorrelationID: fmt.Sprintf("261201120000-%07x", seq), RequestID: fmt.Sprintf("%016x", seq), ASPID: ASP,
		Kind: kind, LoginID: member + "@example.com", CurrentPIN: cur, NewPIN: next, AcceptedAt: now, ExpiresAt: now.Add(2 * time.Minute)}
}
