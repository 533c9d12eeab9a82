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

// OutcomesCollection holds one record per decided command.
const OutcomesCollection = "outcomes"

// ErrDuplicate is returned by InsertOutcome when the command already has one.
var ErrDuplicate = errors.New("outcome already recorded")

// Outcome is the recorded outcome of one command: what makes a retry answer
// the same, a reuse of the correlation id a 409, and a status query possible.
// It holds no secret: the request is only a keyed fingerprint.
type Outcome struct {
	ASPID         string        `bson:"aspId"`
	CorrelationID string        `bson:"correlationId"`
	Kind          pinreset.Kind `bson:"kind"`
	Fingerprint   string        `bson:"fingerprint"`
	Code          pinreset.Code `bson:"code"`
	MemberID      string        `bson:"memberId,omitempty"`
	AcceptedAt    time.Time     `bson:"acceptedAt"`
	CompletedAt   time.Time     `bson:"completedAt"`
	WorkerID      string        `bson:"workerId"`
}

type outcomeDoc struct {
	ID      string `bson:"_id"` // "<asp id>:<correlation id>": correlation ids are unique per ASP
	Outcome `bson:",inline"`
}

func outcomeID(aspID, correlationID string) string { return aspID + ":" + correlationID }

// FindOutcome returns the recorded outcome of the ASP's correlation id, or ErrNotFound.
func (s *Store) FindOutcome(ctx context.Context, aspID, correlationID string) (Outcome, error) {
	var d outcomeDoc
	err := s.outcomes.FindOne(ctx, bson.D{{Key: "_id", Value: outcomeID(aspID, correlationID)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Outcome{}, ErrNotFound
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("find outcome %s: %w", correlationID, err)
	}
	return d.Outcome, nil
}

// InsertOutcome records o once: a second record for the same command is
// refused with ErrDuplicate (the unique _id makes this atomic).
func (s *Store) InsertOutcome(ctx context.Context, o Outcome) error {
	_, err := s.outcomes.InsertOne(ctx, outcomeDoc{ID: outcomeID(o.ASPID, o.CorrelationID), Outcome: o})
	if mongo.IsDuplicateKeyError(err) {
		return ErrDuplicate
	}
	if err != nil {
		return fmt.Errorf("record outcome %s: %w", o.CorrelationID, err)
	}
	return nil
}

// DeleteOutcomesBefore deletes the outcomes completed before t and returns how
// many. It is the retention sweep: FerretDB v1 has no TTL indexes.
func (s *Store) DeleteOutcomesBefore(ctx context.Context, t time.Time) (int64, error) {
	ctx, cancel := maintenance(ctx)
	defer cancel()
	res, err := s.outcomes.DeleteMany(ctx, bson.D{{Key: "completedAt", Value: bson.D{{Key: "$lt", Value: t}}}})
	if err != nil {
		return 0, fmt.Errorf("delete outcomes before %s: %w", t.Format(time.RFC3339), err)
	}
	return res.DeletedCount, nil
}
