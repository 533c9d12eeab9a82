package mongostore

import (
	"errors"
	"regexp"

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
	// which index. FerretDB v1 answers every duplicate key, _id or any other
	// unique index, with the same "E11000 duplicate key error collection:
	// <db>.<collection>", without keyPattern or an index name
	// (TestFerretDBNamesNoIndex). A collection with one unique index (_id)
	// needs no more; the callers with two decide it as their doc says.
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
// "... collection: db.c index: <name> dup key: ..." (MongoDB since 3.4) or
// "... index: db.c.$<name> dup key: ..." (older servers).
var indexInMessage = regexp.MustCompile(`index: (?:\S*\.\$)?(\S+) dup key`)

// ClassifyDuplicate tells whether err is a duplicate-key error in ix, in
// another unique index, or in one the server does not name, from the error
// alone (no read): from the write error's keyPattern, which MongoDB sends
// with every duplicate-key write error, else from the index name in its
// message. It looks at the first duplicate-key write error of a
// mongo.WriteException or mongo.BulkWriteException (one document written),
// and at a mongo.CommandError's message.
func ClassifyDuplicate(err error, ix Index) Duplicate {
	if err == nil || !mongo.IsDuplicateKeyError(err) {
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
		if m[1] == ix.Name {
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
