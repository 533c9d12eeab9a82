package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ParkedCollection marks the commands a worker took out of their lane to
// the retry topic after their retry budget: a status query that finds no
// outcome then answers "still pending", not "no such command". A marker
// outlives its command's outcome harmlessly (the outcome is read first) and
// is swept with the outcomes.
const ParkedCollection = "parked"

type parkedDoc struct {
	ID       string    `bson:"_id"` // "<asp id>:<correlation id>", as outcomes
	ParkedAt time.Time `bson:"parkedAt"`
	Reason   string    `bson:"reason"` // missing_key or transient: never an error text
	// WithdrawnAt is when an operator withdrew the command (pwctl parked
	// purge): a worker that takes its parked copy ends it as rejected.
	WithdrawnAt *time.Time `bson:"withdrawnAt,omitempty"`
}

// MarkParked records that the ASP's correlation id is parked. Idempotent.
func (s *Store) MarkParked(ctx context.Context, aspID, correlationID, reason string, at time.Time) error {
	_, err := s.parked.InsertOne(ctx, parkedDoc{ID: transactionID(aspID, correlationID), ParkedAt: at, Reason: reason})
	if err != nil && !IsDuplicateKey(err) {
		return fmt.Errorf("mark %s parked: %w", correlationID, err)
	}
	return nil
}

// IsParked tells whether the ASP's correlation id was ever parked.
func (s *Store) IsParked(ctx context.Context, aspID, correlationID string) (bool, error) {
	err := s.parked.FindOne(ctx, bson.D{{Key: "_id", Value: transactionID(aspID, correlationID)}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find parked %s: %w", correlationID, err)
	}
	return true, nil
}

// WithdrawParked marks the ASP's parked correlation id withdrawn by an
// operator (creating its mark if the sweep took it). Idempotent: the
// first time stands.
func (s *Store) WithdrawParked(ctx context.Context, aspID, correlationID string, at time.Time) error {
	id := transactionID(aspID, correlationID)
	_, err := s.parked.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "withdrawnAt", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "withdrawnAt", Value: at}}},
			{Key: "$setOnInsert", Value: bson.D{{Key: "parkedAt", Value: at}, {Key: "reason", Value: "withdrawn"}}}},
		options.UpdateOne().SetUpsert(true))
	if IsDuplicateKey(err) {
		return nil // withdrawn already: the upsert met the mark the filter left out
	}
	if err != nil {
		return fmt.Errorf("withdraw parked %s: %w", correlationID, err)
	}
	return nil
}

// IsWithdrawn tells whether an operator withdrew the ASP's parked
// correlation id.
func (s *Store) IsWithdrawn(ctx context.Context, aspID, correlationID string) (bool, error) {
	var d parkedDoc
	err := s.parked.FindOne(ctx, bson.D{{Key: "_id", Value: transactionID(aspID, correlationID)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find parked %s: %w", correlationID, err)
	}
	return d.WithdrawnAt != nil, nil
}

// ParkedSweep is the parked marks as the retention sweep deletes them
// (by parkedAt).
func (s *Store) ParkedSweep() Sweepable { return Sweepable{s.parked, "parkedAt"} }
