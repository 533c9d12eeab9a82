// Package mongostore keeps member documents in MongoDB (or FerretDB). Every
// change is one single-document compare-and-set on a version field, because
// FerretDB v1 has no multi-document transactions and none are needed.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// ErrConflict is returned by UpdateMember when the stored version is not the
// expected one: another command changed the member first.
var ErrConflict = errors.New("member changed concurrently")

// ErrNotFound is returned when no member matches.
var ErrNotFound = errors.New("member not found")

// Collection names.
const (
	MembersCollection = "members"
)

// Store reads and writes members.
type Store struct {
	client  *mongo.Client
	members *mongo.Collection
}

// Config says where the database is.
type Config struct {
	// URI is a MongoDB connection string. Default "mongodb://127.0.0.1:27017/".
	URI string
	// Database is the database name. Default "pinreset".
	Database string
	// Timeout bounds connection selection and each operation's server
	// selection. Default 5 s.
	Timeout time.Duration
}

// Open connects to the database. It does not wait for the server: Ping does.
func Open(cfg Config) (*Store, error) {
	if cfg.URI == "" {
		cfg.URI = "mongodb://127.0.0.1:27017/"
	}
	if cfg.Database == "" {
		cfg.Database = "pinreset"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	opts := options.Client().ApplyURI(cfg.URI).
		SetServerSelectionTimeout(cfg.Timeout).
		SetConnectTimeout(cfg.Timeout).
		// Majority writes survive a replica set failover; on FerretDB it is accepted and moot.
		SetWriteConcern(writeconcern.Majority()).
		SetRetryWrites(true)
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect mongodb: %w", err)
	}
	db := client.Database(cfg.Database)
	return &Store{client: client, members: db.Collection(MembersCollection)}, nil
}

// Close disconnects.
func (s *Store) Close(ctx context.Context) error { return s.client.Disconnect(ctx) }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping mongodb: %w", err)
	}
	return nil
}

// EnsureIndexes creates the indexes the store relies on. Idempotent.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	_, err := s.members.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "aspId", Value: 1}, {Key: "loginId", Value: 1}},
		Options: options.Index().SetUnique(true).SetName("asp_login_unique"),
	})
	if err != nil {
		return fmt.Errorf("create index members(aspId, loginId): %w", err)
	}
	return nil
}

// memberDoc is the stored form of a member.
type memberDoc struct {
	ID             string       `bson:"_id"`
	ASPID          string       `bson:"aspId"`
	LoginID        string       `bson:"loginId"`
	CI             string       `bson:"ci,omitempty"`
	PINHash        string       `bson:"pinHash"`
	Version        int64        `bson:"version"`
	FailedAttempts int          `bson:"failedAttempts"`
	LockedUntil    time.Time    `bson:"lockedUntil,omitempty"`
	Recent         []appliedDoc `bson:"recent"`
	UpdatedAt      time.Time    `bson:"updatedAt"`
}

type appliedDoc struct {
	CorrelationID string        `bson:"cid"`
	Code          pinreset.Code `bson:"code"`
	At            time.Time     `bson:"at"`
}

func toDoc(m pinreset.Member) memberDoc {
	d := memberDoc{
		ID: m.ID, ASPID: m.ASPID, LoginID: m.LoginID, CI: m.CI, PINHash: m.PINHash,
		Version: m.Version, FailedAttempts: m.FailedAttempts, LockedUntil: m.LockedUntil,
		UpdatedAt: m.UpdatedAt, Recent: make([]appliedDoc, 0, len(m.Recent)),
	}
	for _, a := range m.Recent {
		d.Recent = append(d.Recent, appliedDoc{CorrelationID: a.CorrelationID, Code: a.Code, At: a.At})
	}
	return d
}

func (d memberDoc) member() *pinreset.Member {
	m := &pinreset.Member{
		ID: d.ID, ASPID: d.ASPID, LoginID: d.LoginID, CI: d.CI, PINHash: d.PINHash,
		Version: d.Version, FailedAttempts: d.FailedAttempts, LockedUntil: d.LockedUntil,
		UpdatedAt: d.UpdatedAt, Recent: make([]pinreset.Applied, 0, len(d.Recent)),
	}
	for _, a := range d.Recent {
		m.Recent = append(m.Recent, pinreset.Applied{CorrelationID: a.CorrelationID, Code: a.Code, At: a.At})
	}
	return m
}

// FindMember loads the member with loginID in the ASP aspID. Tenancy is in
// the filter itself: an ASP can never load another ASP's member.
func (s *Store) FindMember(ctx context.Context, aspID, loginID string) (*pinreset.Member, error) {
	var d memberDoc
	err := s.members.FindOne(ctx, bson.D{{Key: "aspId", Value: aspID}, {Key: "loginId", Value: loginID}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find member of asp %s: %w", aspID, err)
	}
	return d.member(), nil
}

// FindMemberByID loads a member by its id.
func (s *Store) FindMemberByID(ctx context.Context, id string) (*pinreset.Member, error) {
	var d memberDoc
	err := s.members.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find member %s: %w", id, err)
	}
	return d.member(), nil
}

// UpdateMember stores m if and only if the stored version is still
// expectVersion: one atomic single-document replace. It returns ErrConflict
// when another writer got there first; the caller reloads and decides again.
func (s *Store) UpdateMember(ctx context.Context, m pinreset.Member, expectVersion int64) error {
	res, err := s.members.ReplaceOne(ctx,
		bson.D{{Key: "_id", Value: m.ID}, {Key: "version", Value: expectVersion}},
		toDoc(m))
	if err != nil {
		return fmt.Errorf("update member %s: %w", m.ID, err)
	}
	if res.MatchedCount == 0 {
		return ErrConflict
	}
	return nil
}

// PutMember inserts m or replaces the member with the same id whatever its
// version (seeding and operator tools only, never the command path).
func (s *Store) PutMember(ctx context.Context, m pinreset.Member) error {
	_, err := s.members.ReplaceOne(ctx, bson.D{{Key: "_id", Value: m.ID}}, toDoc(m), options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("put member %s: %w", m.ID, err)
	}
	return nil
}
