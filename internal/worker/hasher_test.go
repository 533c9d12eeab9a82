package worker

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

// gateHasher's Hash blocks until release is closed, so a test controls when
// a hash ends; the "hash" of a PIN is "h:"+PIN.
type gateHasher struct{ release chan struct{} }

func (g gateHasher) Hash(pin string) (string, error) { <-g.release; return "h:" + pin, nil }
func (g gateHasher) Verify(pin, enc string) (bool, bool, error) {
	<-g.release
	return enc == "h:"+pin, false, nil
}

func counter(t *testing.T, m *metrics.Worker, result string) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.HashesAhead.WithLabelValues(result).Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

// TestHashAhead: a hash ahead takes a free slot without waiting, none when
// every slot is busy, frees its slot when it ends whether or not anyone
// collects it, and is counted as started and, when collected, used.
func TestHashAhead(t *testing.T) {
	g := gateHasher{release: make(chan struct{})}
	m := metrics.NewWorker(prometheus.NewRegistry())
	h := LimitHashing(g, m, 2).(timedHasher)

	first := h.HashAhead("111111")
	second := h.HashAhead("222222")
	if first == nil || second == nil {
		t.Fatal("two hashes ahead on two free slots: want both started")
	}
	if h.HashAhead("333333") != nil {
		t.Fatal("a hash ahead started with every slot busy")
	}
	close(g.release) // both hashes end; the second is never collected
	if got, err := first(); got != "h:111111" || err != nil {
		t.Fatalf("collected %q, %v", got, err)
	}
	// Both slots come free: two plain hashes can run at once again.
	done := make(chan struct{})
	for range 2 {
		go func() { _, _ = h.Hash("444444"); done <- struct{}{} }()
	}
	for range 2 {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("a slot was not freed by the hash ahead nobody collected")
		}
	}
	if s, u := counter(t, m, "started"), counter(t, m, "used"); s != 2 || u != 1 {
		t.Fatalf("hashes ahead started %v, used %v; want 2, 1", s, u)
	}
}

// TestHashesGauge: pinreset_hashes shows the computations running (at most
// the slots) and those waiting for one, and both at zero once they end.
func TestHashesGauge(t *testing.T) {
	g := gateHasher{release: make(chan struct{})}
	m := metrics.NewWorker(prometheus.NewRegistry())
	h := LimitHashing(g, m, 2)
	gauge := func() (float64, float64) {
		return testutil.ToFloat64(m.Hashes.WithLabelValues("running")), testutil.ToFloat64(m.Hashes.WithLabelValues("waiting"))
	}
	done := make(chan struct{})
	for range 3 {
		go func() { _, _ = h.Hash("111111"); done <- struct{}{} }()
	}
	if !waitfor.Until(30*time.Second, func() bool { r, w := gauge(); return r == 2 && w == 1 }) {
		r, w := gauge()
		t.Fatalf("three hashes on two slots: running %v, waiting %v; want 2, 1", r, w)
	}
	close(g.release)
	for range 3 {
		<-done
	}
	if r, w := gauge(); r != 0 || w != 0 {
		t.Fatalf("after: running %v, waiting %v; want 0, 0", r, w)
	}
}
