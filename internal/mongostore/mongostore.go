// Package mongostore keeps members, the outcomes of commands and the
// parked marks, and the audit trail (AuditLog), in MongoDB (or FerretDB v2).
//
// A decision about a member is one conditional update of the member
// document, filtered on its id and the version it was decided on: it sets
// the next state (hash, counters, lock, the command in the recent history,
// the replay claim) and appends the decision's consequences to the
// document's outbox (the outcome, the events). Of two decisions built on
// one version exactly one matches; the other reads the member again and
// decides again. The outbox is delivered afterwards, idempotently, and
// marked delivered by the last of them: the outcome record (OutcomesCollection), the
// events, the audit record. A command without a member is one insert into
// the outcomes. Neither needs a transaction, which FerretDB does not have.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// ErrNotFound is returned when no member matches.
var ErrNotFound = pinreset.ErrMemberNotFound

// ErrLoginTaken is returned by PutMember when another member of the ASP
// already has the loginId.
var ErrLoginTaken = errors.New("login id belongs to another member of the ASP")

// MembersCollection holds one document per member, found by _id or by
// the unique index on aspLogin, its ASP and loginId in one field
// (LoginKey).
const MembersCollection = "members"

// Store reads and writes members.
type Store struct {
	client   *mongo.Client
	members  *mongo.Collection
	outcomes *mongo.Collection
	parked   *mongo.Collection
}

// Config says where the database is.
type Config struct {
	// URI is a MongoDB connection string. Default "mongodb://127.0.0.1:27017/".
	// Its read preference, read concern, write concern and timeoutMS are
	// overridden (see Open); everything else in it (hosts, replica set,
	// credentials, TLS, pool sizes) is used as given.
	URI string
	// Database is the database name. Default "pinreset".
	Database string
	// Timeout bounds connecting to a server and each operation's server
	// selection. Default 5 s.
	Timeout time.Duration
	// OperationTimeout bounds every operation of the client as a whole
	// (server selection, connection checkout, the round trips, retries),
	// unless the caller's context has an earlier deadline: the driver's
	// client-wide timeout (CSOT, timeoutMS). It is also what bounds a read
	// from a half-open connection, which no other setting of mongo-driver v2
	// does (it has no socket timeout). Default 10 s.
	OperationTimeout time.Duration
	// Monitor, when set, is told of every command the client sends (tests
	// count round trips with it). Default none.
	Monitor *event.CommandMonitor
}

// Defaults of Config: a local server, for tools and tests; the binaries
// pass their settings.
const (
	DefaultURI              = "mongodb://127.0.0.1:27017/"
	DefaultDatabase         = "pinreset"
	DefaultTimeout          = 5 * time.Second
	DefaultOperationTimeout = 10 * time.Second
)

// Consistency the store forces whatever the URI says. The store's reasoning
// (a version claim is the commit; a reader rolls forward from what it reads)
// assumes it reads what a majority has acknowledged, from the primary: a
// read from a secondary, or of a write a failover later rolls back, could
// show an older version than one already claimed. So reads go to the
// primary with majority read concern and writes wait for a majority,
// journaled. FerretDB accepts all three (TestConsistencyIsForced shows
// what it is sent); on it they are moot, as it is a single server.
var (
	forcedReadPref     = readpref.Primary()
	forcedReadConcern  = readconcern.Majority()
	forcedWriteConcern = &writeconcern.WriteConcern{W: "majority", Journal: ptr(true)}
)

func ptr[T any](v T) *T { return &v }

// oneBatch are the options of a find of at most n documents, all of them
// in the reply to the find itself: a negative limit (the wire protocol's
// singleBatch) and a batch that holds them. A find with a positive limit
// makes FerretDB (v2.5, DocumentDB) keep the PostgreSQL connection for a
// cursor and close it after, even when every document fits in the first
// batch: a backend forked and set up again for each such read, 20 to 30
// ms during which a decision that needs a connection waits for the new one
// (the relay's read every 5 s, TestFindsKeepTheirConnections).
func oneBatch(n int) *options.FindOptionsBuilder {
	return options.Find().SetLimit(-int64(n)).SetBatchSize(int32(n))
}

// clientOptions are the options Open connects with: cfg's URI, then the
// forced consistency and timeouts over whatever the URI set.
func clientOptions(cfg Config) *options.ClientOptions {
	return options.Client().ApplyURI(cfg.URI).
		SetReadPreference(forcedReadPref).
		SetReadConcern(forcedReadConcern).
		SetWriteConcern(forcedWriteConcern).
		SetServerSelectionTimeout(cfg.Timeout).
		SetConnectTimeout(cfg.Timeout).
		SetTimeout(cfg.OperationTimeout).
		SetRetryWrites(true).
		SetMonitor(cfg.Monitor)
}

// MaintenanceTimeout bounds each of the store's whole-collection operations
// (the retention sweeps, bulk inserts of members) in place of
// Config.OperationTimeout, which is meant for the command path: a sweep or
// an import over a large collection takes longer than a command's
// operation may. A caller's earlier
// deadline still applies.
const MaintenanceTimeout = 10 * time.Minute

// maintenance gives ctx the MaintenanceTimeout unless it has a deadline (a
// deadline on the context overrides the client-wide timeout).
func maintenance(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, MaintenanceTimeout)
}

func (cfg Config) withDefaults() Config {
	if cfg.URI == "" {
		cfg.URI = DefaultURI
	}
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.OperationTimeout <= 0 {
		cfg.OperationTimeout = DefaultOperationTimeout
	}
	return cfg
}

// Open connects to the database. It does not wait for the server: Ping does.
// Read preference primary, read concern majority and write concern majority
// with journal are forced on the client and again on the database (see
// forcedReadPref), whatever the URI says.
func Open(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	client, err := mongo.Connect(clientOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("connect mongodb: %w", err)
	}
	db := client.Database(cfg.Database, options.Database().
		SetReadPreference(forcedReadPref).SetReadConcern(forcedReadConcern).SetWriteConcern(forcedWriteConcern))
	return &Store{client: client, members: db.Collection(MembersCollection),
		outcomes: db.Collection(OutcomesCollection), parked: db.Collection(ParkedCollection)}, nil
}

// Database is the database the store uses, for the other collections of the
// service (the audit trail).
func (s *Store) Database() *mongo.Database { return s.members.Database() }

// Close disconnects.
func (s *Store) Close(ctx context.Context) error { return s.client.Disconnect(ctx) }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping mongodb: %w", err)
	}
	return nil
}

// EnsureIndexes creates the indexes the store relies on, and migrates a
// database of an earlier version to them (ensureLoginIndex). Idempotent,
// and safe to run by several workers at once.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	if err := s.ensureLoginIndex(ctx); err != nil {
		return err
	}
	_, err := s.members.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "outbox.at", Value: 1}}, Options: options.Index().SetName("outbox_at"),
	})
	if err != nil {
		return fmt.Errorf("create index members(outbox.at): %w", err)
	}
	_, err = s.outcomes.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "completedAt", Value: 1}}, Options: options.Index().SetName("completed_at"),
	})
	if err != nil {
		return fmt.Errorf("create index outcomes(completedAt): %w", err)
	}
	_, err = s.parked.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "parkedAt", Value: 1}}, Options: options.Index().SetName("parked_at"),
	})
	if err != nil {
		return fmt.Errorf("create index parked(parkedAt): %w", err)
	}
	return nil
}

// memberDoc is the stored form of a member.
type memberDoc struct {
	ID             string       `bson:"_id"`
	ASPID          string       `bson:"aspId"`
	LoginID        string       `bson:"loginId"`
	LoginKey       string       `bson:"aspLogin"` // LoginKey(ASPID, LoginID), which the unique index holds
	CI             string       `bson:"ci,omitempty"`
	PINHash        string       `bson:"pinHash"`
	Version        int64        `bson:"version"`
	FailedAttempts int          `bson:"failedAttempts"`
	WrongAttempts  []attemptDoc `bson:"wrongAttempts,omitempty"`
	// WrongPINs is the former form of WrongAttempts (keys only), read so
	// that the attempts a member counted before the upgrade stay counted.
	WrongPINs   []string     `bson:"wrongPins,omitempty"`
	LockedUntil time.Time    `bson:"lockedUntil,omitempty"`
	Recent      []appliedDoc `bson:"recent"`
	Sets        []setDoc     `bson:"sets,omitempty"`
	Outbox      []pendingDoc `bson:"outbox,omitempty"`
	AuditSeq    int64        `bson:"auditSeq,omitempty"`
	AuditHash   string       `bson:"auditHash,omitempty"`
	UpdatedAt   time.Time    `bson:"updatedAt"`
}

// pendingDoc is an outbox entry: a decision to deliver.
type pendingDoc struct {
	Version   int64      `bson:"v"`
	At        time.Time  `bson:"at"` // when it was decided: the relay's index
	Outcome   outcomeDoc `bson:"outcome"`
	Events    []eventDoc `bson:"events,omitempty"`
	AuditSeq  int64      `bson:"auditSeq"`
	AuditHash string     `bson:"auditHash"`
	AuditPrev string     `bson:"auditPrev"`
	Repair    string     `bson:"repair,omitempty"`
}

type eventDoc struct {
	ID            string             `bson:"id"`
	Type          pinreset.EventType `bson:"type"`
	Version       int64              `bson:"version"`
	MemberID      string             `bson:"memberId"`
	ASPID         string             `bson:"aspId"`
	CorrelationID string             `bson:"correlationId"`
	Kind          pinreset.Kind      `bson:"kind,omitempty"`
	At            time.Time          `bson:"at"`
	LockedUntil   time.Time          `bson:"lockedUntil,omitempty"`
	Unlocked      bool               `bson:"unlocked,omitempty"`
}

type setDoc struct {
	Fingerprint   string    `bson:"fp"`
	CorrelationID string    `bson:"cid"`
	At            time.Time `bson:"at"`
}

type attemptDoc struct {
	Key string    `bson:"k"`
	At  time.Time `bson:"at"`
}

type appliedDoc struct {
	CorrelationID string        `bson:"cid"`
	Code          pinreset.Code `bson:"code"`
	At            time.Time     `bson:"at"`
	Fingerprint   string        `bson:"fp,omitempty"`
}

func toDoc(m pinreset.Member) memberDoc {
	d := memberDoc{
		ID: m.ID, ASPID: m.ASPID, LoginID: m.LoginID, LoginKey: LoginKey(m.ASPID, m.LoginID), CI: m.CI, PINHash: m.PINHash,
		Version: m.Version, FailedAttempts: m.FailedAttempts, LockedUntil: m.LockedUntil,
		UpdatedAt: m.UpdatedAt, Recent: make([]appliedDoc, 0, len(m.Recent)),
		AuditSeq: m.Audit.Seq, AuditHash: m.Audit.Hash,
	}
	for _, c := range m.Sets {
		d.Sets = append(d.Sets, setDoc{Fingerprint: c.Fingerprint, CorrelationID: c.CorrelationID, At: c.At})
	}
	for _, a := range m.WrongAttempts {
		d.WrongAttempts = append(d.WrongAttempts, attemptDoc{Key: a.Key, At: a.At})
	}
	for _, a := range m.Recent {
		d.Recent = append(d.Recent, appliedDoc{CorrelationID: a.CorrelationID, Code: a.Code, At: a.At, Fingerprint: a.Fingerprint})
	}
	for _, p := range m.Outbox {
		pd := pendingDoc{Version: p.Version, At: p.Outcome.CompletedAt.UTC(), Outcome: toOutcomeDoc(p.Outcome),
			AuditSeq: p.Audit.Seq, AuditHash: p.Audit.Hash, AuditPrev: p.AuditPrev, Repair: p.Repair}
		for _, e := range p.Events {
			pd.Events = append(pd.Events, eventDoc{ID: e.ID, Type: e.Type, Version: e.Version, MemberID: e.MemberID, ASPID: e.ASPID,
				CorrelationID: e.CorrelationID, Kind: e.Kind, At: e.At.UTC(), LockedUntil: e.LockedUntil.UTC(), Unlocked: e.Unlocked})
		}
		d.Outbox = append(d.Outbox, pd)
	}
	return d
}

func (d memberDoc) member() *pinreset.Member {
	m := &pinreset.Member{
		ID: d.ID, ASPID: d.ASPID, LoginID: d.LoginID, CI: d.CI, PINHash: d.PINHash,
		Version: d.Version, FailedAttempts: d.FailedAttempts, LockedUntil: d.LockedUntil,
		UpdatedAt: d.UpdatedAt, Recent: make([]pinreset.Applied, 0, len(d.Recent)),
		Audit: pinreset.AuditLink{Seq: d.AuditSeq, Hash: d.AuditHash},
	}
	for _, c := range d.Sets {
		m.Sets = append(m.Sets, pinreset.SetClaim{Fingerprint: c.Fingerprint, CorrelationID: c.CorrelationID, At: c.At.UTC()})
	}
	for _, k := range d.WrongPINs {
		m.WrongAttempts = append(m.WrongAttempts, pinreset.Attempt{Key: k, At: d.UpdatedAt})
	}
	for _, a := range d.WrongAttempts {
		m.WrongAttempts = append(m.WrongAttempts, pinreset.Attempt{Key: a.Key, At: a.At})
	}
	for _, a := range d.Recent {
		m.Recent = append(m.Recent, pinreset.Applied{CorrelationID: a.CorrelationID, Code: a.Code, At: a.At.UTC(), Fingerprint: a.Fingerprint})
	}
	for _, pd := range d.Outbox {
		p := pinreset.Pending{Version: pd.Version, Outcome: pd.Outcome.outcome(),
			Audit: pinreset.AuditLink{Seq: pd.AuditSeq, Hash: pd.AuditHash}, AuditPrev: pd.AuditPrev, Repair: pd.Repair}
		for _, e := range pd.Events {
			p.Events = append(p.Events, pinreset.Event{ID: e.ID, Type: e.Type, Version: e.Version, MemberID: e.MemberID, ASPID: e.ASPID,
				CorrelationID: e.CorrelationID, Kind: e.Kind, At: e.At.UTC(), LockedUntil: e.LockedUntil.UTC(), Unlocked: e.Unlocked})
		}
		m.Outbox = append(m.Outbox, p)
	}
	return m
}

// FindMember loads the member with loginID in the ASP aspID: one read
// through the unique index on aspLogin (loginFilter). Tenancy is in the
// filter itself: an ASP can never load another ASP's member.
func (s *Store) FindMember(ctx context.Context, aspID, loginID string) (*pinreset.Member, error) {
	m, _, err := s.readMember(ctx, loginFilter(aspID, loginID), "", true)
	return m, err
}

// FindMemberByID loads a member by its id.
func (s *Store) FindMemberByID(ctx context.Context, id string) (*pinreset.Member, error) {
	m, _, err := s.readMember(ctx, bson.D{{Key: "_id", Value: id}}, "", true)
	return m, err
}

// decodeMember decodes a member document read apart from its round trip:
// a document that arrived and does not decode is damaged (no retry fixes
// it), not an outage.
func decodeMember(raw bson.Raw) (*pinreset.Member, error) {
	var d memberDoc
	if err := bson.Unmarshal(raw, &d); err != nil {
		id, _ := raw.Lookup("_id").StringValueOK()
		return nil, &pinreset.DamagedMemberError{MemberID: id, Reason: "document does not decode: " + decodeReason(err)}
	}
	return d.member(), nil
}

// decodeReason is the part of a decoding error that names the field and the
// types, without any value of the document.
func decodeReason(err error) string {
	var de *bson.DecodeError
	if errors.As(err, &de) {
		return "field " + strings.Join(de.Keys(), ".")
	}
	return "not a member document"
}

// findVersion reads only what PutMember builds on, the member's version and
// audit link, so that it can replace a damaged document too (one that does
// not decode as a member). ErrNotFound when there is none.
func (s *Store) findVersion(ctx context.Context, id string) (*pinreset.Member, error) {
	raw, err := s.members.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find member %s: %w", id, err)
	}
	m := &pinreset.Member{ID: id}
	m.Version, _ = raw.Lookup("version").AsInt64OK()
	if m.Version == 0 {
		m.Version = -1 // missing or not a number: a damaged document
	}
	m.Audit.Seq, _ = raw.Lookup("auditSeq").AsInt64OK()
	m.Audit.Hash, _ = raw.Lookup("auditHash").StringValueOK()
	return m, nil
}

// MemberIDOf returns the id of the member with loginID in the ASP, reading
// only its _id (the document may be damaged).
func (s *Store) MemberIDOf(ctx context.Context, aspID, loginID string) (string, error) {
	raw, err := s.members.FindOne(ctx, loginFilter(aspID, loginID), options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("find member of asp %s: %w", aspID, err)
	}
	id, _ := raw.Lookup("_id").StringValueOK()
	return id, nil
}

// PutMember sets a member's state whatever its current state, a damaged
// one included (seeding and operator tools only, never the command path):
// a new member is inserted at version 1; an existing one gets m's fields
// as its next version, by the same conditional update as a decision (its
// outbox and audit link stay as they are).
func (s *Store) PutMember(ctx context.Context, m pinreset.Member) error {
	unnamed := false // the last insert hit a unique index the server did not name
	for range 100 {
		cur, err := s.findVersion(ctx, m.ID)
		if errors.Is(err, ErrNotFound) {
			if unnamed {
				// Refused, and still no member with this _id: on a server
				// that does not name the index (only a single server is
				// known to, so this read sees the write that refused
				// ours) it was the login's.
				return fmt.Errorf("put member %s: %w", m.ID, ErrLoginTaken)
			}
			m.Version, m.Outbox = 1, nil
			_, err := s.members.InsertOne(ctx, toDoc(m))
			switch classifyLogin(err) {
			case DuplicateOn:
				return fmt.Errorf("put member %s: %w", m.ID, ErrLoginTaken)
			case DuplicateOnOther: // _id: inserted meanwhile; update it
				continue
			case DuplicateUnnamed:
				unnamed = true
				continue
			}
			if err != nil {
				return fmt.Errorf("insert member %s: %w", m.ID, err)
			}
			return nil
		}
		if err != nil {
			return err
		}
		filter := bson.D{{Key: "_id", Value: m.ID}, {Key: "version", Value: cur.Version}}
		if cur.Version < 0 {
			// A damaged version: the repair replaces it, unless another
			// put or decision set a good one meanwhile.
			filter[1].Value = bson.D{{Key: "$not", Value: bson.D{{Key: "$type", Value: "number"}}}}
			cur.Version = 0
		}
		m.Version = cur.Version + 1
		d := toDoc(m)
		update := stateOf(d, identity(d)...)
		res, err := s.members.UpdateOne(ctx, filter, update)
		if classifyLogin(err) == DuplicateOn {
			return fmt.Errorf("put member %s: %w", m.ID, ErrLoginTaken)
		}
		if err != nil {
			return fmt.Errorf("put member %s version %d: %w", m.ID, m.Version, err)
		}
		if res.MatchedCount == 1 {
			return nil
		}
	}
	return fmt.Errorf("put member %s: too many concurrent changes", m.ID)
}

// identity is what a put or a repair sets of who the member is, which a
// decision leaves: its ASP, its loginId and their LoginKey, all three
// together.
func identity(d memberDoc) []bson.E {
	return []bson.E{{Key: "aspId", Value: d.ASPID}, {Key: "loginId", Value: d.LoginID}, {Key: "aspLogin", Value: d.LoginKey}}
}
