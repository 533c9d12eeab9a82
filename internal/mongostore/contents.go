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

// ContentsCollection maps the keyed fingerprint of the content of each
// request that set a PIN to its correlation id (replay detection).
const ContentsCollection = "request_contents"

type contentDoc struct {
	ID            string    `bson:"_id"` // "<asp id>:<fingerprint>"
	CorrelationID string    `bson:"correlationId"`
	At            time.Time `bson:"at"`
}

// RecordContent records that the ASP's request content with fingerprint fp
// changed a member under correlationID at at (replacing an older record).
// It inserts first, the usual case and one write on FerretDB, where an
// upsert is a query and a write; only a content seen before is replaced.
func (s *Store) RecordContent(ctx context.Context, aspID, fp, correlationID string, at time.Time) error {
	id := aspID + ":" + fp
	doc := contentDoc{ID: id, CorrelationID: correlationID, At: at}
	_, err := s.contents.InsertOne(ctx, doc)
	if mongo.IsDuplicateKeyError(err) {
		_, err = s.contents.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc, options.Replace().SetUpsert(true))
	}
	if err != nil {
		return fmt.Errorf("record request content: %w", err)
	}
	return nil
}

// FindContent returns the correlation id and time under which the ASP's
// request content with fingerprint fp last changed a member, or ErrNotFound.
func (s *Store) FindContent(ctx context.Context, aspID, fp string) (string, time.Time, error) {
	var d contentDoc
	err := s.contents.FindOne(ctx, bson.D{{Key: "_id", Value: aspID + ":" + fp}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", time.Time{}, ErrNotFound
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("find request content: %w", err)
	}
	return d.CorrelationID, d.At, nil
}

// DeleteContentsBefore deletes content claims older than t (the sweep).
func (s *Store) DeleteContentsBefore(ctx context.Context, t time.Time) (int64, error) {
	ctx, cancel := maintenance(ctx)
	defer cancel()
	res, err := s.contents.DeleteMany(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: t}}}})
	if err != nil {
		return 0, fmt.Errorf("delete request contents before %s: %w", t.Format(time.RFC3339), err)
	}
	return res.DeletedCount, nil
}
