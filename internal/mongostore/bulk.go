package mongostore

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// InsertMembers inserts ms as new members at version 1, in one unordered
// bulk insert (the driver splits it into server-sized batches), and returns
// how many it inserted. A member already stored, by _id or by ASP and
// loginId (the aspLogin index of EnsureIndexes), is left as it is
// and not counted, so a re-run is idempotent; it does not put an existing
// member back in the given state (PutMember does, one member at a time).
//
// For seeding load-test and benchmark members only: the command path never
// inserts members. The documents have exactly the layout PutMember writes
// for a new member (toDoc, version 1, no history).
func (s *Store) InsertMembers(ctx context.Context, ms []pinreset.Member) (inserted int, err error) {
	docs := make([]any, len(ms))
	for i, m := range ms {
		m.Version, m.Outbox = 1, nil
		docs[i] = toDoc(m)
	}
	return s.insertMany(ctx, s.members, "members", docs)
}

// insertMany inserts docs into coll in one unordered bulk insert (the
// driver splits it into server-sized batches) and returns how many it
// inserted; a document refused by a unique index (already stored) is
// skipped and not counted, so a re-run is idempotent.
func (s *Store) insertMany(ctx context.Context, coll *mongo.Collection, what string, docs []any) (inserted int, err error) {
	if len(docs) == 0 {
		return 0, nil
	}
	ctx, cancel := maintenance(ctx)
	defer cancel()
	_, err = coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return len(docs), nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		// Nothing tells how many went in: the caller runs it again, which
		// skips the ones that did.
		return 0, fmt.Errorf("insert %d %s: %w", len(docs), what, err)
	}
	failed := 0
	for _, we := range bwe.WriteErrors {
		if !IsDuplicate(we.WriteError) { // a unique index: already stored, skipped
			failed++
		}
	}
	inserted = len(docs) - len(bwe.WriteErrors)
	if failed > 0 {
		return inserted, fmt.Errorf("insert %d %s: %d failed: %w", len(docs), what, failed, err)
	}
	return inserted, nil
}
