package mongostore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A member's loginId is one member's within its ASP by a unique index on
// one field, aspLogin, that holds both (LoginKey), not by one on (aspId,
// loginId). On DocumentDB (FerretDB v2) a unique index is an exclusion
// constraint, and its check of a new entry of a compound index reads every
// entry that shares the first key: every insert, and every decision's
// commit (an update writes the whole document, so all its index entries
// anew), would read all the members of the ASP. On one field the check
// reads the entries equal to the new one.

// loginIndex is the unique index on members' aspLogin.
var loginIndex = Index{Name: "asp_login", Fields: []string{"aspLogin"}}

// legacyLoginIndex is the unique index on members(aspId, loginId) of
// earlier versions, which EnsureIndexes replaces with loginIndex.
var legacyLoginIndex = Index{Name: "asp_login_unique", Fields: []string{"aspId", "loginId"}}

// loginKeySep separates the ASP id from the loginId in a LoginKey. It
// occurs in neither: an ASP id is [A-Za-z0-9_-]{15} (internal/asp), a
// loginId an email address without quotes or brackets (pinreset's
// request rules). An ASP id without it is enough for the key to tell the
// two apart.
const loginKeySep = ":"

// LoginKey is the aspLogin field of the member with loginID in the ASP
// aspID, the key of the unique index that makes a loginId one member's in
// its ASP. Whoever writes member documents sets it with aspId and loginId.
func LoginKey(aspID, loginID string) string { return aspID + loginKeySep + loginID }

// loginFilter matches the member with loginID in the ASP aspID, through
// loginIndex. aspId and loginId are in it too: they keep tenancy in the
// filter itself, and DocumentDB plans a FindOne (limit 1) of aspLogin
// alone so that its time grows with the collection, and one of all three
// not (BenchmarkCommitScale). A document without aspLogin is not found by
// it: EnsureIndexes gives every document its key before a worker serves.
func loginFilter(aspID, loginID string) bson.D {
	return bson.D{{Key: "aspLogin", Value: LoginKey(aspID, loginID)}, {Key: "aspId", Value: aspID}, {Key: "loginId", Value: loginID}}
}

// keyMissing matches a member document without aspLogin: through the
// index's term for a missing field on DocumentDB, which answers
// {aspLogin: null} instead in time proportional to the collection.
var keyMissing = bson.E{Key: "aspLogin", Value: bson.D{{Key: "$exists", Value: false}}}

// classifyLogin is ClassifyDuplicate for the login's index; a duplicate in
// legacyLoginIndex, still there while another worker migrates the
// database, is the login's too.
func classifyLogin(err error) Duplicate {
	d := ClassifyDuplicate(err, loginIndex)
	if d == DuplicateOnOther && ClassifyDuplicate(err, legacyLoginIndex) == DuplicateOn {
		return DuplicateOn
	}
	return d
}

// keyBatch is how many documents one round of the backfill gives their key.
const keyBatch = 1000

// ensureLoginIndex makes loginIndex the index that keeps a loginId one
// member's in its ASP: it gives every document without aspLogin its key,
// creates loginIndex, and then drops legacyLoginIndex. Every step is
// idempotent and safe to run by several workers at once: a key is set
// only on a document still without one, to the value every worker
// computes; creating an index that exists with the same keys and options
// changes nothing; an index already dropped is not an error. The legacy
// index is dropped only once loginIndex exists, so one of the two refuses
// a second member with the same login throughout.
//
// A document inserted without aspLogin (by an earlier version's tool)
// after the backfill makes the creation fail when there are two (both are
// null to the index): the backfill runs again.
//
// Each of its operations may take the MaintenanceTimeout: on a large
// collection the first backfill and the creation of the index take long.
func (s *Store) ensureLoginIndex(ctx context.Context) error {
	var err error
	for range 3 {
		if err = s.backfillLoginKeys(ctx); err != nil {
			return err
		}
		mctx, cancel := maintenance(ctx)
		_, err = s.members.Indexes().CreateOne(mctx, mongo.IndexModel{
			Keys:    bson.D{{Key: "aspLogin", Value: 1}},
			Options: options.Index().SetUnique(true).SetName(loginIndex.Name),
		})
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create index members(aspLogin): %w", err)
	}
	mctx, cancel := maintenance(ctx)
	defer cancel()
	return s.dropLegacyLoginIndex(mctx)
}

// dropLegacyLoginIndex drops legacyLoginIndex unless it is gone. It looks
// first: on a database migrated already (every start after the first) a
// drop of the missing index would be answered IndexNotFound, which
// FerretDB also logs as an ERROR of its own, a false alarm at every
// start. Dropped by two workers at once, DocumentDB may answer one with an
// error (a PostgreSQL deadlock between the two): done when the index is
// gone meanwhile, else tried again.
func (s *Store) dropLegacyLoginIndex(ctx context.Context) error {
	var err error
	for range 3 {
		var specs []mongo.IndexSpecification
		if specs, err = s.members.Indexes().ListSpecifications(ctx); err != nil {
			continue
		}
		if !slices.ContainsFunc(specs, func(ix mongo.IndexSpecification) bool { return ix.Name == legacyLoginIndex.Name }) {
			return nil
		}
		err = s.members.Indexes().DropOne(ctx, legacyLoginIndex.Name)
		var ce mongo.CommandError
		if err == nil || errors.As(err, &ce) && ce.Code == indexNotFound {
			return nil
		}
	}
	return fmt.Errorf("drop index members(aspId, loginId): %w", err)
}

// indexNotFound is the server's code for dropping an index that is not
// there (MongoDB's and FerretDB's IndexNotFound).
const indexNotFound = 27

// backfillLoginKeys gives every member document without aspLogin its
// key, keyBatch at a time: one find of documents without it, one bulk
// update of them, until the find returns none (once loginIndex exists, an
// index lookup, which every EnsureIndexes makes). The key is computed
// here, by LoginKey, rather than by the server in an update pipeline, so
// that it has one definition.
func (s *Store) backfillLoginKeys(ctx context.Context) error {
	for {
		n, err := s.backfillRound(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}

// backfillRound gives up to keyBatch documents without aspLogin their key
// and returns how many it found.
func (s *Store) backfillRound(ctx context.Context) (int, error) {
	ctx, cancel := maintenance(ctx)
	defer cancel()
	cur, err := s.members.Find(ctx, bson.D{keyMissing}, oneBatch(keyBatch).
		SetProjection(bson.D{{Key: "aspId", Value: 1}, {Key: "loginId", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("find members without aspLogin: %w", err)
	}
	var docs []bson.Raw
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("find members without aspLogin: %w", err)
	}
	if len(docs) == 0 {
		return 0, nil
	}
	models := make([]mongo.WriteModel, len(docs))
	for i, d := range docs {
		models[i] = mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: d.Lookup("_id")}, keyMissing}).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "aspLogin", Value: loginKeyOf(d)}}}})
	}
	if _, err := s.members.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return 0, fmt.Errorf("set aspLogin of %d members: %w", len(docs), err)
	}
	return len(docs), nil
}

// loginKeyOf is the key of a stored member document: LoginKey of its aspId
// and loginId, or, for a damaged document without both as strings (which
// no login finds), "!" and its _id in hex, unique as the _id is and no
// ASP's key, as no ASP id has a "!".
func loginKeyOf(d bson.Raw) string {
	asp, aspOK := d.Lookup("aspId").StringValueOK()
	login, loginOK := d.Lookup("loginId").StringValueOK()
	if aspOK && loginOK {
		return LoginKey(asp, login)
	}
	id := d.Lookup("_id")
	return "!" + hex.EncodeToString(append([]byte{byte(id.Type)}, id.Value...))
}
