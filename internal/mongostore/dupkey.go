package mongostore

import (
	"errors"
	"regexp"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Duplicate is what a write error says about a unique index, as told by
// ClassifyDuplicate.
type Duplicate int

const (
	// NotDuplicate: the error is not a duplicate-key error (or is nil).
	NotDuplicate Duplicate = iota
	// DuplicateOn: a duplicate key in the index asked about.
	DuplicateOn
	// DuplicateOnOther: a duplicate key in another unique index.
	DuplicateOnOther
	// DuplicateUnnamed: a duplicate key, and the server does not say in
	// which index. FerretDB v2 (DocumentDB) names the index of an insert or
	// update it refuses, but answers a findAndModify that would break a
	// unique index with an InternalError about an exclusion constraint of an
	// internal name (TestFerretDBDuplicates). A collection with one unique
	// index (_id) needs no more; the callers with two decide it as their doc
	// says.
	DuplicateUnnamed
)

// Index names a unique index: its name and its key fields in order.
type Index struct {
	Name   string
	Fields []string
}

// IDIndex is every collection's _id index.
var IDIndex = Index{Name: "_id_", Fields: []string{"_id"}}

// indexInMessage finds the index name in a duplicate-key message:
// "... collection: db.c index: <name> dup key: ..." (MongoDB since 3.4),
// "... index: db.c.$<name> dup key: ..." (older servers) or "Duplicate key
// violation on the requested collection: Index '<name>'" (FerretDB v2).
var indexInMessage = regexp.MustCompile(`index: (?:\S*\.\$)?(\S+) dup key|Index '([^']+)'`)

// exclusionConflict is how DocumentDB refuses a findAndModify that would
// break a unique index: an InternalError (code 1), not 11000, so the
// driver's IsDuplicateKeyError misses it. The constraint it names
// ("documents_rum_index_<n>") is internal, not the index's name.
const exclusionConflict = "conflicting key value violates exclusion constraint"

// IsDuplicateKey reports whether err is a duplicate-key error in any unique
// index: what mongo.IsDuplicateKeyError recognises, and DocumentDB's
// exclusion-constraint answer to a findAndModify.
func IsDuplicateKey(err error) bool {
	if err == nil {
		return false
	}
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code == 1 && strings.Contains(ce.Message, exclusionConflict)
}

// ClassifyDuplicate tells whether err is a duplicate-key error in ix, in
// another unique index, or in one the server does not name, from the error
// alone (no read): from the write error's keyPattern, which MongoDB sends
// with every duplicate-key write error, else from the index name in its
// message. It looks at the first duplicate-key write error of a
// mongo.WriteException or mongo.BulkWriteException (one document written),
// and at a mongo.CommandError's message (IsDuplicateKey).
func ClassifyDuplicate(err error, ix Index) Duplicate {
	if !IsDuplicateKey(err) {
		return NotDuplicate
	}
	var raw bson.Raw
	msg := ""
	var we mongo.WriteException
	var bwe mongo.BulkWriteException
	var ce mongo.CommandError
	switch {
	case errors.As(err, &we):
		for _, e := range we.WriteErrors {
			if isDupCode(e.Code) {
				raw, msg = e.Raw, e.Message
				break
			}
		}
	case errors.As(err, &bwe):
		for _, e := range bwe.WriteErrors {
			if isDupCode(e.Code) {
				raw, msg = e.Raw, e.Message
				break
			}
		}
	case errors.As(err, &ce):
		raw, msg = ce.Raw, ce.Message
	}
	if kp, ok := raw.Lookup("keyPattern").DocumentOK(); ok {
		elems, err := kp.Elements()
		if err == nil && len(elems) > 0 {
			if len(elems) != len(ix.Fields) {
				return DuplicateOnOther
			}
			for i, e := range elems {
				if e.Key() != ix.Fields[i] {
					return DuplicateOnOther
				}
			}
			return DuplicateOn
		}
	}
	if m := indexInMessage.FindStringSubmatch(msg); m != nil {
		if m[1]+m[2] == ix.Name {
			return DuplicateOn
		}
		return DuplicateOnOther
	}
	return DuplicateUnnamed
}

func isDupCode(code int) bool { return code == 11000 || code == 11001 || code == 12582 }

// IsDuplicate reports whether a write error of an InsertMany is a duplicate
// key (in any unique index).
func IsDuplicate(we mongo.WriteError) bool { return isDupCode(we.Code) }
