package worker

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// countHasher counts every hash and verification; the "hash" of a PIN
// is "h:"+PIN.
type countHasher struct{ n *atomic.Int64 }

func (c countHasher) Hash(pin string) (string, error) { c.n.Add(1); return "h:" + pin, nil }
func (c countHasher) Verify(pin, enc string) (bool, bool, error) {
	c.n.Add(1)
	return enc == "h:"+pin, false, nil
}

// TestReplayedWrongAttemptCostsNoHashing: through the worker's limited
// hasher (which hashes the new PIN ahead on a free slot), a wrong attempt
// the member remembers is decided with no argon2 work at all, neither the
// verification nor a hash ahead; a new wrong attempt is verified.
func TestReplayedWrongAttemptCostsNoHashing(t *testing.T) {
	t.Parallel()
	fp, err := pinhash.NewFingerprinter(pinhash.FingerprintKey{ID: "f1", Key: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	m := metrics.NewWorker(prometheus.NewRegistry())
	h := LimitHashing(countHasher{&n}, m, 4)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	member := pinreset.Member{ID: "m1", ASPID: "KMTESTASP000001", LoginID: "a@b.example", PINHash: "h:246810", Version: 3}
	wrong := pinreset.Command{CorrelationID: "c1", ASPID: "KMTESTASP000001", Kind: pinreset.KindChange, LoginID: "a@b.example",
		CurrentPIN: "135791", NewPIN: "581379", ExpiresAt: now.Add(time.Minute)}
	// The keys the decision service gives a change (decision's keys).
	for _, k := range []struct {
		dst     *[]string
		content []byte
	}{{&wrong.ContentKeys, wrong.Content()}, {&wrong.AttemptKeys, wrong.AttemptContent()}, {&wrong.NewPINKeys, wrong.NewPINAttemptContent()}} {
		if *k.dst, err = fp.Fingerprints(k.content); err != nil {
			t.Fatal(err)
		}
	}
	first, err := member.Decide(wrong, h, pinreset.DefaultRules(), now)
	if err != nil || first.Code != pinreset.CodeInvalidUserInfo || first.Member.FailedAttempts != 1 {
		t.Fatalf("first wrong attempt: %+v %v", first, err)
	}
	if n.Load() < 1 {
		t.Fatal("the first wrong attempt was not verified")
	}
	// Let a hash ahead of the first attempt end before counting.
	deadline := time.Now().Add(10 * time.Second)
	for counter(t, m, "started") != float64(n.Load()-1) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	before, aheadBefore := n.Load(), counter(t, m, "started")
	for i := range 40 {
		replay := wrong
		replay.CorrelationID = fmt.Sprintf("r%d", i)
		d, err := first.Member.Decide(replay, h, pinreset.DefaultRules(), now.Add(time.Second))
		if err != nil || d.Code != pinreset.CodeInvalidUserInfo || d.Changed {
			t.Fatalf("replay %d: %+v %v; want 001_035, nothing changed", i+1, d, err)
		}
	}
	if got, ahead := n.Load()-before, counter(t, m, "started")-aheadBefore; got != 0 || ahead != 0 {
		t.Fatalf("40 replays cost %d hashes and started %v ahead, want 0 and 0", got, ahead)
	}
}
