package mongostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// auditOnceIndex is the unique index on once, a record's chain and
// correlation id in one string (onceKey), that keeps one record of a
// command in its chain. One field, because on DocumentDB a unique index on
// (chain, correlationId) is an exclusion constraint whose check of a new
// record reads every record of the same chain: its cost grows with the
// chain, and memberless chains grow without bound. A unique index on one
// field checks one key. It is partial (only records that have the field):
// records stored before once, and records an older release appends during
// an upgrade, lack it until a backfill. once is not hashed (audit.Hash
// covers the record's own fields), so adding it changed no record's hash.
var auditOnceIndex = Index{Name: "once_unique", Fields: []string{"once"}}

// legacyOnceIndex is the unique index on (chain, correlationId) that
// once_unique replaces (migrateOnce drops it).
var legacyOnceIndex = Index{Name: "chain_correlation_unique", Fields: []string{"chain", "correlationId"}}

// onceKey is chain + NUL + correlation id: NUL is in no id the service
// issues or accepts, so the first NUL ends the chain. A chain that does
// hold one (the ids of a command that could not be decoded are checked for
// their length only), or an empty one, is written NUL + hex(chain) + NUL +
// correlation id instead, which no key of the first form starts with: any
// two pairs have two keys.
func onceKey(chain, correlationID string) string {
	if chain == "" || strings.Contains(chain, "\x00") {
		return "\x00" + hex.EncodeToString([]byte(chain)) + "\x00" + correlationID
	}
	return chain + "\x00" + correlationID
}

// onceBackfillIndex marks a migration to once under way, for as long as it
// exists: a sparse index on a field no record has, so it costs nothing. It
// is created before legacyOnceIndex is dropped and dropped when every
// record has once, so a start finds the work a process that died in
// between left, and a start after it has nothing to scan for. (It lives
// with the collection: a trail restored from before once brings back
// legacyOnceIndex, and is migrated again.)
const onceBackfillIndex = "once_backfill_pending"

// onceBackfillBatch is how many records one round trip of the backfill
// reads, and one then updates.
const onceBackfillBatch = 1000

// The migration's lease: one process at a time migrates, because DocumentDB
// answers concurrent changes to one collection's indexes with a deadlock
// now and then (and a development build of FerretDB panics on a deadlock
// in dropIndexes). Held in auditLeaseCollection, renewed between steps, so
// a process that died holding it is replaced after auditLeaseFor; the
// others wait, reading the indexes every auditLeasePoll, until it is done.
const (
	auditLeaseCollection = "audit_migration"
	auditLeaseFor        = 2 * time.Minute
	auditLeasePoll       = time.Second
)

// EnsureIndexes creates the unique index on once that makes Append
// idempotent, and the plain indexes Find and Verify use: correlationId,
// memberId and (chain, seq). On a trail stored before once existed it
// migrates it (migrateOnce) first. Idempotent, and safe to run from any
// number of processes at once; run it before the first Append.
func (l *AuditLog) EnsureIndexes(ctx context.Context) error {
	names, err := l.indexNames(ctx)
	if err != nil {
		return err
	}
	if migrating(names) {
		return l.migrateOnce(ctx)
	}
	return l.createIndexes(ctx)
}

// migrating says whether a trail with these indexes is still to be moved
// to once.
func migrating(names []string) bool {
	return slices.Contains(names, legacyOnceIndex.Name) || slices.Contains(names, onceBackfillIndex)
}

func (l *AuditLog) createIndexes(ctx context.Context) error {
	// One createIndexes per index: an error names the index it is about.
	for _, ix := range []struct {
		name string
		keys bson.D
		opts *options.IndexOptionsBuilder
	}{
		{auditOnceIndex.Name, bson.D{{Key: "once", Value: 1}},
			options.Index().SetUnique(true).SetPartialFilterExpression(bson.D{{Key: "once", Value: bson.D{{Key: "$exists", Value: true}}}})},
		{"correlation_id", bson.D{{Key: "correlationId", Value: 1}}, options.Index()},
		{"member_id", bson.D{{Key: "memberId", Value: 1}}, options.Index()},
		{"chain_seq", bson.D{{Key: "chain", Value: 1}, {Key: "seq", Value: 1}}, options.Index()},
	} {
		if err := l.createIndex(ctx, ix.name, ix.keys, ix.opts); err != nil {
			return err
		}
	}
	return nil
}

// migrateOnce moves a trail from legacyOnceIndex to once, under the
// lease: create the indexes, mark the migration under way, drop the old
// index, set once on every record that lacks it, clear the mark. Another
// process that finishes it meanwhile leaves only the indexes to create.
//
// The old index goes before the backfill, not after, because it makes
// each update cost a read of the record's whole chain. Meanwhile a record
// without once does not refuse a second record of its command; neither
// does one that an older release appends during a rolling upgrade.
func (l *AuditLog) migrateOnce(ctx context.Context) error {
	lease, err := l.acquireLease(ctx)
	if err != nil {
		return err
	}
	if lease == nil {
		return l.createIndexes(ctx) // migrated by another process
	}
	defer lease.release(ctx)
	if err := l.createIndexes(ctx); err != nil {
		return err
	}
	names, err := l.indexNames(ctx)
	if err != nil || !migrating(names) { // (done by the lease's last holder)
		return err
	}
	if !slices.Contains(names, onceBackfillIndex) {
		if err := l.createIndex(ctx, onceBackfillIndex, bson.D{{Key: "onceBackfillPending", Value: 1}}, options.Index().SetSparse(true)); err != nil {
			return err
		}
	}
	if slices.Contains(names, legacyOnceIndex.Name) {
		if err := l.dropIndex(ctx, legacyOnceIndex.Name); err != nil {
			return err
		}
	}
	if err := l.backfillOnce(ctx, lease); err != nil {
		return err
	}
	if err := lease.renew(ctx); err != nil {
		return err
	}
	return l.dropIndex(ctx, onceBackfillIndex)
}

// backfillOnce sets once on every record that lacks it, in _id order,
// onceBackfillBatch records a round trip of reading and one of updating,
// renewing the lease between batches. A record refused by once_unique is
// a second record of a command already in its chain, appended while
// nothing refused it (see migrateOnce): it is left without once (it
// verifies as any other). So is a record whose chain or correlation id is
// not a string, which Verify reports.
func (l *AuditLog) backfillOnce(ctx context.Context, lease *auditLease) error {
	after := "" // every record's _id is a string; each batch starts after the last one read
	for {
		if err := lease.renew(ctx); err != nil {
			return err
		}
		mctx, cancel := maintenance(ctx)
		cur, err := l.coll.Find(mctx,
			bson.D{{Key: "once", Value: bson.D{{Key: "$exists", Value: false}}}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}}},
			oneBatch(onceBackfillBatch).SetSort(bson.D{{Key: "_id", Value: 1}}).
				SetProjection(bson.D{{Key: "chain", Value: 1}, {Key: "correlationId", Value: 1}}))
		var docs []bson.Raw
		if err == nil {
			err = cur.All(mctx, &docs)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("backfill audit once: %w", err)
		}
		if len(docs) == 0 {
			return nil
		}
		var updates []mongo.WriteModel
		last := after
		for _, d := range docs {
			id, ok0 := d.Lookup("_id").StringValueOK()
			chain, ok1 := d.Lookup("chain").StringValueOK()
			cid, ok2 := d.Lookup("correlationId").StringValueOK()
			if !ok0 {
				continue // not a record ($gt "" matches strings only)
			}
			after = id
			if ok1 && ok2 {
				updates = append(updates, mongo.NewUpdateOneModel().
					SetFilter(bson.D{{Key: "_id", Value: id}, {Key: "once", Value: bson.D{{Key: "$exists", Value: false}}}}).
					SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "once", Value: onceKey(chain, cid)}}}}))
			}
		}
		if after == last {
			return fmt.Errorf("backfill audit once: no progress after %q", after)
		}
		if len(updates) == 0 {
			continue
		}
		mctx, cancel = maintenance(ctx)
		_, err = l.coll.BulkWrite(mctx, updates, options.BulkWrite().SetOrdered(false))
		cancel()
		var bwe mongo.BulkWriteException
		if errors.As(err, &bwe) && bwe.WriteConcernError == nil &&
			!slices.ContainsFunc(bwe.WriteErrors, func(we mongo.BulkWriteError) bool { return !IsDuplicate(we.WriteError) }) {
			err = nil // each refused by once_unique: a second record of its command
		}
		if err != nil {
			return fmt.Errorf("backfill audit once after %q: %w", after, err)
		}
	}
}

// createIndex creates one index, with the MaintenanceTimeout: on a large
// trail an index build reads the whole collection.
func (l *AuditLog) createIndex(ctx context.Context, name string, keys bson.D, opts *options.IndexOptionsBuilder) error {
	ctx, cancel := maintenance(ctx)
	defer cancel()
	if _, err := l.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: keys, Options: opts.SetName(name)}); err != nil {
		return fmt.Errorf("create audit index %s: %w", name, err)
	}
	return nil
}

// dropIndex drops index name if it exists.
func (l *AuditLog) dropIndex(ctx context.Context, name string) error {
	ctx, cancel := maintenance(ctx)
	defer cancel()
	err := l.coll.Indexes().DropOne(ctx, name)
	var ce mongo.CommandError
	if err != nil && !(errors.As(err, &ce) && ce.Code == 27) { // IndexNotFound
		return fmt.Errorf("drop audit index %s: %w", name, err)
	}
	return nil
}

// indexNames lists the trail's indexes (none before the collection exists).
// It asks whether the collection exists first: listing the indexes of a
// missing one is answered NamespaceNotFound, which FerretDB also logs as
// an ERROR of its own, a false alarm at the first start on a new database.
func (l *AuditLog) indexNames(ctx context.Context) ([]string, error) {
	colls, err := l.coll.Database().ListCollectionNames(ctx, bson.D{{Key: "name", Value: l.coll.Name()}})
	if err != nil {
		return nil, fmt.Errorf("list audit indexes: %w", err)
	}
	if len(colls) == 0 {
		return nil, nil
	}
	specs, err := l.coll.Indexes().ListSpecifications(ctx)
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code == 26 { // NamespaceNotFound: dropped meanwhile
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list audit indexes: %w", err)
	}
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		names = append(names, s.Name)
	}
	return names, nil
}

// auditLease is the migration's lease, held.
type auditLease struct {
	coll  *mongo.Collection
	owner string
	now   func() time.Time
}

// acquireLease takes the migration's lease, waiting for a live holder to
// finish or to let it expire. It returns nil when another process
// finished the migration meanwhile.
func (l *AuditLog) acquireLease(ctx context.Context) (*auditLease, error) {
	lease := &auditLease{coll: l.coll.Database().Collection(auditLeaseCollection), owner: rand.Text(), now: l.now}
	for {
		until := lease.now().Add(auditLeaseFor)
		_, err := lease.coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "once"}, {Key: "owner", Value: lease.owner}, {Key: "until", Value: until}})
		if err == nil {
			return lease, nil
		}
		if !IsDuplicateKey(err) {
			return nil, fmt.Errorf("take the audit migration lease: %w", err)
		}
		res, err := lease.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "once"}, {Key: "until", Value: bson.D{{Key: "$lt", Value: lease.now()}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: lease.owner}, {Key: "until", Value: until}}}})
		if err != nil {
			return nil, fmt.Errorf("take over the audit migration lease: %w", err)
		}
		if res.ModifiedCount == 1 {
			return lease, nil // its holder let it expire
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the audit migration: %w", ctx.Err())
		case <-time.After(auditLeasePoll):
		}
		names, err := l.indexNames(ctx)
		if err != nil {
			return nil, err
		}
		if !migrating(names) {
			return nil, nil
		}
	}
}

// renew extends the lease; an error when another process took it over.
func (a *auditLease) renew(ctx context.Context) error {
	res, err := a.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "once"}, {Key: "owner", Value: a.owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: a.now().Add(auditLeaseFor)}}}})
	if err != nil {
		return fmt.Errorf("renew the audit migration lease: %w", err)
	}
	if res.MatchedCount == 0 {
		return errors.New("audit migration: the lease expired and another process took it over")
	}
	return nil
}

// release gives the lease up (it expires anyway).
func (a *auditLease) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = a.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "once"}, {Key: "owner", Value: a.owner}})
}
