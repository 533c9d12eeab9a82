package mongostore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/audit"
)

// auditDocKeys are the keys of a stored record, in the order auditDoc
// writes them.
var auditDocKeys = []string{"_id", "chain", "seq", "prevHash", "hash", "aspId", "kind", "memberId", "loginIdHash", "correlationId", "code", "at", "workerId"}

// auditOptionalKeys may follow auditDocKeys in a stored record: note on
// an operator's record, once on every record but those stored before it.
var auditOptionalKeys = []string{"note", "once"}

// Verify reads the whole trail sorted by (chain, seq), which the chain_seq
// index serves, and checks it with an audit.Verifier: its Report has the
// first break of each broken chain. visit, if not nil, is called with every
// record read (a record that cannot be decoded is reported and not
// visited). The error is for failing to read, not for a broken chain.
func (l *AuditLog) Verify(ctx context.Context, visit func(audit.Record)) (audit.Report, error) {
	cur, err := l.coll.Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "chain", Value: 1}, {Key: "seq", Value: 1}, {Key: "_id", Value: 1}}).SetAllowDiskUse(true))
	if err != nil {
		return audit.Report{}, fmt.Errorf("read audit records: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var v audit.Verifier
	for cur.Next(ctx) {
		d, err := decodeAuditDoc(cur.Current)
		if err != nil {
			v.Unreadable(d.Chain, d.Seq, auditIDOf(cur.Current), err)
			continue
		}
		r := d.record()
		if visit != nil {
			visit(r)
		}
		v.Next(d.ID, r)
	}
	if err := cur.Err(); err != nil {
		return v.Report(), fmt.Errorf("read audit records: %w", err)
	}
	return v.Report(), nil
}

// decodeAuditDoc reads a stored record strictly: exactly the keys of
// auditDoc, of the right types, and once, when present, the record's own.
// On failure it still returns the chain and seq it could read, to report
// the break in the right place.
func decodeAuditDoc(raw bson.Raw) (auditDoc, error) {
	var d auditDoc
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
		if !slices.Contains(auditDocKeys, k) && !slices.Contains(auditOptionalKeys, k) {
			return d, fmt.Errorf("unexpected field %q", k)
		}
		seen[k] = true
	}
	for _, k := range auditDocKeys {
		if !seen[k] {
			return d, fmt.Errorf("field %q is missing", k)
		}
	}
	var full auditDoc
	if err := bson.Unmarshal(raw, &full); err != nil {
		return d, err
	}
	if seen["once"] && full.Once != onceKey(full.Chain, full.CorrelationID) {
		return d, fmt.Errorf("field \"once\" is not the record's chain and correlation id")
	}
	return full, nil
}

// auditIDOf shows a stored record's _id, whatever its type.
func auditIDOf(raw bson.Raw) string {
	v, err := raw.LookupErr("_id")
	if err != nil {
		return "(no _id)"
	}
	if s, ok := v.StringValueOK(); ok {
		return strconv.Quote(s)
	}
	return strings.TrimSpace(v.String())
}
