package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// DecisionsCollection holds one document per decided command, keyed
// "<asp id>:<correlation id>". For a command about a member the document is
// the decision's commit: the member's next state, the outcome, and the
// events still to publish, claimed on the member by the unique claim
// "<member id>:<version>". See the package comment.
const DecisionsCollection = "decisions"

// claimIndex is the unique index on decisions(claim): of two decisions
// about one member built on the same version, one insert wins.
var claimIndex = Index{Name: "claim_unique", Fields: []string{"claim"}}

// decisionDoc is the stored form of a decision.
type decisionDoc struct {
	ID string `bson:"_id"` // "<asp id>:<correlation id>"; "put:<member id>:<version>" for PutMember
	// Claim is "<member id>:<version>" (the compare-and-set), or
	// "-:<_id>" for an outcome without a member (unique all the same).
	Claim         string        `bson:"claim"`
	ASPID         string        `bson:"aspId"`
	CorrelationID string        `bson:"correlationId"`
	Kind          pinreset.Kind `bson:"kind,omitempty"`
	Fingerprint   string        `bson:"fingerprint"`
	Code          pinreset.Code `bson:"code"`
	MemberID      string        `bson:"memberId,omitempty"`
	AcceptedAt    time.Time     `bson:"acceptedAt"`
	CompletedAt   time.Time     `bson:"completedAt"`
	WorkerID      string        `bson:"workerId"`
	Version       int64         `bson:"version,omitempty"`
	State         *memberDoc    `bson:"state,omitempty"`
	Events        []eventDoc    `bson:"events,omitempty"`
}

type eventDoc struct {
	ID            string             `bson:"id"`
	Type          pinreset.EventType `bson:"type"`
	MemberID      string             `bson:"memberId"`
	ASPID         string             `bson:"aspId"`
	CorrelationID string             `bson:"correlationId"`
	Kind          pinreset.Kind      `bson:"kind,omitempty"`
	At            time.Time          `bson:"at"`
	LockedUntil   time.Time          `bson:"lockedUntil,omitempty"`
	Unlocked      bool               `bson:"unlocked,omitempty"`
}

func decisionID(aspID, correlationID string) string { return aspID + ":" + correlationID }

func claimOf(memberID string, version int64) string {
	return memberID + ":" + strconv.FormatInt(version, 10)
}

func toDecisionDoc(c pinreset.Commit) decisionDoc {
	o := c.Outcome
	d := decisionDoc{
		ID: decisionID(o.ASPID, o.CorrelationID), ASPID: o.ASPID, CorrelationID: o.CorrelationID, Kind: o.Kind,
		Fingerprint: o.Fingerprint, Code: o.Code, MemberID: o.MemberID, AcceptedAt: o.AcceptedAt.UTC(),
		CompletedAt: o.CompletedAt.UTC(), WorkerID: o.WorkerID,
	}
	if c.Member.ID == "" {
		d.Claim = "-:" + d.ID
		return d
	}
	state := toDoc(c.Member)
	d.MemberID, d.Version, d.State, d.Claim = c.Member.ID, c.Member.Version, &state, claimOf(c.Member.ID, c.Member.Version)
	for _, e := range c.Events {
		d.Events = append(d.Events, eventDoc{ID: e.ID, Type: e.Type, MemberID: e.MemberID, ASPID: e.ASPID,
			CorrelationID: e.CorrelationID, Kind: e.Kind, At: e.At, LockedUntil: e.LockedUntil, Unlocked: e.Unlocked})
	}
	return d
}

// commit is d as the domain sees it; settled says whether the member's copy
// (at copyVersion) already holds it.
func (d decisionDoc) commit(copyVersion int64) pinreset.Commit {
	c := pinreset.Commit{Outcome: pinreset.Outcome{
		ASPID: d.ASPID, CorrelationID: d.CorrelationID, Kind: d.Kind, Fingerprint: d.Fingerprint, Code: d.Code,
		MemberID: d.MemberID, AcceptedAt: d.AcceptedAt.UTC(), CompletedAt: d.CompletedAt.UTC(), WorkerID: d.WorkerID,
	}}
	if d.State == nil {
		c.Settled = true // nothing but the outcome to settle
		return c
	}
	c.Member = *d.State.member()
	c.Settled = copyVersion >= d.Version
	for _, e := range d.Events {
		c.Events = append(c.Events, pinreset.Event{ID: e.ID, Type: e.Type, MemberID: e.MemberID, ASPID: e.ASPID,
			CorrelationID: e.CorrelationID, Kind: e.Kind, At: e.At.UTC(), LockedUntil: e.LockedUntil.UTC(), Unlocked: e.Unlocked})
	}
	return c
}

// Outcome returns the recorded outcome of the ASP's correlation id, or
// pinreset.ErrNoOutcome: one read by _id, the status query's only one.
func (s *Store) Outcome(ctx context.Context, aspID, correlationID string) (pinreset.Outcome, error) {
	d, err := s.decision(ctx, decisionID(aspID, correlationID))
	if err != nil {
		return pinreset.Outcome{}, err
	}
	return d.commit(0).Outcome, nil
}

func (s *Store) decision(ctx context.Context, id string) (decisionDoc, error) {
	var d decisionDoc
	err := s.decisions.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return decisionDoc{}, pinreset.ErrNoOutcome
	}
	if err != nil {
		return decisionDoc{}, fmt.Errorf("find decision %s: %w", id, err)
	}
	return d, nil
}

// Record records the outcome of a command without a member (an unknown
// loginId, a rejected message): one insert. When the correlation id already
// has an outcome it returns a *pinreset.DecidedError holding it.
func (s *Store) Record(ctx context.Context, o pinreset.Outcome) error {
	d := toDecisionDoc(pinreset.Commit{Outcome: o})
	_, err := s.decisions.InsertOne(ctx, d)
	if IsDuplicateKey(err) {
		// The claim of a memberless outcome is derived from its _id, so
		// either index refusing it means the _id is taken.
		rec, err := s.decision(ctx, d.ID)
		if err != nil {
			return err
		}
		return &pinreset.DecidedError{Commit: rec.commit(0)}
	}
	if err != nil {
		return fmt.Errorf("record outcome %s: %w", o.CorrelationID, err)
	}
	return nil
}

// Waits of Update for a member whose previous decision is committed and
// not settled yet.
const (
	busyFirstWait = 5 * time.Millisecond
	busyMaxWait   = 100 * time.Millisecond
	// busyPatience is how long Update waits for the copy to move before
	// it looks at the decision in its way (at most the lease).
	busyPatience = 2 * time.Second
)

// Update decides a command about the member with loginID in the ASP and
// commits the decision in one atomic write. It reads the member's settled
// state (one read through the (aspId, loginId) index), calls decide with
// it, and inserts what decide returns under the command's correlation id
// and the claim of the member's next version.
//
//   - A decision returned: committed, not settled yet (the caller publishes
//     its events, appends its audit record, then calls Settle).
//   - decide's own error is returned as it is (a *pinreset.DecidedError
//     when it found the command in the member's history).
//   - The correlation id already decided (a redelivery whose copy had not
//     been settled, or a reuse of the id): a *pinreset.DecidedError with
//     the recorded decision.
//   - Another decision claimed the version first: Update waits until the
//     member's copy moves past it, then calls decide again (at most
//     maxConflicts times). If the winner stays unsettled, Update returns
//     pinreset.ErrBusy, or a *pinreset.UnsettledError once it is older
//     than the lease (Config.SettleLease).
//   - No such member: pinreset.ErrMemberNotFound.
func (s *Store) Update(ctx context.Context, aspID, loginID string, decide func(pinreset.Member) (pinreset.Commit, error)) (pinreset.Commit, error) {
	m, err := s.FindMember(ctx, aspID, loginID)
	if err != nil {
		return pinreset.Commit{}, err
	}
	for range maxConflicts {
		c, err := decide(*m)
		if err != nil {
			return pinreset.Commit{}, err
		}
		if c.Member.ID != m.ID || c.Member.Version != m.Version+1 {
			return pinreset.Commit{}, fmt.Errorf("decision about member %s: version %d does not follow %d", m.ID, c.Member.Version, m.Version)
		}
		d := toDecisionDoc(c)
		_, err = s.decisions.InsertOne(ctx, d)
		if err == nil {
			return c, nil
		}
		dup := ClassifyDuplicate(err, claimIndex)
		if dup == NotDuplicate {
			return pinreset.Commit{}, fmt.Errorf("commit decision %s: %w", d.ID, err)
		}
		if dup != DuplicateOn {
			// The _id, or an index the server did not name: a decision
			// under this _id tells which.
			rec, err := s.decision(ctx, d.ID)
			switch {
			case err == nil:
				return pinreset.Commit{}, &pinreset.DecidedError{Commit: rec.commit(m.Version)}
			case !errors.Is(err, pinreset.ErrNoOutcome):
				return pinreset.Commit{}, err
			case dup == DuplicateOnOther:
				// Refused by _id and gone by now (swept): the command is
				// older than the retention; deciding it again is all
				// that is left.
				continue
			}
		}
		// The claim: another decision about the member came first.
		if m, err = s.waitSettled(ctx, m); err != nil {
			return pinreset.Commit{}, err
		}
	}
	return pinreset.Commit{}, fmt.Errorf("member %s: %d conflicting decisions in a row", m.ID, maxConflicts)
}

// maxConflicts bounds Update's attempts when other decisions about the
// same member keep winning.
const maxConflicts = 16

// waitSettled waits until the member's copy moves past m.Version (the
// decision that claimed the next version is settled) and returns it. A
// decision in the way that stays unsettled is ErrBusy, or an
// UnsettledError past its lease.
func (s *Store) waitSettled(ctx context.Context, m *pinreset.Member) (*pinreset.Member, error) {
	start := time.Now()
	for wait := busyFirstWait; ; wait = min(2*wait, busyMaxWait) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		cur, err := s.FindMemberByID(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		if cur.Version > m.Version {
			return cur, nil
		}
		if time.Since(start) < min(busyPatience, s.lease) {
			continue
		}
		// A secondary-index lookup, made only for a
		// decision that stayed unsettled for seconds.
		var d decisionDoc
		err = s.decisions.FindOne(ctx, bson.D{{Key: "claim", Value: claimOf(m.ID, m.Version+1)}}).Decode(&d)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("find the decision claiming version %d of member %s: %w", m.Version+1, m.ID, err)
		}
		if err == nil && time.Since(d.CompletedAt) > s.lease {
			return nil, &pinreset.UnsettledError{Commit: d.commit(m.Version)}
		}
		return nil, fmt.Errorf("member %s version %d: %w", m.ID, m.Version+1, pinreset.ErrBusy)
	}
}

// Settle makes a committed decision the member's copy, the state the next
// decision reads: one replace by _id. The caller makes sure c is newer than
// the copy: it committed c itself in this attempt and no other attempt at
// the command got to its audit record first (no later decision can exist
// before c is settled, since every decision claims the version after the
// copy's), or it has just read the copy and found it older (a settlement
// left to a redelivery, or contested by one). The filter is _id alone: the
// claim already made c the only decision of its version, so the replace
// needs no compare-and-set of its own.
func (s *Store) Settle(ctx context.Context, c pinreset.Commit) error {
	d := toDoc(c.Member)
	if _, err := s.members.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, d); err != nil {
		return fmt.Errorf("settle version %d of member %s: %w", d.Version, d.ID, err)
	}
	return nil
}

// DeleteOutcomesBefore deletes the decisions completed before t and returns
// how many: the retention sweep (run by the worker, the same on every
// server, rather than a TTL index). A
// decision's claim is freed with it; the member's copy is past it long
// before (see SettleLease), so no decision can claim that version again.
func (s *Store) DeleteOutcomesBefore(ctx context.Context, t time.Time) (int64, error) {
	ctx, cancel := maintenance(ctx)
	defer cancel()
	res, err := s.decisions.DeleteMany(ctx, bson.D{{Key: "completedAt", Value: bson.D{{Key: "$lt", Value: t}}}})
	if err != nil {
		return 0, fmt.Errorf("delete outcomes before %s: %w", t.Format(time.RFC3339), err)
	}
	return res.DeletedCount, nil
}
