package mongostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// OutcomesCollection holds one document per decided transaction, keyed
// "<asp id>:<correlation id>": what a status query and a late redelivery
// read, kept for PINRESET_OUTCOME_RETENTION. For a command without a
// member (an unknown loginId, a rejected message) the insert is the
// decision; for one about a member it is derived from the member's outbox.
const OutcomesCollection = "outcomes"

// outcomeDoc is the stored form of an outcome.
type outcomeDoc struct {
	ID            string        `bson:"_id"` // "<asp id>:<correlation id>"
	ASPID         string        `bson:"aspId"`
	CorrelationID string        `bson:"correlationId"`
	Kind          pinreset.Kind `bson:"kind,omitempty"`
	Fingerprint   string        `bson:"fingerprint"`
	Code          pinreset.Code `bson:"code"`
	MemberID      string        `bson:"memberId,omitempty"`
	AcceptedAt    time.Time     `bson:"acceptedAt"`
	CompletedAt   time.Time     `bson:"completedAt"`
	WorkerID      string        `bson:"workerId"`
}

func transactionID(aspID, correlationID string) string { return aspID + ":" + correlationID }

func toOutcomeDoc(o pinreset.Outcome) outcomeDoc {
	return outcomeDoc{
		ID: transactionID(o.ASPID, o.CorrelationID), ASPID: o.ASPID, CorrelationID: o.CorrelationID, Kind: o.Kind,
		Fingerprint: o.Fingerprint, Code: o.Code, MemberID: o.MemberID, AcceptedAt: o.AcceptedAt.UTC(),
		CompletedAt: o.CompletedAt.UTC(), WorkerID: o.WorkerID,
	}
}

func (d outcomeDoc) outcome() pinreset.Outcome {
	return pinreset.Outcome{
		ASPID: d.ASPID, CorrelationID: d.CorrelationID, Kind: d.Kind, Fingerprint: d.Fingerprint, Code: d.Code,
		MemberID: d.MemberID, AcceptedAt: d.AcceptedAt.UTC(), CompletedAt: d.CompletedAt.UTC(), WorkerID: d.WorkerID,
	}
}

// Outcome returns the recorded outcome of the ASP's correlation id, or
// pinreset.ErrNoOutcome: one read by _id, the status query's only one.
func (s *Store) Outcome(ctx context.Context, aspID, correlationID string) (pinreset.Outcome, error) {
	var d outcomeDoc
	err := s.outcomes.FindOne(ctx, bson.D{{Key: "_id", Value: transactionID(aspID, correlationID)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return pinreset.Outcome{}, pinreset.ErrNoOutcome
	}
	if err != nil {
		return pinreset.Outcome{}, fmt.Errorf("find outcome %s: %w", correlationID, err)
	}
	return d.outcome(), nil
}

// Record records o as its transaction's outcome unless the transaction has
// one: one insert. It returns the outcome that stands (o, or the one
// recorded first) and whether it was o.
func (s *Store) Record(ctx context.Context, o pinreset.Outcome) (pinreset.Outcome, bool, error) {
	_, err := s.outcomes.InsertOne(ctx, toOutcomeDoc(o))
	if IsDuplicateKey(err) {
		rec, err := s.Outcome(ctx, o.ASPID, o.CorrelationID)
		if errors.Is(err, pinreset.ErrNoOutcome) {
			// Refused, then swept: older than the retention; o stands.
			return s.Record(ctx, o)
		}
		return rec, false, err
	}
	if err != nil {
		return pinreset.Outcome{}, false, fmt.Errorf("record outcome %s: %w", o.CorrelationID, err)
	}
	return o, true, nil
}

// InsertOutcomes inserts outcome records in one unordered bulk insert,
// skipping any already recorded, and returns how many it inserted: for
// seeding benchmarks with retained decisions, never the command path.
func (s *Store) InsertOutcomes(ctx context.Context, os []pinreset.Outcome) (int, error) {
	docs := make([]any, len(os))
	for i, o := range os {
		docs[i] = toOutcomeDoc(o)
	}
	return s.insertMany(ctx, s.outcomes, "outcomes", docs)
}

// OutcomeSweep is the outcome records as the retention sweep deletes them
// (worker.Sweep): the worker runs it, the same on every server, rather
// than a TTL index.
func (s *Store) OutcomeSweep() Sweepable { return Sweepable{s.outcomes, "completedAt"} }

// Sweepable is a collection the retention sweep deletes from by a time
// field, one slice of time at a time. On DocumentDB the field's index
// gives no order: a query for the oldest records, or for a batch of them
// with a limit, reads every record in its range (and the entries of those
// deleted before it until they are vacuumed), so the sweep deletes by
// ranges of time instead, each read only through its own index entries.
type Sweepable struct {
	coll  *mongo.Collection
	field string
}

// DeleteBetween deletes the records of [from, to) and returns how many.
func (w Sweepable) DeleteBetween(ctx context.Context, from, to time.Time) (int64, error) {
	ctx, cancel := maintenance(ctx)
	defer cancel()
	res, err := w.coll.DeleteMany(ctx, bson.D{{Key: w.field, Value: bson.D{{Key: "$gte", Value: from}, {Key: "$lt", Value: to}}}})
	if err != nil {
		return 0, fmt.Errorf("delete %s from %s to %s: %w", w.coll.Name(), from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	return res.DeletedCount, nil
}

// AnyBefore reports whether a record older than t is left.
func (w Sweepable) AnyBefore(ctx context.Context, t time.Time) (bool, error) {
	ctx, cancel := maintenance(ctx)
	defer cancel()
	err := w.coll.FindOne(ctx, bson.D{{Key: w.field, Value: bson.D{{Key: "$lt", Value: t}}}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("find %s before %s: %w", w.coll.Name(), t.Format(time.RFC3339), err)
	}
	return true, nil
}

// maxConflicts bounds Update's attempts when other decisions about the
// same member keep winning.
const maxConflicts = 16

// Update decides a command about the member with loginID in the ASP and
// commits the decision. One read finds the member through the aspLogin
// index and, joined to it, the transaction's outcome record if it
// has one (a redelivery, or its correlation id reused); decide gets both.
// When decide returns a next state, one conditional update filtered on the
// member's id and the version decide saw writes it, its outbox and the
// head of its audit chain included. Another decision that committed first
// makes the update match nothing: Update reads the member again and
// decides again. It returns the member as committed, or as read when
// decide wrote nothing.
func (s *Store) Update(ctx context.Context, aspID, loginID, correlationID string, decide func(pinreset.Member, *pinreset.Outcome) (pinreset.Member, bool, error)) (pinreset.Member, error) {
	m, rec, err := s.readMember(ctx, loginFilter(aspID, loginID), transactionID(aspID, correlationID), false)
	if err != nil {
		return pinreset.Member{}, err
	}
	for range maxConflicts {
		next, write, err := decide(*m, rec)
		if err != nil || !write {
			return *m, err
		}
		if next.ID != m.ID || next.Version != m.Version+1 {
			return pinreset.Member{}, fmt.Errorf("decision about member %s: version %d does not follow %d", m.ID, next.Version, m.Version)
		}
		d := toDoc(next)
		update := stateOf(d, decided(d)...)
		res, err := s.members.UpdateOne(ctx, bson.D{{Key: "_id", Value: m.ID}, {Key: "version", Value: m.Version}}, update)
		if err != nil {
			return pinreset.Member{}, fmt.Errorf("commit version %d of member %s: %w", next.Version, m.ID, err)
		}
		if res.MatchedCount == 1 {
			return next, nil
		}
		if m, _, err = s.readMember(ctx, bson.D{{Key: "_id", Value: m.ID}}, "", false); err != nil {
			return pinreset.Member{}, err
		}
	}
	return pinreset.Member{}, fmt.Errorf("member %s: %d conflicting decisions in a row", m.ID, maxConflicts)
}

// readMember reads the member match finds and, at the same time (two
// round trips run concurrently), the outcome record of transaction tx
// ("<asp id>:<correlation id>"; none when ""). With pendingOnly, the
// decisions of its outbox whose outcome is recorded (delivered) are left
// out of the Member's Outbox, which costs a third round trip when the
// outbox holds any (the relay prunes delivered decisions within seconds);
// a decision reads the outbox as stored and keeps it.
//
// (Not an aggregation whose $lookups join both to the member: one round
// trip, but DocumentDB runs it several times slower than two finds;
// docs/decision-model.md.)
func (s *Store) readMember(ctx context.Context, match bson.D, tx string, pendingOnly bool) (*pinreset.Member, *pinreset.Outcome, error) {
	var (
		rec    *pinreset.Outcome
		recErr error
		wg     sync.WaitGroup
	)
	if tx != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d outcomeDoc
			err := s.outcomes.FindOne(ctx, bson.D{{Key: "_id", Value: tx}}).Decode(&d)
			switch {
			case err == nil:
				o := d.outcome()
				rec = &o
			case !errors.Is(err, mongo.ErrNoDocuments):
				recErr = fmt.Errorf("find outcome %s: %w", tx, err)
			}
		}()
	}
	raw, err := s.members.FindOne(ctx, match).Raw()
	wg.Wait()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("find member: %w", err)
	}
	if recErr != nil {
		return nil, nil, recErr
	}
	m, err := decodeMember(raw)
	if err != nil {
		return nil, nil, err
	}
	if pendingOnly {
		if err := s.dropDelivered(ctx, []*pinreset.Member{m}); err != nil {
			return nil, nil, err
		}
	}
	return m, rec, nil
}

// Pending returns the decisions of ps whose outcome is not recorded yet:
// one find of their outcomes by _id.
func (s *Store) Pending(ctx context.Context, ps []pinreset.Pending) ([]pinreset.Pending, error) {
	m := &pinreset.Member{Outbox: slices.Clone(ps)}
	if err := s.dropDelivered(ctx, []*pinreset.Member{m}); err != nil {
		return nil, err
	}
	return m.Outbox, nil
}

// dropDelivered leaves out of the members' outboxes the decisions whose
// outcome is recorded: one find of their outcomes by _id, none when no
// outbox holds anything.
func (s *Store) dropDelivered(ctx context.Context, ms []*pinreset.Member) error {
	var ids bson.A
	for _, m := range ms {
		for _, p := range m.Outbox {
			ids = append(ids, transactionID(p.Outcome.ASPID, p.Outcome.CorrelationID))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	cur, err := s.outcomes.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("find the outcomes of pending decisions: %w", err)
	}
	var found []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &found); err != nil {
		return fmt.Errorf("find the outcomes of pending decisions: %w", err)
	}
	done := make(map[string]bool, len(found))
	for _, f := range found {
		done[f.ID] = true
	}
	for _, m := range ms {
		m.Outbox = slices.DeleteFunc(m.Outbox, func(p pinreset.Pending) bool {
			return done[transactionID(p.Outcome.ASPID, p.Outcome.CorrelationID)]
		})
	}
	return nil
}

// decided is what a decision (and a repair) sets besides the state: the
// outbox, as the decision left it, and the head of the audit chain.
func decided(d memberDoc) []bson.E {
	outbox := d.Outbox
	if outbox == nil {
		outbox = []pendingDoc{}
	}
	return []bson.E{{Key: "outbox", Value: outbox}, {Key: "auditSeq", Value: d.AuditSeq}, {Key: "auditHash", Value: d.AuditHash}}
}

// stateOf is the update that sets the member's state: everything but its
// identity, its outbox and its audit chain's head, which a decision sets
// too (more) and an operator's put leaves. Empty optional fields are
// removed, as toDoc leaves them out, so a document has one layout whoever
// wrote it.
func stateOf(d memberDoc, more ...bson.E) bson.D {
	set := bson.D{{Key: "pinHash", Value: d.PINHash}, {Key: "version", Value: d.Version},
		{Key: "failedAttempts", Value: d.FailedAttempts}, {Key: "recent", Value: d.Recent}, {Key: "updatedAt", Value: d.UpdatedAt}}
	set = append(set, more...)
	var unset bson.D
	for _, f := range []struct {
		key   string
		value any
		empty bool
	}{
		{"ci", d.CI, d.CI == ""}, {"wrongAttempts", d.WrongAttempts, len(d.WrongAttempts) == 0},
		{"lockedUntil", d.LockedUntil, d.LockedUntil.IsZero()}, {"sets", d.Sets, len(d.Sets) == 0},
	} {
		if f.empty {
			unset = append(unset, bson.E{Key: f.key, Value: ""})
		} else {
			set = append(set, bson.E{Key: f.key, Value: f.value})
		}
	}
	update := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	return update
}

// Undelivered returns up to limit members whose outbox holds a decision
// made before t, with the decisions not delivered yet in their Outbox:
// those whose deciding worker died before it delivered and whom no command
// has touched since, and those delivered and not pruned yet (the relay's
// work).
func (s *Store) Undelivered(ctx context.Context, before time.Time, limit int) ([]pinreset.Member, error) {
	cur, err := s.members.Find(ctx, bson.D{{Key: "outbox.at", Value: bson.D{{Key: "$lt", Value: before}}}}, oneBatch(limit))
	if err != nil {
		return nil, fmt.Errorf("find undelivered decisions: %w", err)
	}
	var ms []*pinreset.Member
	for cur.Next(ctx) {
		m, err := decodeMember(cur.Current)
		if err != nil {
			continue // a damaged document: its member's next command says so
		}
		ms = append(ms, m)
	}
	err = cur.Err()
	cur.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("find undelivered decisions: %w", err)
	}
	if err := s.dropDelivered(ctx, ms); err != nil {
		return nil, err
	}
	out := make([]pinreset.Member, len(ms))
	for i, m := range ms {
		out[i] = *m
	}
	return out, nil
}

// Prune empties the outboxes of members whose decisions are all delivered,
// each unless it has changed since (its version is filtered on): one
// update command for all of them.
func (s *Store) Prune(ctx context.Context, ms []pinreset.Member) error {
	if len(ms) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(ms))
	for i, m := range ms {
		models[i] = mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: m.ID}, {Key: "version", Value: m.Version}}).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "outbox", Value: bson.A{}}}}})
	}
	if _, err := s.members.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return fmt.Errorf("prune %d outboxes: %w", len(ms), err)
	}
	return nil
}

// Replace commits a state of member id built over whatever its document
// holds, a damaged one included: an operator's repair, by the same
// conditional update as a decision. build gets the document's version and
// audit chain head (read apart from the rest, which may not decode) and,
// when the document decodes, the member as a decision reads it; it returns
// the next state (version + 1). Another write that comes first makes
// Replace read and build again.
func (s *Store) Replace(ctx context.Context, id string, build func(version int64, head pinreset.AuditLink, cur *pinreset.Member) (pinreset.Member, error)) (pinreset.Member, error) {
	for range maxConflicts {
		raw, err := s.findVersion(ctx, id)
		if err != nil {
			return pinreset.Member{}, err
		}
		filter := bson.D{{Key: "_id", Value: id}, {Key: "version", Value: raw.Version}}
		version := raw.Version
		if version < 0 {
			// A damaged version: the repair replaces it, unless another
			// write set a good one meanwhile.
			filter[1].Value = bson.D{{Key: "$not", Value: bson.D{{Key: "$type", Value: "number"}}}}
			version = 0
		}
		cur, err := s.FindMemberByID(ctx, id)
		if err != nil {
			cur = nil // damaged: build from the version and audit head alone
		}
		next, err := build(version, raw.Audit, cur)
		if err != nil {
			return pinreset.Member{}, err
		}
		if next.ID != id || next.Version != version+1 {
			return pinreset.Member{}, fmt.Errorf("repair of member %s: version %d does not follow %d", id, next.Version, version)
		}
		d := toDoc(next)
		update := stateOf(d, append(decided(d), identity(d)...)...)
		res, err := s.members.UpdateOne(ctx, filter, update)
		if err != nil {
			return pinreset.Member{}, fmt.Errorf("repair member %s: %w", id, err)
		}
		if res.MatchedCount == 1 {
			return next, nil
		}
	}
	return pinreset.Member{}, fmt.Errorf("repair member %s: %d conflicting writes in a row", id, maxConflicts)
}
