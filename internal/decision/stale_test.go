package decision_test

import (
	"context"
	"sync"
	"testing"

	"github.com/kmwallet/pinreset/internal/decision/decisiontest"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// heldEvents holds the first announcement until release is closed (a
// worker slow between its answer and its delivery); later ones pass.
type heldEvents struct {
	*decisiontest.Publisher
	once    sync.Once
	held    chan struct{} // closed once the first announcement waits
	release chan struct{}
}

func (h *heldEvents) Announce(ctx context.Context, events []pinreset.Event) error {
	first := false
	h.once.Do(func() { first = true })
	if first {
		close(h.held)
		<-h.release
	}
	return h.Publisher.Announce(ctx, events)
}

// TestASlowDeliveryDoesNotUndoALaterDecision: worker A commits a decision
// and is slow delivering it; a copy of its command (a rebalance's
// redelivery) delivers it, and the member's next decision follows. A's
// delivery, arriving last, writes no member state: the member stays at the
// later decision, and A's copy of the earlier event is a duplicate, not a
// reordering.
func TestASlowDeliveryDoesNotUndoALaterDecision(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.member("m1", "240810", "")
	held := &heldEvents{Publisher: h.pub, held: make(chan struct{}), release: make(chan struct{})}
	h.svc.Publisher = held

	a := h.cmd(pinreset.KindReset, "m1", "", "357913")
	done := make(chan error, 1)
	go func() { done <- h.handle(a) }()
	<-held.held // A has committed, answered and waits to publish its events

	if err := h.handle(a); err != nil { // the copy: it delivers A's decision
		t.Fatalf("the copy of A: %v", err)
	}
	if code := h.send(h.cmd(pinreset.KindReset, "m1", "", "802468")); code != pinreset.CodeSuccess {
		t.Fatalf("the next decision: %s", code)
	}
	later := h.get("m1")

	close(held.release)
	if err := <-done; err != nil {
		t.Fatalf("A: %v", err)
	}
	if m := h.get("m1"); m.Version != later.Version || m.PINHash != later.PINHash {
		t.Fatalf("the member went from version %d back to %d: A's late delivery undid the next decision", later.Version, m.Version)
	}
	if err := inOrder(h.events()); err != nil {
		t.Fatal(err)
	}
}
