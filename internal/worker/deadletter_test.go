package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestDeadLetters: what can never be decoded goes to the DLQ with its
// rejection recorded and audited once, and a broken copy of a decided
// command answers the recorded outcome.
func TestDeadLetters(t *testing.T) {
	t.Parallel()
	const pin, other = "246810", "581379"

	t.Run("an undecodable message is dead-lettered, recorded and audited once", func(t *testing.T) {
		h := newHarness(t, nil)
		m := h.message(h.cmd(pinreset.KindReset, "m1", "", other))
		// A clear field changed under the seal: refused.
		m.Value = []byte(strings.Replace(string(m.Value), `"kind":"reset"`, `"kind":"change"`, 1))
		for range 2 {
			if err := h.consume(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		dlq := 0
		h.bus.mu.Lock()
		for _, x := range h.bus.msgs {
			if x.Topic == kafkabus.TopicCommandsDLQ {
				dlq++
			}
		}
		h.bus.mu.Unlock()
		if codes := h.bus.resultsOf(string(m.Key)); dlq != 2 || len(codes) != 2 || codes[0] != pinreset.CodeRejected {
			t.Fatalf("%d dead letters, results %v", dlq, codes)
		}
		if o, err := h.store.Outcome(context.Background(), testASP, string(m.Key)); err != nil || o.Code != pinreset.CodeRejected {
			t.Fatalf("outcome %+v, %v", o, err)
		}
		if rs := h.mem.Records(string(m.Key)); len(rs) != 1 {
			t.Fatalf("%d audit records", len(rs))
		}
		// The seal refused it: counted as unopenable.
		if n := testutil.ToFloat64(h.proc.Metrics.DeadLettered.WithLabelValues("unopenable")); n != 2 {
			t.Fatalf("pinreset_dead_lettered_total{reason=unopenable} = %v, want 2", n)
		}
	})

	t.Run("a dead-lettered copy of a decided command answers its recorded outcome", func(t *testing.T) {
		h := newHarness(t, nil)
		h.member("m1", pin, "")
		c := h.cmd(pinreset.KindReset, "m1", "", other)
		if code := h.send(c); code != pinreset.CodeSuccess {
			t.Fatalf("first attempt: %s", code)
		}
		// The same transaction arrives again, broken (as from an ingress on
		// a command format this worker no longer reads): it is dead-lettered.
		m := h.message(c)
		m.Value = []byte(strings.Replace(string(m.Value), `"kind":"reset"`, `"kind":"change"`, 1))
		if err := h.consume(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if codes := h.bus.resultsOf(c.CorrelationID); len(codes) != 2 || codes[1] != pinreset.CodeSuccess {
			t.Fatalf("results %v: the copy's answer must be the recorded 000_000", codes)
		}
		if o, err := h.store.Outcome(context.Background(), testASP, c.CorrelationID); err != nil || o.Code != pinreset.CodeSuccess {
			t.Fatalf("outcome %+v, %v", o, err)
		}
		if rs := h.mem.Records(c.CorrelationID); len(rs) != 1 || rs[0].Code != string(pinreset.CodeSuccess) {
			t.Fatalf("audit records %+v", rs)
		}
		q := pinreset.NewStatusQuery(c.CorrelationID, "q1", testASP, time.Now(), time.Minute)
		if code := h.send(q); code != pinreset.CodeSuccess {
			t.Fatalf("status after the dead letter: %s", code)
		}
	})

}
