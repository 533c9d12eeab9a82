// Package audit is the model of the service's audit trail: the records, the
// hash chains they form and the rules of both, as pure functions (the
// MongoDB storage is mongostore.AuditLog). A record holds ids and codes
// only, never a PIN, hash, CI or loginId: without a member it carries the
// caller's keyed hash of the loginId.
//
// Records form chains: one per member ("m:<member id>"), and 16 per ASP for
// records without a member ("a:<asp id>:<n>", n from the correlation id).
// A chain is appended to at its head, so one global chain would make every
// writer contend for one head; a member's decisions are already serialized
// by its version, and the shards spread a busy ASP's memberless records
// while a redelivered command maps to the same chain again. A chain holds
// one record per correlation id (ErrRecorded).
//
// Each record has its place (chain, seq 1, 2, ...), the hash of the record
// before it and its own hash over all its fields (Link), so a Verifier
// reading a chain in seq order sees a record edited, deleted or reordered.
// The hash is not keyed: a rewritten and rehashed tail, or deleted newest
// records or chains, show only against chain heads anchored elsewhere
// (docs/audit.md).
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
	"unicode/utf8"
)

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

// ErrRecorded is a store's answer to a record whose chain already holds a
// record of its correlation id: the command is audited, nothing was
// stored. The rule is the model's, so the error is too: every store of the
// trail (mongostore.AuditLog, a test's in-memory one) returns this one.
var ErrRecorded = errors.New("audit: command already recorded in its chain")

// Record is one audit record.
type Record struct {
	Chain         string    // set by Link
	Seq           int64     // set by Link: 1, 2, ...
	PrevHash      string    // hex; "" for seq 1; set by Link
	Hash          string    // hex; set by Link
	ASPID         string    // who
	Kind          string    // "reset", "change", "unknown" or "operator"
	MemberID      string    // empty when no member matched
	LoginIDHash   string    // keyed hash from the caller, when MemberID is empty
	CorrelationID string    //
	Code          string    // outcome code, e.g. "000_000"
	At            time.Time // UTC, truncated to milliseconds (BSON dates are ms)
	WorkerID      string    //
	Note          string    // why, for KindOperator only; hashed only when set, so older records keep their hashes
}

// ID is the key of record seq of chain, "<chain>:<seq>": a store keeps a
// record under it, so that one place holds one record.
func ID(chain string, seq int64) string { return chain + ":" + strconv.FormatInt(seq, 10) }

// ChainOf names the chain a record belongs to: "m:<member id>" when it has a
// member, else "a:<asp id>:<n>" with n = FNV-32a(correlation id) mod Shards.
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

// Hash is the hex SHA-256 of the canonical encoding of every field of r
// but Hash: the domain string, then each field as its name and its value,
// each preceded by its length as a uvarint, in a fixed order. Seq is written
// in decimal and At as Unix milliseconds in decimal, so the encoding depends
// on nothing but the values (not on BSON, time zones or the driver). Every
// stored record's hash depends on this encoding: it never changes.
func Hash(r Record) string {
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

// Link returns r as the record that follows record prevSeq (hash
// prevHash; 0 and "" for none) of its chain: Chain, Seq, PrevHash and Hash
// set (what r had in them is ignored), At in UTC truncated to
// milliseconds. It refuses a record that cannot be what a caller means to
// audit: Kind must be reset, change, unknown or operator, Code must be
// set, LoginIDHash, when set, must look like a hash, and only an
// operator's record has a Note. Pure: a decision makes its record with it,
// so the record is fixed by the decision and storing it can be done again
// by anyone, idempotently.
func Link(r Record, prevSeq int64, prevHash string) (Record, error) {
	if err := check(r); err != nil {
		return Record{}, err
	}
	r.At = r.At.UTC().Truncate(time.Millisecond)
	r.Chain = ChainOf(r)
	r.Seq, r.PrevHash = prevSeq+1, prevHash
	r.Hash = Hash(r)
	return r, nil
}

// CheckLinked returns an error unless r is a record as Link makes it: one
// Link accepts, in the chain its fields name, at a seq of at least 1, with
// its own hash.
func CheckLinked(r Record) error {
	if err := check(r); err != nil {
		return err
	}
	if r.Seq < 1 || r.Chain != ChainOf(r) || r.Hash != Hash(r) {
		return fmt.Errorf("audit: record %s of %s is not a linked record (Link)", ID(r.Chain, r.Seq), r.CorrelationID)
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
