package worker_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/wire"
)

// TestWithdrawn: the parked copy of a command an operator withdrew (pwctl
// parked purge) ends as rejected, and no later copy applies it; a command
// decided before keeps its outcome.
func TestWithdrawn(t *testing.T) {
	t.Parallel()
	const pin, other = "246810", "581379"
	parkedCopy := func(m kafka.Message) kafka.Message {
		m.Topic = kafkabus.TopicCommandsRetry
		return m
	}
	withdrawn := func(h *harness) float64 {
		return testutil.ToFloat64(h.proc.Metrics.Outcomes.WithLabelValues(string(pinreset.KindReset), string(pinreset.CodeRejected), "withdrawn"))
	}

	t.Run("a withdrawn parked copy is rejected, and no later copy applies it", func(t *testing.T) {
		h := newHarness(t, nil)
		h.member("m1", pin, "")
		before := h.get("m1")
		c := h.cmd(pinreset.KindReset, "m1", "", other)
		h.withdrawn[testASP+":"+c.CorrelationID] = true
		if err := h.consume(context.Background(), parkedCopy(h.message(c))); err != nil {
			t.Fatal(err)
		}
		// A redriven copy on password.commands, and the parked copy again.
		if err := h.handle(c); err != nil {
			t.Fatal(err)
		}
		if err := h.consume(context.Background(), parkedCopy(h.message(c))); err != nil {
			t.Fatal(err)
		}
		if codes := h.bus.resultsOf(c.CorrelationID); len(codes) != 3 || codes[0] != pinreset.CodeRejected || codes[1] != pinreset.CodeRejected || codes[2] != pinreset.CodeRejected {
			t.Fatalf("results %v, want 000_422 three times", codes)
		}
		after := h.get("m1")
		if after.PINHash != before.PINHash || after.Version != before.Version+1 {
			t.Fatalf("member: version %d → %d, PIN changed %v; want one decision that changes nothing", before.Version, after.Version, after.PINHash != before.PINHash)
		}
		if o, err := h.store.Outcome(context.Background(), testASP, c.CorrelationID); err != nil || o.Code != pinreset.CodeRejected {
			t.Fatalf("outcome %+v, %v; want 000_422", o, err)
		}
		if rs := h.mem.Records(c.CorrelationID); len(rs) != 1 {
			t.Fatalf("%d audit records, want 1", len(rs))
		}
		if n := withdrawn(h); n != 1 {
			t.Fatalf("outcomes{how=withdrawn} = %v, want 1", n)
		}
	})

	t.Run("a command decided before it was withdrawn keeps its outcome", func(t *testing.T) {
		h := newHarness(t, nil)
		h.member("m1", pin, "")
		c := h.cmd(pinreset.KindReset, "m1", "", other)
		if code := h.send(c); code != pinreset.CodeSuccess {
			t.Fatalf("first copy: %s", code)
		}
		h.withdrawn[testASP+":"+c.CorrelationID] = true
		if err := h.consume(context.Background(), parkedCopy(h.message(c))); err != nil {
			t.Fatal(err)
		}
		if codes := h.bus.resultsOf(c.CorrelationID); len(codes) != 2 || codes[1] != pinreset.CodeSuccess {
			t.Fatalf("results %v, want 000_000 twice", codes)
		}
		if n := withdrawn(h); n != 0 {
			t.Fatalf("outcomes{how=withdrawn} = %v, want 0", n)
		}
	})

	t.Run("a withdrawn copy this worker cannot open is rejected by its ids", func(t *testing.T) {
		h := newHarness(t, nil)
		h.member("m1", pin, "")
		before := h.get("m1")
		c := h.cmd(pinreset.KindReset, "m1", "", other)
		m := unopenable(t, c, kafkabus.TopicCommandsRetry)
		if err := h.consume(context.Background(), m); !errors.Is(err, pinreset.ErrMissingKey) {
			t.Fatalf("not withdrawn: %v, want the missing key (tried again)", err)
		}
		h.withdrawn[testASP+":"+c.CorrelationID] = true
		if err := h.consume(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if codes := h.bus.resultsOf(c.CorrelationID); len(codes) != 1 || codes[0] != pinreset.CodeRejected {
			t.Fatalf("results %v, want 000_422", codes)
		}
		if o, err := h.store.Outcome(context.Background(), testASP, c.CorrelationID); err != nil || o.Code != pinreset.CodeRejected {
			t.Fatalf("outcome %+v, %v; want 000_422", o, err)
		}
		if after := h.get("m1"); after.Version != before.Version {
			t.Fatalf("member version %d → %d, want untouched", before.Version, after.Version)
		}
		// A client's retry that this worker cannot open either is answered
		// from the record (a rejection answers any copy), not parked.
		m.Topic = kafkabus.TopicCommands
		if err := h.consume(context.Background(), m); err != nil {
			t.Fatalf("a retry of the rejected command: %v, want it answered", err)
		}
		if codes := h.bus.resultsOf(c.CorrelationID); len(codes) != 2 || codes[1] != pinreset.CodeRejected {
			t.Fatalf("results %v, want 000_422 twice", codes)
		}
	})

	t.Run("a copy this worker cannot open of a decided command waits for its key", func(t *testing.T) {
		h := newHarness(t, nil)
		h.member("m1", pin, "")
		c := h.cmd(pinreset.KindReset, "m1", "", other)
		if code := h.send(c); code != pinreset.CodeSuccess {
			t.Fatalf("first copy: %s", code)
		}
		// Only the same request gets 000_000 again: that needs it opened.
		m := unopenable(t, c, kafkabus.TopicCommands)
		if err := h.consume(context.Background(), m); !errors.Is(err, pinreset.ErrMissingKey) {
			t.Fatalf("%v, want the missing key", err)
		}
	})

	t.Run("a withdrawn command about no member is rejected", func(t *testing.T) {
		h := newHarness(t, nil)
		c := h.cmd(pinreset.KindReset, "nobody", "", other)
		h.withdrawn[testASP+":"+c.CorrelationID] = true
		if err := h.consume(context.Background(), parkedCopy(h.message(c))); err != nil {
			t.Fatal(err)
		}
		if codes := h.bus.resultsOf(c.CorrelationID); len(codes) != 1 || codes[0] != pinreset.CodeRejected {
			t.Fatalf("results %v, want 000_422 (not 001_006)", codes)
		}
	})

	t.Run("only parked copies are asked", func(t *testing.T) {
		h := newHarness(t, nil)
		h.member("m1", pin, "")
		c := h.cmd(pinreset.KindReset, "m1", "", other)
		h.withdrawn[testASP+":"+c.CorrelationID] = true
		if code := h.send(c); code != pinreset.CodeSuccess {
			t.Fatalf("a copy on password.commands: %s, want it decided (000_000)", code)
		}
	})
}

// unopenable is c on topic, sealed with a key (k9) the harness's worker
// does not have.
func unopenable(t *testing.T, c pinreset.Command, topic string) kafka.Message {
	t.Helper()
	ring, err := seal.NewKeyring(seal.Key{ID: "k9", Secret: bytes.Repeat([]byte{9}, seal.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := wire.EncodeCommand(c, ring)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: topic, Key: []byte(c.CorrelationID), Value: v}
}
