package mongostore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/sandbox"
)

// startStore starts the embedded FerretDB and opens a store on database db;
// both are closed when tb ends.
func startStore(tb testing.TB, db string) (*sandbox.Infra, *mongostore.Store) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs the embedded FerretDB (not with -short)")
	}
	in, err := sandbox.StartInfra(context.Background(), sandbox.InfraConfig{DataDir: tb.TempDir(), MongoAddr: "127.0.0.1:0", NoKafka: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { in.Close() })
	store, err := mongostore.Open(mongostore.Config{URI: in.MongoURI(), Database: db})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = store.Close(context.Background()) })
	return in, store
}

// BenchmarkReadAndUpdateMember is the store's part of one command that sets
// a PIN: find the member by login, commit its decision with an event in the
// outbox, record its outcome (the audit record is AuditLog's). Against the embedded FerretDB (PostgreSQL, every commit
// synced), the sandbox's database.
func BenchmarkReadAndUpdateMember(b *testing.B) {
	ctx := context.Background()
	_, store := startStore(b, "bench")
	if err := store.EnsureIndexes(ctx); err != nil {
		b.Fatal(err)
	}
	var ms []pinreset.Member
	for i := range 1000 {
		ms = append(ms, pinreset.Member{ID: fmt.Sprintf("m%04d", i), ASPID: "KMTESTASP000001", LoginID: fmt.Sprintf("m%04d@example.com", i), PINHash: "h"})
	}
	if _, err := store.InsertMembers(ctx, ms); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		cid := fmt.Sprintf("261125120000-%07x", i)
		o := pinreset.Outcome{ASPID: "KMTESTASP000001", CorrelationID: cid, Code: pinreset.CodeSuccess, CompletedAt: time.Now()}
		_, err := store.Update(ctx, "KMTESTASP000001", fmt.Sprintf("m%04d@example.com", i%1000), cid, func(m pinreset.Member, _ *pinreset.Outcome) (pinreset.Member, bool, error) {
			next := m
			next.Version++
			next.Recent = append(next.Recent, pinreset.Applied{CorrelationID: cid, Code: pinreset.CodeSuccess, At: time.Now()})
			o.MemberID = m.ID
			ev := []pinreset.Event{{ID: fmt.Sprintf("%s:%d:0", m.ID, next.Version), Type: pinreset.EventPINSet, Version: next.Version, MemberID: m.ID, At: time.Now()}}
			next.Outbox = append(next.Outbox, pinreset.Pending{Version: next.Version, Outcome: o, Events: ev})
			return next, true, nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := store.Record(ctx, o); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
