package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/wire"
	"github.com/kmwallet/pinreset/internal/worker"
	"github.com/kmwallet/pinreset/internal/worker/memstore"
	"github.com/kmwallet/pinreset/internal/worker/storetest"
)

// The unit tests of the processor run on in-memory fakes of its ports:
// memstore for the store, memAudit for the trail, bus for the broker. The
// crash-point table runs on these and again on FerretDB.

const testASP = "KMTESTASP000001"

// memAudit is an audit trail in memory with Append's and Insert's
// contract: one record per correlation id and chain (ErrRecorded for a
// second), seqs in order, each record linked to the one before.
type memAudit struct {
	mu      sync.Mutex
	chains  map[string][]audit.Record
	fail    atomic.Bool // every Append fails (a crash before the record)
	appends atomic.Int64
}

func newMemAudit() *memAudit { return &memAudit{chains: map[string][]audit.Record{}} }

func (a *memAudit) Append(_ context.Context, r audit.Record) (audit.Record, error) {
	return a.add(r, false)
}

// Insert stores a linked record at its seq, or, when another command's
// record has it, at the head (as mongostore.AuditLog.Insert).
func (a *memAudit) Insert(_ context.Context, r audit.Record) (audit.Record, error) {
	return a.add(r, true)
}

func (a *memAudit) add(r audit.Record, linked bool) (audit.Record, error) {
	if a.fail.Load() {
		return audit.Record{}, errors.New("audit trail unavailable")
	}
	if r.Code == "" || r.Kind == "" {
		return audit.Record{}, errors.New("audit: a record needs a kind and an outcome code") // as mongostore.AuditLog refuses it
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.appends.Add(1)
	r.Chain = audit.ChainOf(r)
	for _, x := range a.chains[r.Chain] {
		if x.CorrelationID == r.CorrelationID {
			return audit.Record{}, audit.ErrRecorded
		}
	}
	chain := a.chains[r.Chain]
	prev := ""
	if len(chain) > 0 {
		prev = chain[len(chain)-1].Hash
	}
	if !linked || r.Seq != int64(len(chain)+1) || r.PrevHash != prev {
		if linked && r.Seq <= int64(len(chain)) {
			return audit.Record{}, fmt.Errorf("linked record %s at seq %d: taken", r.CorrelationID, r.Seq)
		}
		r, _ = audit.Link(r, int64(len(chain)), prev)
	}
	a.chains[r.Chain] = append(chain, r)
	return r, nil
}

// records returns the records of correlation id cid in every chain.
func (a *memAudit) records(cid string) []audit.Record {
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

// bus records what the processor publishes, in order, and can refuse a
// topic (a broker failure, or a crash before that publish).
type bus struct {
	mu      sync.Mutex
	msgs    []kafkabus.Message
	refuse  map[string]bool
	results []pinreset.Result
}

func (b *bus) Publish(_ context.Context, msgs ...kafkabus.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range msgs {
		if b.refuse[m.Topic] {
			return fmt.Errorf("publish to %s: broker unavailable", m.Topic)
		}
	}
	for _, m := range msgs {
		b.msgs = append(b.msgs, m)
		if m.Topic == kafkabus.TopicResults {
			r, err := wire.DecodeResult(m.Value)
			if err != nil {
				return err
			}
			b.results = append(b.results, r)
		}
	}
	return nil
}

func (b *bus) setRefused(topic string, refused bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refuse == nil {
		b.refuse = map[string]bool{}
	}
	b.refuse[topic] = refused
}

// resultsOf returns the codes published for correlation id cid.
func (b *bus) resultsOf(cid string) []pinreset.Code {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []pinreset.Code
	for _, r := range b.results {
		if r.CorrelationID == cid {
			out = append(out, r.Code)
		}
	}
	return out
}

// published is a published event: its id and the member version it announces.
type published struct {
	id, typ, member, cid string
	version              int64
}

func (b *bus) events() []published {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []published
	for _, m := range b.msgs {
		if m.Topic != kafkabus.TopicEvents {
			continue
		}
		e := published{member: string(m.Key)}
		for _, h := range m.Headers {
			switch h.Key {
			case "ce_id":
				e.id = string(h.Value)
			case "ce_type":
				e.typ = string(h.Value)
			}
		}
		// ids are "<member id>:<version>:<n>"
		parts := strings.Split(e.id, ":")
		if len(parts) >= 3 {
			e.version, _ = strconv.ParseInt(parts[len(parts)-2], 10, 64)
		}
		out = append(out, e)
	}
	return out
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

// countingHasher counts the argon2 calls.
type countingHasher struct {
	pinreset.PINHasher
	n    atomic.Int64
	fail atomic.Bool
}

func (h *countingHasher) Hash(pin string) (string, error) {
	h.n.Add(1)
	if h.fail.Load() {
		return "", errors.New("hasher failed")
	}
	return h.PINHasher.Hash(pin)
}

func (h *countingHasher) Verify(pin, enc string) (bool, bool, error) {
	h.n.Add(1)
	if h.fail.Load() {
		return false, false, errors.New("hasher failed")
	}
	return h.PINHasher.Verify(pin, enc)
}

// failingStore is a store whose outcome records fail while failRecord is
// set: a crash at the last step of a delivery.
type failingStore struct {
	storetest.Store
	failRecord atomic.Bool
}

func (s *failingStore) Record(ctx context.Context, o pinreset.Outcome) (pinreset.Outcome, bool, error) {
	if s.failRecord.Load() {
		return pinreset.Outcome{}, false, errors.New("database unavailable")
	}
	return s.Store.Record(ctx, o)
}

// harness is a processor on fakes (or on the stores the crash table
// passes), with the ring, hasher and fingerprints commands need.
type harness struct {
	t      *testing.T
	store  *failingStore
	audit  worker.Auditor
	mem    *memAudit // when audit is the fake
	bus    *bus
	hasher *countingHasher
	plain  *pinhash.Hasher
	ring   *seal.Keyring
	proc   *worker.Processor
	parked map[string]bool
	clock  atomic.Int64 // offset added to time.Now, nanoseconds
	seq    int
	// auditFails makes a real trail refuse appends (failingAuditor).
	auditFails atomic.Bool
}

// failingAuditor refuses appends while fail is set.
type failingAuditor struct {
	worker.Auditor
	fail *atomic.Bool
}

func (a failingAuditor) Append(ctx context.Context, r audit.Record) (audit.Record, error) {
	if a.fail.Load() {
		return audit.Record{}, errors.New("audit trail unavailable")
	}
	return a.Auditor.Append(ctx, r)
}

func (a failingAuditor) Insert(ctx context.Context, r audit.Record) (audit.Record, error) {
	if a.fail.Load() {
		return audit.Record{}, errors.New("audit trail unavailable")
	}
	return a.Auditor.Insert(ctx, r)
}

// realAudit is the real trail under the harness's wrapper.
func (h *harness) realAudit() *mongostore.AuditLog {
	return h.audit.(failingAuditor).Auditor.(*mongostore.AuditLog)
}

func (h *harness) IsParked(_ context.Context, aspID, cid string) (bool, error) {
	return h.parked[aspID+":"+cid], nil
}

func (h *harness) MarkParked(_ context.Context, aspID, cid, _ string, _ time.Time) error {
	h.parked[aspID+":"+cid] = true
	return nil
}

// newHarness builds a processor on store and auditor (nil: the fakes).
func newHarness(t *testing.T, store storetest.Store, auditor worker.Auditor) *harness {
	t.Helper()
	plain, fingerprints, ring := testKeys(t)
	if store == nil {
		store = memstore.New()
	}
	h := &harness{t: t, store: &failingStore{Store: store}, bus: &bus{}, hasher: &countingHasher{PINHasher: plain}, plain: plain, ring: ring, parked: map[string]bool{}}
	if auditor == nil {
		h.mem = newMemAudit()
		auditor = h.mem
	} else {
		auditor = failingAuditor{Auditor: auditor, fail: &h.auditFails}
	}
	h.audit = auditor
	h.proc = &worker.Processor{Store: h.store, Audit: auditor, Fingerprinter: fingerprints, Publisher: h.bus, Sealer: ring,
		Hasher: h.hasher, Rules: pinreset.DefaultRules(), Log: zap.NewNop(), WorkerID: "w-test", Parked: h,
		Now: func() time.Time { return time.Now().Add(time.Duration(h.clock.Load())) }}
	return h
}

// member seeds a member with pin (and ci).
func (h *harness) member(id, pin, ci string) {
	h.t.Helper()
	hash, err := h.plain.Hash(pin)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.store.PutMember(context.Background(), pinreset.Member{ID: id, ASPID: testASP, LoginID: id + "@example.com", CI: ci, PINHash: hash}); err != nil {
		h.t.Fatal(err)
	}
}

// cmd builds a command for member login (its id + "@example.com").
func (h *harness) cmd(kind pinreset.Kind, member, cur, next string) pinreset.Command {
	h.seq++
	now := time.Now().UTC()
	return pinreset.Command{CorrelationID: fmt.Sprintf("261201120000-%07x", h.seq), RequestID: fmt.Sprintf("%016x", h.seq), ASPID: testASP,
		Kind: kind, LoginID: member + "@example.com", CurrentPIN: cur, NewPIN: next, AcceptedAt: now, ExpiresAt: now.Add(2 * time.Minute)}
}

func (h *harness) message(c pinreset.Command) kafka.Message {
	h.t.Helper()
	v, err := wire.EncodeCommand(c, h.ring)
	if err != nil {
		h.t.Fatal(err)
	}
	return kafka.Message{Topic: kafkabus.TopicCommands, Key: []byte(c.CorrelationID), Value: v}
}

// handle processes c once and returns Handle's error.
func (h *harness) handle(c pinreset.Command) error {
	return h.proc.Handle(context.Background(), h.message(c))
}

// send processes c and returns the code of its (last) result; Handle must
// succeed.
func (h *harness) send(c pinreset.Command) pinreset.Code {
	h.t.Helper()
	if err := h.handle(c); err != nil {
		h.t.Fatalf("Handle %s: %v", c.CorrelationID, err)
	}
	codes := h.bus.resultsOf(c.CorrelationID)
	if len(codes) == 0 {
		h.t.Fatalf("no result for %s", c.CorrelationID)
	}
	return codes[len(codes)-1]
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
