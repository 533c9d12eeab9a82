package mongostore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/audit"
)

// AuditCollection holds the audit trail, one document per record under
// _id audit.ID(chain, seq), never updated.
const AuditCollection = "audit"

// auditMaxAttempts bounds how many times Append retries after another
// writer took the seq it tried.
const auditMaxAttempts = 100

// maxAuditHints bounds the per-process map of chain heads; it is only a hint.
const maxAuditHints = 10000

// ErrAuditContention is returned by Append when other writers took the
// next seq of the chain 100 times in a row.
var ErrAuditContention = errors.New("audit: too many concurrent appends to one chain")

// AuditLog is the audit trail in one database (AuditCollection). It is safe
// for concurrent use; any number of AuditLogs, in any number of processes,
// may append to the same collection.
//
// Appending claims a place without compare-and-set: a record's _id is its
// place (audit.ID), so inserting it either takes the place or is refused by
// the _id index because another writer took it first, one write with no
// read before it. Append tries the seq after the head it last saw (a
// bounded per-process hint; seq 1 for a chain it never saw) and reads only
// after losing: it finds the head in O(log n) point reads and tries again.
// A second record of a command in its chain is refused by the unique index
// on the record's once field (chain and correlation id: auditindex.go), and
// Append answers audit.ErrRecorded, so appending again after a crash or a
// redelivery needs no search first.
// docs/audit.md says why it is built so.
type AuditLog struct {
	coll *mongo.Collection
	now  func() time.Time

	mu    sync.Mutex
	hints map[string]chainHead // chain -> a record known to exist, with its hash

	conflicts atomic.Int64 // inserts that lost to another writer (tests)
}

// chainHead is a record of a chain: its seq and hash.
type chainHead struct {
	seq  int64
	hash string
}

// NewAuditLog returns the audit trail kept in db's AuditCollection.
func NewAuditLog(db *mongo.Database) *AuditLog {
	return &AuditLog{coll: db.Collection(AuditCollection), now: time.Now, hints: make(map[string]chainHead)}
}

// auditDoc is the stored form of an audit.Record: a stored record has
// exactly these keys, but note (on an operator's record only) and once
// (absent from records stored before it).
type auditDoc struct {
	ID            string    `bson:"_id"` // audit.ID(chain, seq)
	Chain         string    `bson:"chain"`
	Seq           int64     `bson:"seq"`
	PrevHash      string    `bson:"prevHash"`
	Hash          string    `bson:"hash"`
	ASPID         string    `bson:"aspId"`
	Kind          string    `bson:"kind"`
	MemberID      string    `bson:"memberId"`
	LoginIDHash   string    `bson:"loginIdHash"`
	CorrelationID string    `bson:"correlationId"`
	Code          string    `bson:"code"`
	At            time.Time `bson:"at"`
	WorkerID      string    `bson:"workerId"`
	Note          string    `bson:"note,omitempty"` // optional: absent from every record but an operator's
	Once          string    `bson:"once"`           // onceKey(chain, correlationId), not hashed; absent from records stored before it
}

func toAuditDoc(r audit.Record) auditDoc {
	return auditDoc{
		ID: audit.ID(r.Chain, r.Seq), Chain: r.Chain, Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash,
		ASPID: r.ASPID, Kind: r.Kind, MemberID: r.MemberID, LoginIDHash: r.LoginIDHash,
		CorrelationID: r.CorrelationID, Code: r.Code, At: r.At, WorkerID: r.WorkerID, Note: r.Note,
		Once: onceKey(r.Chain, r.CorrelationID),
	}
}

func (d auditDoc) record() audit.Record {
	return audit.Record{
		Chain: d.Chain, Seq: d.Seq, PrevHash: d.PrevHash, Hash: d.Hash,
		ASPID: d.ASPID, Kind: d.Kind, MemberID: d.MemberID, LoginIDHash: d.LoginIDHash,
		CorrelationID: d.CorrelationID, Code: d.Code, At: d.At.UTC(), WorkerID: d.WorkerID, Note: d.Note,
	}
}

// Append adds r at the head of its chain and returns it as stored: as
// audit.Link makes it (and refuses it), At now when zero. When the chain
// already holds a record of r's correlation id, Append stores nothing and
// returns audit.ErrRecorded. On any other error the record may or may not
// have been stored; appending it again is safe.
func (l *AuditLog) Append(ctx context.Context, r audit.Record) (audit.Record, error) {
	return l.AppendAfter(ctx, r, 0, "")
}

// AppendAfter is Append for a caller that knows the head of r's chain: the
// record of seq with hash (seq 0 for none), as the member's last decision
// left it. It tries the seq after it first, without reading, and falls
// back to Append's search when another record took it. A member's
// decisions are serialized by its version claims, so for its chain the
// caller's head is the chain's head unless records were appended another
// way (an older release).
func (l *AuditLog) AppendAfter(ctx context.Context, r audit.Record, seq int64, hash string) (audit.Record, error) {
	if r.At.IsZero() {
		r.At = l.now()
	}
	chain := audit.ChainOf(r)
	known, _ := l.hint(chain)
	if seq > known.seq {
		known = chainHead{seq: seq, hash: hash}
	}
	for range auditMaxAttempts {
		rec, err := audit.Link(r, known.seq, known.hash)
		if err != nil {
			return audit.Record{}, err
		}
		placed, at, found, err := l.place(ctx, rec)
		if err != nil {
			return audit.Record{}, err
		}
		if placed {
			return rec, nil
		}
		l.conflicts.Add(1)
		if found {
			// Someone else appended rec.Seq: find the head from it.
			known = chainHead{seq: rec.Seq, hash: at.hash}
			l.setHint(chain, known)
		}
		// (Taken but not visible yet, on a replica set whose majority has
		// not caught up with the record that refused ours: search from the
		// last record known, and the next insert tries again.)
		if known, err = l.findHead(ctx, chain, known); err != nil {
			return audit.Record{}, err
		}
	}
	return audit.Record{}, fmt.Errorf("%w %s", ErrAuditContention, chain)
}

// Insert stores r, a record made by audit.Link, and returns it as stored.
// When the chain already holds a record of r's correlation id it stores
// nothing and returns audit.ErrRecorded (r was stored before: Insert is
// idempotent). When r's seq is taken by another command's record (the
// chain head its maker knew was behind: records appended around its
// decisions, by an older release or for a damaged member), r is appended
// at the chain's head instead (AppendAfter), and returned with its new
// place.
func (l *AuditLog) Insert(ctx context.Context, r audit.Record) (audit.Record, error) {
	if err := audit.CheckLinked(r); err != nil {
		return audit.Record{}, err
	}
	placed, _, _, err := l.place(ctx, r)
	if err != nil {
		return audit.Record{}, err
	}
	if placed {
		return r, nil
	}
	l.conflicts.Add(1)
	return l.AppendAfter(ctx, r, r.Seq-1, r.PrevHash)
}

// place inserts r at its seq. placed: stored. Else, with a nil error, the
// seq is another command's record (found, at), or taken and not visible
// yet (!found). audit.ErrRecorded when the chain already holds r's
// correlation id: told by the index the server names (MongoDB and FerretDB
// v2 name it), else by the record at the seq. That inference from absence
// (DuplicateUnnamed) is sound only on one server that sees every write it
// refused, and is never made on a server that names the index.
func (l *AuditLog) place(ctx context.Context, r audit.Record) (placed bool, at storedAudit, found bool, err error) {
	_, err = l.coll.InsertOne(ctx, toAuditDoc(r))
	dup := ClassifyDuplicate(err, auditOnceIndex)
	if dup == DuplicateOnOther && ClassifyDuplicate(err, legacyOnceIndex) == DuplicateOn {
		dup = DuplicateOn // the old index, on a trail not migrated yet (or again, by an older release)
	}
	switch dup {
	case NotDuplicate:
		if err != nil {
			return false, storedAudit{}, false, fmt.Errorf("insert audit record %s: %w", audit.ID(r.Chain, r.Seq), err)
		}
		l.setHint(r.Chain, chainHead{seq: r.Seq, hash: r.Hash})
		return true, storedAudit{}, false, nil
	case DuplicateOn:
		return false, storedAudit{}, false, fmt.Errorf("%w: %s in %s", audit.ErrRecorded, r.CorrelationID, r.Chain)
	}
	// r.Seq is taken (DuplicateOnOther: the _id), or the server did not
	// say which index (DuplicateUnnamed): the record at r.Seq tells.
	at, found, err = l.recordAt(ctx, r.Chain, r.Seq)
	if err != nil {
		return false, storedAudit{}, false, err
	}
	if found && at.cid == r.CorrelationID || !found && dup == DuplicateUnnamed {
		return false, storedAudit{}, false, fmt.Errorf("%w: %s in %s", audit.ErrRecorded, r.CorrelationID, r.Chain)
	}
	return false, at, found, nil
}

// findHead returns the newest record of chain at or after from (a record
// known to exist, or seq 0 for none): it probes from.seq+1, +2, +3, +4, then
// in doubling steps until a seq is missing, and binary-searches between the
// last present and the first missing seq. Seqs are claimed in order, so
// "present" is monotone in seq.
func (l *AuditLog) findHead(ctx context.Context, chain string, from chainHead) (chainHead, error) {
	lo := from
	hi := int64(-1) // first seq known to be missing
	step := int64(1)
	for probes := 0; hi < 0; probes++ {
		s := lo.seq + step
		at, found, err := l.recordAt(ctx, chain, s)
		if err != nil {
			return chainHead{}, err
		}
		if !found {
			hi = s
			break
		}
		lo = chainHead{seq: s, hash: at.hash}
		if probes >= 3 {
			step *= 2
		}
	}
	for hi-lo.seq > 1 {
		mid := lo.seq + (hi-lo.seq)/2
		at, found, err := l.recordAt(ctx, chain, mid)
		if err != nil {
			return chainHead{}, err
		}
		if found {
			lo = chainHead{seq: mid, hash: at.hash}
		} else {
			hi = mid
		}
	}
	l.setHint(chain, lo)
	return lo, nil
}

// storedAudit is what Append and findHead read of a record.
type storedAudit struct{ hash, cid string }

// recordAt reads the hash and correlation id of record seq of chain.
func (l *AuditLog) recordAt(ctx context.Context, chain string, seq int64) (storedAudit, bool, error) {
	var d struct {
		Hash string `bson:"hash"`
		CID  string `bson:"correlationId"`
	}
	err := l.coll.FindOne(ctx, bson.D{{Key: "_id", Value: audit.ID(chain, seq)}},
		options.FindOne().SetProjection(bson.D{{Key: "hash", Value: 1}, {Key: "correlationId", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return storedAudit{}, false, nil
	}
	if err != nil {
		return storedAudit{}, false, fmt.Errorf("read audit record %s: %w", audit.ID(chain, seq), err)
	}
	return storedAudit{hash: d.Hash, cid: d.CID}, true, nil
}

func (l *AuditLog) hint(chain string) (chainHead, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.hints[chain]
	return h, ok
}

func (l *AuditLog) setHint(chain string, h chainHead) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.hints[chain]; ok {
		if h.seq > cur.seq {
			l.hints[chain] = h
		}
		return
	}
	if len(l.hints) >= maxAuditHints {
		for k := range l.hints { // evict an arbitrary entry: a missing hint costs a few reads
			delete(l.hints, k)
			break
		}
	}
	l.hints[chain] = h
}

// Find returns the records of correlationID, or of memberID, or with both
// given those of both, ordered by chain then seq. At least one is required.
func (l *AuditLog) Find(ctx context.Context, correlationID, memberID string) ([]audit.Record, error) {
	filter := bson.D{}
	if correlationID != "" {
		filter = append(filter, bson.E{Key: "correlationId", Value: correlationID})
	}
	if memberID != "" {
		filter = append(filter, bson.E{Key: "memberId", Value: memberID})
	}
	if len(filter) == 0 {
		return nil, errors.New("audit: find needs a correlation id or a member id")
	}
	cur, err := l.coll.Find(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("find audit records: %w", err)
	}
	var docs []auditDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read audit records: %w", err)
	}
	out := make([]audit.Record, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.record())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Chain != out[j].Chain {
			return out[i].Chain < out[j].Chain
		}
		return out[i].Seq < out[j].Seq
	})
	return out, nil
}
