package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// OutboxCollection holds the events of member changes until they are
// published. It stays small: an entry lives from just before its change is
// committed until just after its events are on Kafka.
const OutboxCollection = "outbox"

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

type outboxDoc struct {
	ID            string     `bson:"_id"` // "<member id>:<version>:<correlation id>"
	MemberID      string     `bson:"memberId"`
	Version       int64      `bson:"version"`
	CorrelationID string     `bson:"correlationId"`
	Events        []eventDoc `bson:"events"`
	CreatedAt     time.Time  `bson:"createdAt"`
}

// Pending is an outbox entry: the events of one change.
type Pending struct {
	ID     string
	Events []pinreset.Event
}

func outboxID(m pinreset.Member, correlationID string) string {
	return versionID(m.ID, m.Version) + ":" + correlationID
}

// lastCorrelationID is the command that made a version.
func (d memberDoc) lastCorrelationID() string {
	if len(d.Recent) == 0 {
		return ""
	}
	return d.Recent[len(d.Recent)-1].CorrelationID
}

// prepareOutbox writes the events of a change about to be committed. The
// entry is only published if the commit happened (see Relay), so an event
// goes out if and only if the member changed.
func (s *Store) prepareOutbox(ctx context.Context, m pinreset.Member, correlationID string, events []pinreset.Event) (string, error) {
	d := outboxDoc{ID: outboxID(m, correlationID), MemberID: m.ID, Version: m.Version, CorrelationID: correlationID, CreatedAt: time.Now().UTC()}
	for _, e := range events {
		d.Events = append(d.Events, eventDoc{ID: e.ID, Type: e.Type, MemberID: e.MemberID, ASPID: e.ASPID,
			CorrelationID: e.CorrelationID, Kind: e.Kind, At: e.At, LockedUntil: e.LockedUntil, Unlocked: e.Unlocked})
	}
	_, err := s.outbox.InsertOne(ctx, d)
	if err != nil && !mongo.IsDuplicateKeyError(err) { // a retry of the same attempt
		return "", fmt.Errorf("prepare events of member %s version %d: %w", m.ID, m.Version, err)
	}
	return d.ID, nil
}

// DeleteOutbox removes an entry whose events are published (or void).
func (s *Store) DeleteOutbox(ctx context.Context, id string) error {
	if _, err := s.outbox.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("delete outbox entry %s: %w", id, err)
	}
	return nil
}

// StaleOutbox returns up to limit entries created before olderThan, whose
// writer has had time to publish them: it died, or lost a compare-and-set
// and died before cleaning up. For each it says whether its change was
// committed (publish, then delete) or not (delete only).
func (s *Store) StaleOutbox(ctx context.Context, olderThan time.Time, limit int) (committed, void []Pending, err error) {
	cur, err := s.outbox.Find(ctx, bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: olderThan}}}})
	if err != nil {
		return nil, nil, fmt.Errorf("find stale outbox entries: %w", err)
	}
	defer cur.Close(ctx)
	for n := 0; n < limit && cur.Next(ctx); n++ {
		var d outboxDoc
		if err := cur.Decode(&d); err != nil {
			return nil, nil, fmt.Errorf("decode outbox entry: %w", err)
		}
		p := Pending{ID: d.ID}
		for _, e := range d.Events {
			p.Events = append(p.Events, pinreset.Event{ID: e.ID, Type: e.Type, MemberID: e.MemberID, ASPID: e.ASPID,
				CorrelationID: e.CorrelationID, Kind: e.Kind, At: e.At, LockedUntil: e.LockedUntil, Unlocked: e.Unlocked})
		}
		ok, err := s.committedBy(ctx, d.MemberID, d.Version, d.CorrelationID)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			committed = append(committed, p)
		} else {
			void = append(void, p)
		}
	}
	return committed, void, cur.Err()
}

// committedBy reports whether version of the member was committed by the
// command correlationID. A version already swept (KeepVersions behind the
// member) cannot be checked; it is taken as committed when the member is at
// or past it, because a missed PIN-change event (sessions left open) is
// worse for consumers than a spurious one.
func (s *Store) committedBy(ctx context.Context, memberID string, version int64, correlationID string) (bool, error) {
	var v versionDoc
	err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: versionID(memberID, version)}}).Decode(&v)
	if err == nil {
		return v.State.lastCorrelationID() == correlationID, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return false, fmt.Errorf("check version %d of member %s: %w", version, memberID, err)
	}
	m, err := s.FindMemberByID(ctx, memberID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m.Version >= version+KeepVersions, nil
}
