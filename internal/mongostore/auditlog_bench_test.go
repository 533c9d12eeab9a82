package mongostore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/kmwallet/pinreset/internal/audit"
)

// BenchmarkAuditAppendLongChain is one Append (one insert: the AuditLog
// knows the head) at the head of a chain of 1k and 16k records, against
// the embedded FerretDB with the trail's indexes: what a memberless chain,
// which grows without bound, costs each record. Flat is what holds: the
// unique index that keeps one record per command in its chain must not
// read the chain's records to check a new one.
func BenchmarkAuditAppendLongChain(b *testing.B) {
	newDB := auditDatabases(b)
	for _, n := range []int{1000, 16000} {
		b.Run(fmt.Sprintf("chain=%d", n), func(b *testing.B) {
			ctx := context.Background()
			l := NewAuditLog(newDB())
			if err := l.EnsureIndexes(ctx); err != nil {
				b.Fatal(err)
			}
			head := fillChain(b, ctx, l.coll, "bench", n)
			l.setHint(head.Chain, chainHead{seq: head.Seq, hash: head.Hash})
			i := 0
			for b.Loop() {
				r, err := l.Append(ctx, memberRec("bench", fmt.Sprintf("261201090000-b%06d", i), "000_000"))
				if err != nil {
					b.Fatal(err)
				}
				if r.Seq != head.Seq+int64(i)+1 {
					b.Fatalf("appended at seq %d, want %d: the insert was not the only round trip", r.Seq, head.Seq+int64(i)+1)
				}
				i++
			}
		})
	}
}

// fillChain stores n linked records of member in coll, 1,000 an insert,
// and returns the last.
func fillChain(tb testing.TB, ctx context.Context, coll *mongo.Collection, member string, n int) audit.Record {
	tb.Helper()
	var prev audit.Record
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for start := 0; start < n; start += 1000 {
		var docs []any
		for i := start; i < min(start+1000, n); i++ {
			r := memberRec(member, fmt.Sprintf("261201090000-%07d", i), "000_000")
			r.At = at.Add(time.Duration(i) * time.Millisecond)
			var err error
			if prev, err = audit.Link(r, prev.Seq, prev.Hash); err != nil {
				tb.Fatal(err)
			}
			docs = append(docs, toAuditDoc(prev))
		}
		if _, err := coll.InsertMany(ctx, docs); err != nil {
			tb.Fatal(err)
		}
	}
	return prev
}
