// Package audit keeps the audit trail of the PIN service: one record per
// decided command (who: the ASP; what: reset, change, or unknown for a
// command that could not be decoded; which member; when; the correlation id;
// the outcome code; the worker), appended to the collection "audit" and
// never updated. A record holds ids and codes only, never a PIN, hash, CI or
// loginId: when no member matched, the caller passes a keyed hash of the
// loginId it was given, and the package never sees the loginId itself.
// An operator's action on a queued message (a redrive or purge of a
// dead-lettered or parked command, KindOperator) is a record too, with the
// operator's one-line note of why.
//
// # Tamper evidence
//
// Records form hash chains. Each record carries the SHA-256 hash of the
// previous record of its chain (PrevHash, "" for the first) and its own hash
// over a canonical encoding of all its fields, seq and prevHash included (see
// recordHash). Verify walks every chain in seq order, recomputes every hash
// and checks every link, so it reports a record edited in place, a record
// deleted from the middle of a chain, and records swapped or reordered.
//
// What a chain alone cannot show: the hash is not keyed, so someone with
// write access who rewrites a record and recomputes every later record of
// its chain, who deletes the newest records of a chain (its tail), or who
// deletes a whole chain, leaves a trail that verifies. Anchoring the chain
// heads outside the database (for example exporting Report and the heads
// periodically to write-once storage) closes that gap; the records are laid
// out so that it can be added without changing them.
//
// # Chains
//
// One chain per member ("m:<member id>"), and for records without a member
// one chain per ASP shard ("a:<asp id>:<n>", n = FNV-32a(correlation id) mod
// 16). A single global chain would make every append of every worker
// contend for the same head: on a conflict the losers re-read and retry, so
// throughput would be bounded by one round trip per record for the whole
// service and the wasted work would grow with the number of workers. A
// member rarely has two commands decided at the same moment (and their
// member changes are serialized by the member's version claim anyway), so a
// per-member chain almost never sees two appends at once; memberless records (unknown loginIds, undecodable commands) are
// spread over 16 chains per ASP by correlation id, so an ASP sending many of
// them does not serialize on one head either, and a redelivered command maps
// to the same chain again (where the unique index refuses it). Chains are cheap:
// nothing is stored per chain beyond its records.
//
// # Appending without compare-and-set
//
// The claim is an insert under a unique _id, atomic on FerretDB and MongoDB
// alike and one write with no read before it: a record's _id is
// "<chain>:<seq>". Append inserts the next seq of the chain with prevHash =
// the hash of the record before; on a duplicate key (another writer took
// that seq) it finds the head again and retries, at most MaxAttempts times.
//
// Finding the head costs reads, so Append avoids them: a per-process hint
// (bounded, guarded by a mutex) remembers the last seq of each chain it has
// seen and that record's hash, and Append first simply tries to insert the
// next seq (seq 1 for a chain it has never seen, the common case of a
// member's first command). Only when that insert loses does it read: it
// probes _id upward from the last record it knows (linearly, then in
// doubling steps) and binary-searches between the last present and the
// first missing seq, O(log n) point lookups for a chain of n records; seqs
// are claimed in order, so "present" is monotone in seq. (Trying the seq
// after the record that won would lose again whenever the hint is stale, the
// usual case for a member whose commands reach different workers.)
//
// Hence inserts first and reads only on a conflict, and no sorted query on
// the append path: the common append is one round trip, whatever the
// server.
//
// # Once per command
//
// Append is idempotent per (chain, correlation id): a unique index on the
// pair (EnsureIndexes) refuses a second record of the same command in its
// chain, and Append then stores nothing and returns ErrRecorded. So a worker
// that died after appending, or a redelivered command, appends again without
// first searching the chain, and the outcome record needs no "audited" mark
// (one more write per command).
//
// Which index refused a record is read from the server's error
// (mongostore.ClassifyDuplicate): MongoDB names it (keyPattern, and the index
// name in the message), so a refusal by the correlation id's index is
// ErrRecorded at once and one by _id means the seq was taken, without a
// read that a lagging secondary or a not yet majority-committed record could
// mislead. FerretDB names it in the message (TestFerretDBDuplicates). A
// server that names no index: the record at the seq tried is read, which
// Append needs anyway when the seq was taken: another correlation id there
// means the seq was taken, ours or none means the correlation id's index
// refused it. That inference from absence is sound only on one server that
// sees every write it refused, and is never made on a server that names
// the index.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/mongostore"
)

// Collection is the name of the audit collection.
const Collection = "audit"

// Kinds of records.
const (
	KindReset   = "reset"
	KindChange  = "change"
	KindUnknown = "unknown" // a command that could not be decoded or opened
	// KindOperator is an operator's action on a queued message (pwctl dlq
	// or parked redrive|purge): Code names the action, WorkerID the
	// operator ("pwctl:<name>"), CorrelationID "<correlation id>@<topic>/<partition>/<offset>"
	// and Note why.
	KindOperator = "operator"
)

// MaxNote bounds Record.Note, in bytes.
const MaxNote = 256

// Shards is the number of chains per ASP for records without a member.
const Shards = 16

// MaxAttempts bounds how many times Append retries after another writer took
// the seq it tried.
const MaxAttempts = 100

// maxHints bounds the per-process map of chain heads; it is only a hint.
const maxHints = 10000

// onceIndex is the unique index on (chain, correlationId) that makes Append
// idempotent (EnsureIndexes).
var onceIndex = mongostore.Index{Name: "chain_correlation_unique", Fields: []string{"chain", "correlationId"}}

// ErrRecorded is returned by Append when the record's chain already holds a
// record of its correlation id: the command is audited, nothing was stored.
var ErrRecorded = errors.New("audit: command already recorded in its chain")

// ErrContention is returned by Append when other writers took the next seq
// of the chain MaxAttempts times in a row.
var ErrContention = errors.New("audit: too many concurrent appends to one chain")

// Record is one audit record.
type Record struct {
	Chain         string    // set by Append
	Seq           int64     // set by Append: 1, 2, ...
	PrevHash      string    // hex; "" for seq 1; set by Append
	Hash          string    // hex; set by Append
	ASPID         string    // who
	Kind          string    // "reset", "change" or "unknown"
	MemberID      string    // empty when no member matched
	LoginIDHash   string    // keyed hash from the caller, when MemberID is empty
	CorrelationID string    //
	Code          string    // outcome code, e.g. "000_000"
	At            time.Time // UTC, truncated to milliseconds (BSON dates are ms)
	WorkerID      string    //
	Note          string    // why, for KindOperator only; hashed only when set, so older records keep their hashes
}

// recordDoc is the stored form of a Record. Every field is always present,
// so a stored record has exactly these keys.
type recordDoc struct {
	ID            string    `bson:"_id"` // "<chain>:<seq>"
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
}

// docKeys are the keys of a stored record, in the order recordDoc writes them.
var docKeys = []string{"_id", "chain", "seq", "prevHash", "hash", "aspId", "kind", "memberId", "loginIdHash", "correlationId", "code", "at", "workerId"}

// optionalKeys may follow docKeys in a stored record.
var optionalKeys = []string{"note"}

func toDoc(r Record) recordDoc {
	return recordDoc{
		ID: recordID(r.Chain, r.Seq), Chain: r.Chain, Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash,
		ASPID: r.ASPID, Kind: r.Kind, MemberID: r.MemberID, LoginIDHash: r.LoginIDHash,
		CorrelationID: r.CorrelationID, Code: r.Code, At: r.At, WorkerID: r.WorkerID, Note: r.Note,
	}
}

func (d recordDoc) record() Record {
	return Record{
		Chain: d.Chain, Seq: d.Seq, PrevHash: d.PrevHash, Hash: d.Hash,
		ASPID: d.ASPID, Kind: d.Kind, MemberID: d.MemberID, LoginIDHash: d.LoginIDHash,
		CorrelationID: d.CorrelationID, Code: d.Code, At: d.At.UTC(), WorkerID: d.WorkerID, Note: d.Note,
	}
}

func recordID(chain string, seq int64) string { return chain + ":" + strconv.FormatInt(seq, 10) }

// ChainOf names the chain a record belongs to: "m:<member id>" when it has a
// member, else "a:<asp id>:<n>" with n = FNV-32a(correlation id) mod 16.
func ChainOf(r Record) string {
	if r.MemberID != "" {
		return "m:" + r.MemberID
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(r.CorrelationID))
	return "a:" + r.ASPID + ":" + strconv.FormatUint(uint64(h.Sum32()%Shards), 10)
}

// hashDomain separates this encoding from any other use of SHA-256.
const hashDomain = "kmwallet/pinreset audit record v1"

// recordHash is the hex SHA-256 of the canonical encoding of every field of
// r but Hash: the domain string, then each field as its name and its value,
// each preceded by its length as a uvarint, in a fixed order. Seq is written
// in decimal and At as Unix milliseconds in decimal, so the encoding depends
// on nothing but the values (not on BSON, time zones or the driver).
func recordHash(r Record) string {
	buf := make([]byte, 0, 512)
	put := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	put(hashDomain)
	field := func(name, value string) { put(name); put(value) }
	field("chain", r.Chain)
	field("seq", strconv.FormatInt(r.Seq, 10))
	field("prevHash", r.PrevHash)
	field("aspId", r.ASPID)
	field("kind", r.Kind)
	field("memberId", r.MemberID)
	field("loginIdHash", r.LoginIDHash)
	field("correlationId", r.CorrelationID)
	field("code", r.Code)
	field("at", strconv.FormatInt(r.At.UnixMilli(), 10))
	field("workerId", r.WorkerID)
	if r.Note != "" {
		// Only when set: the records written before notes existed keep
		// their hashes, and removing or adding a note changes the hash.
		field("note", r.Note)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// Log is the audit trail in one database. It is safe for concurrent use;
// any number of Logs (in any number of processes) may append to the same
// collection.
type Log struct {
	coll *mongo.Collection
	now  func() time.Time

	mu    sync.Mutex
	hints map[string]head // chain -> a record known to exist, with its hash

	conflicts atomic.Int64 // inserts that lost to another writer (tests, metrics)
}

type head struct {
	seq  int64
	hash string
}

// New returns the audit trail kept in db's collection "audit".
func New(db *mongo.Database) *Log {
	return &Log{coll: db.Collection(Collection), now: time.Now, hints: make(map[string]head)}
}

// EnsureIndexes creates the unique index on (chain, correlationId) that
// makes Append idempotent, and the plain indexes Find and Verify use:
// correlationId, memberId and (chain, seq). Idempotent; run it before the
// first Append.
func (l *Log) EnsureIndexes(ctx context.Context) error {
	// One createIndexes per index: an error names the index it is about.
	for _, ix := range []struct {
		name   string
		keys   bson.D
		unique bool
	}{
		{onceIndex.Name, bson.D{{Key: onceIndex.Fields[0], Value: 1}, {Key: onceIndex.Fields[1], Value: 1}}, true},
		{"correlation_id", bson.D{{Key: "correlationId", Value: 1}}, false},
		{"member_id", bson.D{{Key: "memberId", Value: 1}}, false},
		{"chain_seq", bson.D{{Key: "chain", Value: 1}, {Key: "seq", Value: 1}}, false},
	} {
		_, err := l.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetName(ix.name).SetUnique(ix.unique)})
		if err != nil {
			return fmt.Errorf("create audit index %s: %w", ix.name, err)
		}
	}
	return nil
}

// check refuses a record that cannot be what a caller means to audit.
func check(r Record) error {
	switch r.Kind {
	case KindReset, KindChange, KindUnknown, KindOperator:
	default:
		return fmt.Errorf("audit: kind %q is not reset, change, unknown or operator", r.Kind)
	}
	if r.Note != "" && (r.Kind != KindOperator || len(r.Note) > MaxNote || !utf8.ValidString(r.Note)) {
		return fmt.Errorf("audit: a note is for operator records only, valid UTF-8 of at most %d bytes", MaxNote)
	}
	if r.Code == "" {
		return errors.New("audit: outcome code is empty")
	}
	if r.LoginIDHash != "" && !looksLikeHash(r.LoginIDHash) {
		// A guard against a raw loginId (an e-mail address or a phone
		// number) reaching the trail by mistake; the value is not echoed.
		return errors.New("audit: LoginIDHash is not a keyed hash (want at least 22 characters of hex or base64, an optional key id prefix)")
	}
	return nil
}

// looksLikeHash: at least 22 characters (128 bits in base64), only hex,
// base64 (standard or URL) and ':' or '.' separators, no '@'.
func looksLikeHash(s string) bool {
	if len(s) < 22 || len(s) > 256 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c == '+', c == '/', c == '=', c == '-', c == '_', c == ':', c == '.':
		default:
			return false
		}
	}
	return true
}

// Append adds r at the head of its chain and returns it as stored, with
// Chain, Seq, PrevHash and Hash set (what r had in them is ignored) and At
// in UTC truncated to milliseconds (now when zero). Kind must be reset,
// change, unknown or operator, Code must be set, and LoginIDHash, when set, must look
// like a hash.
//
// When the chain already holds a record of r's correlation id, Append
// stores nothing and returns ErrRecorded. On any other error the record may
// or may not have been stored; appending it again is safe.
func (l *Log) Append(ctx context.Context, r Record) (Record, error) {
	return l.AppendAfter(ctx, r, 0, "")
}

// AppendAfter is Append for a caller that knows the head of r's chain: the
// record of seq with hash (seq 0 for none), as the member's last decision
// left it. It tries the seq after it first, without reading, and falls
// back to Append's search when another record took it. A member's
// decisions are serialized by its version claims, so for its chain the
// caller's head is the chain's head unless records were appended another
// way (an older release).
func (l *Log) AppendAfter(ctx context.Context, r Record, seq int64, hash string) (Record, error) {
	if err := check(r); err != nil {
		return Record{}, err
	}
	if r.At.IsZero() {
		r.At = l.now()
	}
	r.At = r.At.UTC().Truncate(time.Millisecond)
	r.Chain = ChainOf(r)

	// Try the seq after the last one seen (seq 1 for an unseen chain)
	// without reading; read only after losing an insert.
	known, _ := l.hint(r.Chain)
	if seq > known.seq {
		known = head{seq: seq, hash: hash}
	}
	for range MaxAttempts {
		r.Seq, r.PrevHash = known.seq+1, known.hash
		r.Hash = recordHash(r)
		placed, at, found, err := l.place(ctx, r)
		if err != nil {
			return Record{}, err
		}
		if placed {
			return r, nil
		}
		l.conflicts.Add(1)
		if found {
			// Someone else appended r.Seq: find the head from it.
			l.setHint(r.Chain, head{seq: r.Seq, hash: at.hash})
			known = head{seq: r.Seq, hash: at.hash}
		}
		// (Taken but not visible yet, on a replica set whose majority has
		// not caught up with the record that refused ours: search from the
		// last record known, and the next insert tries again.)
		if known, err = l.findHead(ctx, r.Chain, known); err != nil {
			return Record{}, err
		}
	}
	return Record{}, fmt.Errorf("%w %s", ErrContention, r.Chain)
}

// place inserts r at its seq. placed: stored. Else, with a nil error, the
// seq is another command's record (found, at), or taken and not visible
// yet (!found). ErrRecorded when the chain already holds r's correlation
// id, the refusal told by the index the server names, or else by the
// record at the seq. That inference from absence (DuplicateUnnamed) is
// sound only on one server that sees every write it refused, and is never
// made on a server that names the index.
func (l *Log) place(ctx context.Context, r Record) (placed bool, at stored, found bool, err error) {
	_, err = l.coll.InsertOne(ctx, toDoc(r))
	dup := mongostore.ClassifyDuplicate(err, onceIndex)
	switch dup {
	case mongostore.NotDuplicate:
		if err != nil {
			return false, stored{}, false, fmt.Errorf("insert audit record %s: %w", recordID(r.Chain, r.Seq), err)
		}
		l.setHint(r.Chain, head{seq: r.Seq, hash: r.Hash})
		return true, stored{}, false, nil
	case mongostore.DuplicateOn:
		return false, stored{}, false, fmt.Errorf("%w: %s in %s", ErrRecorded, r.CorrelationID, r.Chain)
	}
	// r.Seq is taken (DuplicateOnOther: the _id), or the server did not
	// say which index (DuplicateUnnamed): the record at r.Seq tells.
	at, found, err = l.recordAt(ctx, r.Chain, r.Seq)
	if err != nil {
		return false, stored{}, false, err
	}
	if found && at.cid == r.CorrelationID || !found && dup == mongostore.DuplicateUnnamed {
		return false, stored{}, false, fmt.Errorf("%w: %s in %s", ErrRecorded, r.CorrelationID, r.Chain)
	}
	return false, at, found, nil
}

// Link returns r as the record that follows record prevSeq (hash
// prevHash; 0 and "" for none) of its chain: Chain, Seq, PrevHash and Hash
// set, At in UTC truncated to milliseconds. Pure: a decision about a
// member makes its record with it, so the record is fixed by the decision
// and storing it (Insert) can be done again by anyone, idempotently. Kind
// and Code are checked as by Append.
func Link(r Record, prevSeq int64, prevHash string) (Record, error) {
	if err := check(r); err != nil {
		return Record{}, err
	}
	r.At = r.At.UTC().Truncate(time.Millisecond)
	r.Chain = ChainOf(r)
	r.Seq, r.PrevHash = prevSeq+1, prevHash
	r.Hash = recordHash(r)
	return r, nil
}

// Insert stores r, a record made by Link, and returns it as stored. When
// the chain already holds a record of r's correlation id it stores nothing
// and returns ErrRecorded (r was stored before: Insert is idempotent).
// When r's seq is taken by another command's record (the chain head its
// maker knew was behind: records appended around its decisions, by an
// older release or for a damaged member), r is appended at the chain's
// head instead (Append), and returned with its new place.
func (l *Log) Insert(ctx context.Context, r Record) (Record, error) {
	if err := check(r); err != nil {
		return Record{}, err
	}
	if r.Chain != ChainOf(r) || r.Hash != recordHash(r) {
		return Record{}, fmt.Errorf("audit: record %s of %s is not a linked record (Link)", recordID(r.Chain, r.Seq), r.CorrelationID)
	}
	placed, _, _, err := l.place(ctx, r)
	if err != nil {
		return Record{}, err
	}
	if placed {
		return r, nil
	}
	l.conflicts.Add(1)
	return l.AppendAfter(ctx, r, r.Seq-1, r.PrevHash)
}

// findHead returns the newest record of chain at or after from (a record
// known to exist, or seq 0 for none): it probes from.seq+1, +2, +3, +4, then
// in growing steps until a seq is missing, and binary-searches between the
// last present and the first missing seq. Chains have no gaps (seqs are
// claimed in order), so "present" is monotone in seq.
func (l *Log) findHead(ctx context.Context, chain string, from head) (head, error) {
	lo := from
	hi := int64(-1) // first seq known to be missing
	step := int64(1)
	for probes := 0; hi < 0; probes++ {
		s := lo.seq + step
		at, found, err := l.recordAt(ctx, chain, s)
		if err != nil {
			return head{}, err
		}
		if !found {
			hi = s
			break
		}
		lo = head{seq: s, hash: at.hash}
		if probes >= 3 {
			step *= 2
		}
	}
	for hi-lo.seq > 1 {
		mid := lo.seq + (hi-lo.seq)/2
		at, found, err := l.recordAt(ctx, chain, mid)
		if err != nil {
			return head{}, err
		}
		if found {
			lo = head{seq: mid, hash: at.hash}
		} else {
			hi = mid
		}
	}
	l.setHint(chain, lo)
	return lo, nil
}

// stored is what Append and findHead read of a record.
type stored struct{ hash, cid string }

// recordAt reads the hash and correlation id of record seq of chain.
func (l *Log) recordAt(ctx context.Context, chain string, seq int64) (stored, bool, error) {
	var d struct {
		Hash string `bson:"hash"`
		CID  string `bson:"correlationId"`
	}
	err := l.coll.FindOne(ctx, bson.D{{Key: "_id", Value: recordID(chain, seq)}},
		options.FindOne().SetProjection(bson.D{{Key: "hash", Value: 1}, {Key: "correlationId", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return stored{}, false, nil
	}
	if err != nil {
		return stored{}, false, fmt.Errorf("read audit record %s: %w", recordID(chain, seq), err)
	}
	return stored{hash: d.Hash, cid: d.CID}, true, nil
}

func (l *Log) hint(chain string) (head, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.hints[chain]
	return h, ok
}

func (l *Log) setHint(chain string, h head) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.hints[chain]; ok {
		if h.seq > cur.seq {
			l.hints[chain] = h
		}
		return
	}
	if len(l.hints) >= maxHints {
		for k := range l.hints { // evict an arbitrary entry: a missing hint costs a few lookups
			delete(l.hints, k)
			break
		}
	}
	l.hints[chain] = h
}

// Find returns the records of correlationID, or of memberID, or with both
// given those of both, ordered by chain then seq. At least one is required.
func (l *Log) Find(ctx context.Context, correlationID, memberID string) ([]Record, error) {
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
	var docs []recordDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read audit records: %w", err)
	}
	out := make([]Record, 0, len(docs))
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

// Report is what Verify found.
type Report struct {
	Chains  int     // chains walked
	Records int     // records read
	Broken  []Break // the first broken link of each broken chain, by chain
}

// OK says whether nothing is broken.
func (r Report) OK() bool { return len(r.Broken) == 0 }

// Break is the first place a chain does not verify.
type Break struct {
	Chain  string
	Seq    int64 // the record that does not verify, or the first missing seq
	Reason string
}

func (b Break) String() string { return fmt.Sprintf("%s seq %d: %s", b.Chain, b.Seq, b.Reason) }

// Verify walks every chain in seq order, recomputes every record's hash and
// checks that it is stored under "<chain>:<seq>", that its chain is the one
// its fields name, that seqs run 1, 2, ... without gaps and that each
// prevHash is the hash of the record before. It reports the first broken
// link of each chain and goes on with the next chain; visit, if not nil, is
// called with every record read (a record that cannot be decoded is reported
// and not visited). The error is for failing to read, not for a broken chain.
//
// It reads the collection sorted by (chain, seq), which the chain_seq index
// serves.
func (l *Log) Verify(ctx context.Context, visit func(Record)) (Report, error) {
	cur, err := l.coll.Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "chain", Value: 1}, {Key: "seq", Value: 1}, {Key: "_id", Value: 1}}).SetAllowDiskUse(true))
	if err != nil {
		return Report{}, fmt.Errorf("read audit records: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))

	var (
		rep      Report
		chain    string
		started  bool
		broken   bool
		expect   int64  // next seq of the chain
		prevHash string // hash of the record before
	)
	fail := func(seq int64, format string, args ...any) {
		rep.Broken = append(rep.Broken, Break{Chain: chain, Seq: seq, Reason: fmt.Sprintf(format, args...)})
		broken = true
	}
	for cur.Next(ctx) {
		raw := cur.Current
		d, decodeErr := decode(raw)
		if !started || d.Chain != chain {
			started, chain, broken, expect, prevHash = true, d.Chain, false, 1, ""
			rep.Chains++
		}
		rep.Records++
		if decodeErr != nil {
			if !broken {
				fail(d.Seq, "record %s cannot be read: %v", idOf(raw), decodeErr)
			}
			continue
		}
		r := d.record()
		if visit != nil {
			visit(r)
		}
		if broken {
			continue
		}
		switch {
		case d.ID != recordID(r.Chain, r.Seq):
			fail(r.Seq, "record stored as %q holds chain %q seq %d (moved or swapped)", d.ID, r.Chain, r.Seq)
		case r.Seq < expect:
			fail(r.Seq, "seq %d appears twice", r.Seq)
		case r.Seq > expect && expect == r.Seq-1:
			fail(expect, "record %d is missing (next is %d)", expect, r.Seq)
		case r.Seq > expect:
			fail(expect, "records %d to %d are missing (next is %d)", expect, r.Seq-1, r.Seq)
		case ChainOf(r) != r.Chain:
			fail(r.Seq, "record's member, ASP or correlation id belong to chain %q (altered)", ChainOf(r))
		case recordHash(r) != r.Hash:
			fail(r.Seq, "hash does not match the record's fields (altered)")
		case r.PrevHash != prevHash:
			if r.Seq == 1 {
				fail(r.Seq, "first record has a prevHash (altered)")
			} else {
				fail(r.Seq, "prevHash is not the hash of record %d (a record was altered, replaced or reordered)", r.Seq-1)
			}
		}
		expect, prevHash = r.Seq+1, r.Hash
	}
	if err := cur.Err(); err != nil {
		return rep, fmt.Errorf("read audit records: %w", err)
	}
	return rep, nil
}

// decode reads a stored record strictly: exactly the keys of recordDoc, of
// the right types. On failure it still returns the chain and seq it could
// read, to report the break in the right place.
func decode(raw bson.Raw) (recordDoc, error) {
	var d recordDoc
	if v, err := raw.LookupErr("chain"); err == nil {
		d.Chain, _ = v.StringValueOK()
	}
	if v, err := raw.LookupErr("seq"); err == nil {
		d.Seq, _ = v.AsInt64OK()
	}
	elems, err := raw.Elements()
	if err != nil {
		return d, err
	}
	seen := make(map[string]bool, len(elems))
	for _, e := range elems {
		k := e.Key()
		if !isDocKey(k) && !slices.Contains(optionalKeys, k) {
			return d, fmt.Errorf("unexpected field %q", k)
		}
		seen[k] = true
	}
	for _, k := range docKeys {
		if !seen[k] {
			return d, fmt.Errorf("field %q is missing", k)
		}
	}
	var full recordDoc
	if err := bson.Unmarshal(raw, &full); err != nil {
		return d, err
	}
	return full, nil
}

func isDocKey(k string) bool {
	for _, x := range docKeys {
		if x == k {
			return true
		}
	}
	return false
}

func idOf(raw bson.Raw) string {
	v, err := raw.LookupErr("_id")
	if err != nil {
		return "(no _id)"
	}
	if s, ok := v.StringValueOK(); ok {
		return strconv.Quote(s)
	}
	return strings.TrimSpace(v.String())
}
