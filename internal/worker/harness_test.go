package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/decision/decisiontest"
	"github.com/kmwallet/pinreset/internal/decision/memstore"
	"github.com/kmwallet/pinreset/internal/decision/storetest"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/wire"
	"github.com/kmwallet/pinreset/internal/worker"
)

// The tests of the Kafka side run the processor over the real decision
// service on fakes of its ports (decisiontest), with sealed messages and a
// bus that records what is published. The decisions themselves are
// package decision's tests.

const testASP = decisiontest.ASP

// bus records what the processor publishes, in order.
type bus struct {
	mu      sync.Mutex
	msgs    []kafkabus.Message
	results []pinreset.Result
}

func (b *bus) Publish(_ context.Context, msgs ...kafkabus.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
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

// harness is a processor on fakes (or on the store a test passes), with
// the ring, hasher and fingerprints commands need.
type harness struct {
	t         *testing.T
	store     storetest.Store
	mem       *decisiontest.Trail
	bus       *bus
	plain     *pinhash.Hasher
	ring      *seal.Keyring
	proc      *worker.Processor
	parked    map[string]bool
	withdrawn map[string]bool
	seq       int
	// consume is proc's handler as the worker's consumers run it, but for
	// tracing and logging.
	consume kafkabus.Handler
}

func (h *harness) IsParked(_ context.Context, aspID, cid string) (bool, error) {
	return h.parked[aspID+":"+cid], nil
}

func (h *harness) MarkParked(_ context.Context, aspID, cid, _ string, _ time.Time) error {
	h.parked[aspID+":"+cid] = true
	return nil
}

func (h *harness) IsWithdrawn(_ context.Context, aspID, cid string) (bool, error) {
	return h.withdrawn[aspID+":"+cid], nil
}

// newHarness builds a processor on store (nil: the fake).
func newHarness(t *testing.T, store storetest.Store) *harness {
	t.Helper()
	plain, fingerprints, ring := decisiontest.Keys(t)
	if store == nil {
		store = memstore.New()
	}
	h := &harness{t: t, store: store, mem: decisiontest.NewTrail(), bus: &bus{}, plain: plain, ring: ring, parked: map[string]bool{},
		withdrawn: map[string]bool{}}
	svc := &decision.Service{Store: store, Trail: h.mem, Fingerprinter: fingerprints, Publisher: worker.KafkaPublisher{Publisher: h.bus},
		Hasher: plain, Rules: pinreset.DefaultRules(), Parked: h, WorkerID: "w-test"}
	h.proc = &worker.Processor{Service: svc, Sealer: ring, Publisher: h.bus, Parked: h, Metrics: metrics.NewWorker(prometheus.NewRegistry()),
		Health: health.New(), Log: zap.NewNop(), WorkerID: "w-test"}
	h.consume = worker.ForConsumer(worker.Chain(h.proc.Handle, worker.Measured(h.proc.Metrics, h.proc.Health), h.proc.DeadLetters, h.proc.WatchOutages))
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

// message is c sealed as the ingress seals it.
func (h *harness) message(c pinreset.Command) kafka.Message {
	h.t.Helper()
	v, err := wire.EncodeCommand(c, h.ring)
	if err != nil {
		h.t.Fatal(err)
	}
	return kafka.Message{Topic: kafkabus.TopicCommands, Key: []byte(c.CorrelationID), Value: v}
}

// handle processes c once and returns the handler's error.
func (h *harness) handle(c pinreset.Command) error {
	return h.consume(context.Background(), h.message(c))
}

// send processes c and returns the code of its (last) result; the
// handler must succeed.
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
