package decision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// deliver delivers the decisions in the member's outbox, oldest first:
// for each, its events, its audit record and, last, its outcome record,
// which marks it delivered (the store reads it as pending no longer). Each
// step is idempotent (stable event ids, an audit record fixed by the
// decision, one outcome per transaction), so a delivery cut short is done
// again by whoever comes next: the command's redelivery, the member's next
// decision, or the relay. Whoever publishes a version's events has
// published every earlier version's first, so a member's events first
// appear in version order. own is the correlation id of the command being
// handled ("" for the relay): another command's decision younger than
// deliverGrace is left to its own worker, which is most likely delivering
// it this moment, for as long as that takes, so that the normal flow
// publishes each event once.
func (s *Service) deliver(ctx context.Context, m pinreset.Member, own string) error {
	if len(m.Outbox) == 0 {
		return nil
	}
	_, span := s.tracer().Start(ctx, "deliver", trace.WithAttributes(attribute.String("pinreset.member_id", m.ID),
		attribute.Int("pinreset.pending", len(m.Outbox))))
	defer span.End()
	if slices.ContainsFunc(m.Outbox, func(pd pinreset.Pending) bool { return pd.Outcome.CorrelationID != own }) {
		// Other commands' decisions, read as the store keeps them: which
		// of them are delivered already (one read).
		var err error
		if m.Outbox, err = s.Store.Pending(ctx, m.Outbox); err != nil {
			return err
		}
	}
	pending, err := s.othersFirst(ctx, m, own)
	if err != nil {
		return err
	}
	for _, pd := range pending {
		if len(pd.Events) > 0 {
			if err := s.Publisher.Announce(ctx, pd.Events); err != nil {
				return fmt.Errorf("publish events of member %s version %d: %w", m.ID, pd.Version, err)
			}
		}
		if err := s.Trail.RecordDecision(ctx, m.ID, pd); err != nil {
			return fmt.Errorf("audit command %s: %w", pd.Outcome.CorrelationID, err)
		}
		if _, _, err := s.Store.Record(ctx, pd.Outcome); err != nil {
			return err
		}
	}
	return nil
}

// deliverGrace is how long a delivery waits for another worker to
// deliver that worker's own young decision, before it delivers it itself:
// far longer than a delivery takes (milliseconds), far shorter than the
// relay's RelayAfter.
const deliverGrace = 5 * time.Second

// othersFirst returns the decisions of m's outbox that are left to deliver
// once the young decisions of other commands have been delivered by their
// own workers, or deliverGrace has passed since they were made.
func (s *Service) othersFirst(ctx context.Context, m pinreset.Member, own string) ([]pinreset.Pending, error) {
	young := func(pd pinreset.Pending) bool {
		return pd.Outcome.CorrelationID != own && s.now().Sub(pd.Outcome.CompletedAt) < deliverGrace
	}
	for wait := 5 * time.Millisecond; slices.ContainsFunc(m.Outbox, young); wait = min(2*wait, 200*time.Millisecond) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		cur, err := s.Store.FindMemberByID(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		// Still pending: the ones of m's outbox the store still reads as
		// pending (later decisions are their own commands').
		still := m.Outbox[:0:0]
		for _, pd := range m.Outbox {
			if slices.ContainsFunc(cur.Outbox, func(c pinreset.Pending) bool { return c.Version == pd.Version }) {
				still = append(still, pd)
			}
		}
		m.Outbox = still
	}
	return m.Outbox, nil
}

// RelayAfter is how long a decision may stay undelivered before the relay
// delivers it: longer than an attempt at a command with its delivery, so
// that the relay steps in for workers that died, not for slow ones (a
// duplicate delivery is harmless, only wasted).
const RelayAfter = time.Minute

// PruneAfter is how long a delivered decision stays in its member's
// document before the relay prunes it. A decision about a member whose
// outbox holds another command's costs one more round trip after the
// answer (which of them is delivered).
const PruneAfter = 10 * time.Second

// Relay works through up to limit members with a decision in their outbox
// older than PruneAfter: it delivers the undelivered ones older than
// RelayAfter (their worker died after the commit, their command did not
// come back, or an operator purged it, and nobody touched the member
// since) and empties the outbox once all is delivered; a member with a
// younger undelivered decision is left to that decision's worker. It
// returns how many members it pruned.
func (s *Service) Relay(ctx context.Context, limit int) (int, error) {
	now := s.now()
	ms, err := s.Store.Undelivered(ctx, now.Add(-PruneAfter), limit)
	if err != nil {
		return 0, err
	}
	done := ms[:0]
	var errs []error
	for _, m := range ms {
		if slices.ContainsFunc(m.Outbox, func(pd pinreset.Pending) bool { return now.Sub(pd.Outcome.CompletedAt) < RelayAfter }) {
			continue
		}
		if err := s.deliver(ctx, m, ""); err != nil {
			errs = append(errs, fmt.Errorf("relay member %s: %w", m.ID, err))
			continue
		}
		done = append(done, m)
	}
	if err := s.Store.Prune(ctx, done); err != nil {
		return 0, err
	}
	return len(done), errors.Join(errs...)
}
