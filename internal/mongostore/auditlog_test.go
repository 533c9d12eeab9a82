package mongostore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/sandbox"
)

// auditEngine starts the embedded FerretDB for tb and returns its URI; it
// stops when tb ends.
func auditEngine(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs the embedded FerretDB (not with -short)")
	}
	in, err := sandbox.StartInfra(context.Background(), sandbox.InfraConfig{DataDir: tb.TempDir(), MongoAddr: "127.0.0.1:0", NoKafka: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(in.Close)
	return in.MongoURI()
}

// connect is a client of uri with the store's options, closed when tb ends.
func connect(tb testing.TB, uri string) *mongo.Client {
	tb.Helper()
	client, err := mongo.Connect(clientOptions(Config{URI: uri}.withDefaults()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

// auditDatabases starts the embedded FerretDB for tb and returns a function
// that gives a fresh database on it; all are gone when tb ends.
func auditDatabases(tb testing.TB) func() *mongo.Database {
	tb.Helper()
	client := connect(tb, auditEngine(tb))
	var n atomic.Int64
	return func() *mongo.Database { return client.Database(fmt.Sprintf("audit%d", n.Add(1))) }
}

// auditDB is one fresh database on an embedded FerretDB of tb's own.
func auditDB(tb testing.TB) *mongo.Database { return auditDatabases(tb)() }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// loginHash stands for the caller's keyed hash of a loginId.
func loginHash(i int) string { return fmt.Sprintf("lh1:%040x", i) }

func memberRec(member, cid, code string) audit.Record {
	return audit.Record{ASPID: "KMSANDBOXASP001", Kind: audit.KindChange, MemberID: member, CorrelationID: cid, Code: code, WorkerID: "w1"}
}

func memberlessRec(cid string, i int) audit.Record {
	return audit.Record{ASPID: "KMSANDBOXASP001", Kind: audit.KindReset, LoginIDHash: loginHash(i), CorrelationID: cid, Code: "001_006", WorkerID: "w2"}
}

func mustVerify(t *testing.T, ctx context.Context, l *AuditLog) audit.Report {
	t.Helper()
	rep, err := l.Verify(ctx, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func wantBroken(t *testing.T, rep audit.Report, chain string, seq int64) {
	t.Helper()
	if len(rep.Broken) != 1 || rep.Broken[0].Chain != chain || rep.Broken[0].Seq != seq {
		t.Fatalf("Broken = %v, want exactly %s seq %d", rep.Broken, chain, seq)
	}
	t.Logf("reported: %s", rep.Broken[0])
}

// TestAuditAppendRefuses: a record audit.Link refuses is refused before
// the database is asked anything.
func TestAuditAppendRefuses(t *testing.T) {
	l := &AuditLog{now: time.Now} // no collection: any access would panic
	if _, err := l.Append(context.Background(), audit.Record{ASPID: "A", Kind: "status", Code: "000_000"}); err == nil {
		t.Error("Append accepted a record of kind status")
	}
	if _, err := l.Insert(context.Background(), memberRec("m1", "c1", "000_000")); err == nil {
		t.Error("Insert accepted a record Link did not make")
	}
}

func TestAuditAppendBuildsChain(t *testing.T) {
	ctx, db := testCtx(t), auditDB(t)
	l := NewAuditLog(db)
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatalf("EnsureIndexes twice: %v", err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("KST", 9*3600))
	var got []audit.Record
	for i := range 5 {
		r := memberRec("m1", fmt.Sprintf("cid-%d", i), "000_000")
		r.At = at
		r.Seq, r.Hash, r.PrevHash, r.Chain = 99, "x", "y", "z" // ignored
		out, err := l.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out)
	}
	prevHash := ""
	for i, r := range got {
		in := memberRec("m1", fmt.Sprintf("cid-%d", i), "000_000")
		in.At = at
		want, err := audit.Link(in, int64(i), prevHash)
		if err != nil || !reflect.DeepEqual(r, want) {
			t.Errorf("record %d: %+v\nwant %+v (%v)", i, r, want, err)
		}
		prevHash = r.Hash
	}
	// A fresh AuditLog (another process) without hints continues the chain.
	out, err := NewAuditLog(db).Append(ctx, memberRec("m1", "cid-5", "001_043"))
	if err != nil || out.Seq != 6 || out.PrevHash != got[4].Hash {
		t.Fatalf("fresh AuditLog appended seq %d prev %q (%v)", out.Seq, out.PrevHash, err)
	}
	// A zero At becomes now.
	before := time.Now().Add(-time.Second)
	m, err := l.Append(ctx, memberlessRec("cid-x", 1))
	if err != nil || m.At.Before(before) || m.Chain != audit.ChainOf(m) || !strings.HasPrefix(m.Chain, "a:KMSANDBOXASP001:") {
		t.Fatalf("memberless append: %+v %v", m, err)
	}
	// The stored document is what Append returned, field for field.
	var doc auditDoc
	if err := db.Collection(AuditCollection).FindOne(ctx, bson.D{{Key: "_id", Value: "m:m1:3"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(doc.record(), got[2]) {
		t.Errorf("stored %+v\nreturned %+v", doc.record(), got[2])
	}
	var visited []string
	rep, err := l.Verify(ctx, func(r audit.Record) { visited = append(visited, audit.ID(r.Chain, r.Seq)) })
	if err != nil || !rep.OK() || rep.Chains != 2 || rep.Records != 7 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	want := []string{m.Chain + ":1", "m:m1:1", "m:m1:2", "m:m1:3", "m:m1:4", "m:m1:5", "m:m1:6"}
	if !reflect.DeepEqual(visited, want) {
		t.Errorf("visited %v, want %v", visited, want)
	}
}

// TestAuditFindHeadLongChain: an AuditLog that has never seen a chain finds
// its head by a logarithmic number of reads, and a stale hint is corrected.
func TestAuditFindHeadLongChain(t *testing.T) {
	ctx, db := testCtx(t), auditDB(t)
	l := NewAuditLog(db)
	const n = 300
	for i := range n {
		if _, err := l.Append(ctx, memberRec("long", fmt.Sprint(i), "000_000")); err != nil {
			t.Fatal(err)
		}
	}
	fresh := NewAuditLog(db)
	start := time.Now()
	h, err := fresh.findHead(ctx, "m:long", chainHead{})
	if err != nil || h.seq != n {
		t.Fatalf("findHead = %d, %v", h.seq, err)
	}
	t.Logf("head of a %d-record chain found in %v", n, time.Since(start))
	// Another writer appends behind a stale hint.
	for i := range 7 {
		if _, err := l.Append(ctx, memberRec("long", fmt.Sprint("more", i), "000_000")); err != nil {
			t.Fatal(err)
		}
	}
	r, err := fresh.Append(ctx, memberRec("long", "last", "000_000"))
	if err != nil || r.Seq != n+8 {
		t.Fatalf("append behind a stale hint: seq %d, %v", r.Seq, err)
	}
	if rep := mustVerify(t, ctx, l); !rep.OK() || rep.Records != n+8 {
		t.Fatalf("Verify = %+v", rep)
	}
}

func TestAuditConcurrentAppends(t *testing.T) {
	ctx, db := testCtx(t), auditDB(t)
	if err := NewAuditLog(db).EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	const goroutines, total, members = 8, 200, 10
	logs := make([]*AuditLog, goroutines)
	for i := range logs {
		logs[i] = NewAuditLog(db) // one AuditLog each: like separate worker processes, no shared hints
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []audit.Record
		errs    []error
	)
	start := time.Now()
	for g := range goroutines {
		wg.Go(func() {
			for i := g; i < total; i += goroutines {
				cid := fmt.Sprintf("cid-%03d", i)
				var r audit.Record
				if i%5 == 4 { // one in five has no member
					r = memberlessRec(cid, i)
				} else {
					r = memberRec(fmt.Sprintf("m%d", i%members), cid, "000_000")
				}
				out, err := logs[g].Append(ctx, r)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					results = append(results, out)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		t.Error(err)
	}
	var conflicts int64
	for _, l := range logs {
		conflicts += l.conflicts.Load()
	}
	t.Logf("%d appends from %d goroutines in %v: %.0f appends/s, %d lost inserts retried",
		total, goroutines, elapsed, float64(total)/elapsed.Seconds(), conflicts)

	// What is stored: every correlation id exactly once, every chain 1..n.
	cur, err := db.Collection(AuditCollection).Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []auditDoc
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != total || len(results) != total {
		t.Fatalf("stored %d records, Append returned %d, want %d", len(docs), len(results), total)
	}
	byCID := map[string]int{}
	seqs := map[string]map[int64]bool{}
	for _, d := range docs {
		byCID[d.CorrelationID]++
		if seqs[d.Chain] == nil {
			seqs[d.Chain] = map[int64]bool{}
		}
		seqs[d.Chain][d.Seq] = true
	}
	for i := range total {
		if n := byCID[fmt.Sprintf("cid-%03d", i)]; n != 1 {
			t.Errorf("cid-%03d stored %d times", i, n)
		}
	}
	for chain, s := range seqs {
		for i := int64(1); i <= int64(len(s)); i++ {
			if !s[i] {
				t.Errorf("chain %s: seq %d missing among %d", chain, i, len(s))
			}
		}
	}
	rep := mustVerify(t, ctx, logs[0])
	if !rep.OK() || rep.Records != total || rep.Chains != len(seqs) {
		t.Fatalf("Verify = %+v (chains stored %d)", rep, len(seqs))
	}
	t.Logf("%d chains (%d member chains)", rep.Chains, members)
}

// TestAuditConcurrentOneChain: many writers on one chain, the worst case.
func TestAuditConcurrentOneChain(t *testing.T) {
	ctx, db := testCtx(t), auditDB(t)
	shared := NewAuditLog(db)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	start := time.Now()
	for g := range 8 {
		l := shared
		if g%2 == 0 {
			l = NewAuditLog(db)
		}
		wg.Go(func() {
			for i := range 12 {
				if _, err := l.Append(ctx, memberRec("hot", fmt.Sprintf("g%d-%d", g, i), "000_000")); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("96 appends to one chain from 8 goroutines in %v", time.Since(start))
	if rep := mustVerify(t, ctx, shared); !rep.OK() || rep.Records != 96 || rep.Chains != 1 {
		t.Fatalf("Verify = %+v", rep)
	}
}

// seedAudit appends five records to member m1 (codes 000_000 to 000_004)
// and two memberless ones.
func seedAudit(t *testing.T, ctx context.Context, l *AuditLog) []audit.Record {
	t.Helper()
	var out []audit.Record
	for i := range 5 {
		r, err := l.Append(ctx, memberRec("m1", fmt.Sprintf("cid-%d", i), fmt.Sprintf("000_00%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	for i := range 2 {
		if _, err := l.Append(ctx, memberlessRec(fmt.Sprintf("other-%d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	if rep := mustVerify(t, ctx, l); !rep.OK() {
		t.Fatalf("seeded trail does not verify: %v", rep.Broken)
	}
	return out
}

// TestAuditVerifyReadsTheStoredTrail: Verify reads what is stored, in
// chain and seq order, and reports damage done in the database: the
// checks themselves are audit.Verifier's (its tests); these are the ways
// the stored form can be damaged.
func TestAuditVerifyReadsTheStoredTrail(t *testing.T) {
	newDB := auditDatabases(t)
	set := func(field string, v any) bson.D { return bson.D{{Key: "$set", Value: bson.D{{Key: field, Value: v}}}} }
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, ctx context.Context, coll *mongo.Collection, recs []audit.Record)
		chain  string
		seq    int64
	}{
		{"a field edited", func(t *testing.T, ctx context.Context, coll *mongo.Collection, _ []audit.Record) {
			if res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "m:m1:3"}}, set("code", "000_000")); err != nil || res.ModifiedCount != 1 {
				t.Fatalf("update: %+v %v", res, err)
			}
		}, "m:m1", 3},
		{"a record replaced, its hash recomputed", func(t *testing.T, ctx context.Context, coll *mongo.Collection, recs []audit.Record) {
			r := recs[1]
			r.Code = "000_000"
			r.Hash = audit.Hash(r)
			if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: "m:m1:2"}}, toAuditDoc(r)); err != nil {
				t.Fatal(err)
			}
		}, "m:m1", 3}, // record 3's prevHash no longer matches
		{"a record deleted", func(t *testing.T, ctx context.Context, coll *mongo.Collection, _ []audit.Record) {
			if res, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "m:m1:2"}}); err != nil || res.DeletedCount != 1 {
				t.Fatalf("delete: %+v %v", res, err)
			}
		}, "m:m1", 2},
		{"two records swapped, all their fields", func(t *testing.T, ctx context.Context, coll *mongo.Collection, _ []audit.Record) {
			swap(t, ctx, coll, "chain", "seq", "prevHash", "hash", "aspId", "kind", "memberId", "loginIdHash", "correlationId", "code", "at", "workerId", "once")
		}, "m:m1", 2},
		{"two records' contents swapped", func(t *testing.T, ctx context.Context, coll *mongo.Collection, _ []audit.Record) {
			swap(t, ctx, coll, "correlationId", "once", "code", "at")
		}, "m:m1", 2},
		{"two records' contents and hashes swapped", func(t *testing.T, ctx context.Context, coll *mongo.Collection, _ []audit.Record) {
			swap(t, ctx, coll, "correlationId", "once", "code", "at", "hash", "prevHash")
		}, "m:m1", 2},
		{"once not the record's", func(t *testing.T, ctx context.Context, coll *mongo.Collection, _ []audit.Record) {
			if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "m:m1:3"}}, set("once", onceKey("m:m1", "cid-9"))); err != nil {
				t.Fatal(err)
			}
		}, "m:m1", 3},
		{"an extra field", func(t *testing.T, ctx context.Context, coll *mongo.Collection, _ []audit.Record) {
			if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "m:m1:4"}}, set("extra", "x")); err != nil {
				t.Fatal(err)
			}
		}, "m:m1", 4},
		{"a note added to a member's record", func(t *testing.T, ctx context.Context, coll *mongo.Collection, _ []audit.Record) {
			if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "m:m1:4"}}, set("note", "x")); err != nil {
				t.Fatal(err)
			}
		}, "m:m1", 4},
		{"a time that became a string", func(t *testing.T, ctx context.Context, coll *mongo.Collection, _ []audit.Record) {
			if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "m:m1:5"}}, set("at", "yesterday")); err != nil {
				t.Fatal(err)
			}
		}, "m:m1", 5},
		{"a forged record of another member", func(t *testing.T, ctx context.Context, coll *mongo.Collection, recs []audit.Record) {
			forged := recs[0]
			forged.MemberID, forged.Chain = "m9", "m:m9" // well formed, the hash of m1's
			if _, err := coll.InsertOne(ctx, toAuditDoc(forged)); err != nil {
				t.Fatal(err)
			}
		}, "m:m9", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, db := testCtx(t), newDB()
			l := NewAuditLog(db)
			recs := seedAudit(t, ctx, l)
			tc.damage(t, ctx, db.Collection(AuditCollection), recs)
			rep := mustVerify(t, ctx, l)
			wantBroken(t, rep, tc.chain, tc.seq)
			chains := map[string]bool{"m:m1": true, tc.chain: true,
				audit.ChainOf(memberlessRec("other-0", 0)): true, audit.ChainOf(memberlessRec("other-1", 1)): true}
			if rep.Chains != len(chains) {
				t.Errorf("report %+v, want %d chains", rep, len(chains))
			}
		})
	}
}

// swap exchanges fields between records m:m1:2 and m:m1:3 in place.
func swap(t *testing.T, ctx context.Context, coll *mongo.Collection, fields ...string) {
	t.Helper()
	var a, b bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "m:m1:2"}}).Decode(&a); err != nil {
		t.Fatal(err)
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "m:m1:3"}}).Decode(&b); err != nil {
		t.Fatal(err)
	}
	setA, setB := bson.D{}, bson.D{}
	for _, f := range fields {
		setA = append(setA, bson.E{Key: f, Value: b[f]})
		setB = append(setB, bson.E{Key: f, Value: a[f]})
	}
	for id, set := range map[string]bson.D{"m:m1:2": setA, "m:m1:3": setB} {
		if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditFind(t *testing.T) {
	ctx, db := testCtx(t), auditDB(t)
	l := NewAuditLog(db)
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	seedAudit(t, ctx, l)
	// The same correlation id in two chains (a retry that found the member
	// the second time), and another member.
	if _, err := l.Append(ctx, memberlessRec("shared", 7)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, memberRec("m2", "shared", "000_000")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, memberRec("m2", "cid-9", "000_000")); err != nil {
		t.Fatal(err)
	}
	got, err := l.Find(ctx, "shared", "")
	if err != nil {
		t.Fatal(err)
	}
	memberless := audit.ChainOf(memberlessRec("shared", 7))
	if len(got) != 2 || got[0].Chain != memberless || got[1].Chain != "m:m2" || got[1].Seq != 1 {
		t.Fatalf("Find(shared) = %+v", got)
	}
	if got[0].LoginIDHash != loginHash(7) || got[0].Hash != audit.Hash(got[0]) {
		t.Errorf("found %+v", got[0])
	}
	got, err = l.Find(ctx, "", "m1")
	if err != nil || len(got) != 5 {
		t.Fatalf("Find(member m1) = %d records, %v", len(got), err)
	}
	for i, r := range got {
		if r.Seq != int64(i+1) || r.MemberID != "m1" || r.Code != fmt.Sprintf("000_00%d", i) {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	got, err = l.Find(ctx, "cid-9", "m2")
	if err != nil || len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("Find(cid-9, m2) = %+v, %v", got, err)
	}
	if got, err := l.Find(ctx, "nope", ""); err != nil || len(got) != 0 {
		t.Fatalf("Find(nope) = %+v, %v", got, err)
	}
	if _, err := l.Find(ctx, "", ""); err == nil {
		t.Error("Find with nothing to find by succeeded")
	}
}

// TestAuditAppendOncePerCorrelation: a second record of a correlation id in
// its chain is refused with audit.ErrRecorded, whether the appender's hint
// points at the free seq (the duplicate is the correlation id's), at a seq
// another command took, or nowhere (a fresh process), and also when many
// append the same command at once; the same correlation id in another
// chain is a different record.
func TestAuditAppendOncePerCorrelation(t *testing.T) {
	ctx, db := testCtx(t), auditDB(t)
	l := NewAuditLog(db)
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := l.Append(ctx, memberRec("m1", "c1", "000_000"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, memberRec("m1", "c1", "000_000")); !errors.Is(err, audit.ErrRecorded) {
		t.Fatalf("again, hint at the free seq: %v, want ErrRecorded", err)
	}
	if _, err := NewAuditLog(db).Append(ctx, memberRec("m1", "c1", "000_000")); !errors.Is(err, audit.ErrRecorded) {
		t.Fatalf("again from a fresh AuditLog (seq 1 is c1's own): %v, want ErrRecorded", err)
	}
	if _, err := l.Append(ctx, memberRec("m1", "c2", "000_000")); err != nil {
		t.Fatal(err)
	}
	stale := NewAuditLog(db)
	stale.setHint("m:m1", chainHead{seq: first.Seq, hash: first.Hash}) // it will try seq 2, taken by c2
	if _, err := stale.Append(ctx, memberRec("m1", "c1", "000_000")); !errors.Is(err, audit.ErrRecorded) {
		t.Fatalf("again from a stale hint: %v, want ErrRecorded", err)
	}
	if _, err := l.Append(ctx, memberlessRec("c1", 1)); err != nil {
		t.Fatalf("c1 in a memberless chain: %v", err)
	}
	// Ids holding NUL (those of a command that could not be decoded are
	// checked for their length only) have a once of their own too.
	odd := memberlessRec("c\x00d", 2)
	odd.ASPID = "KM\x00SANDBOXASP01"
	if _, err := l.Append(ctx, odd); err != nil {
		t.Fatalf("ids with NUL: %v", err)
	}
	if _, err := NewAuditLog(db).Append(ctx, odd); !errors.Is(err, audit.ErrRecorded) {
		t.Fatalf("ids with NUL, again: %v, want ErrRecorded", err)
	}

	var wg sync.WaitGroup
	var stored, refused atomic.Int32
	for range 8 {
		wg.Go(func() {
			_, err := NewAuditLog(db).Append(ctx, memberRec("m1", "c3", "001_035"))
			switch {
			case err == nil:
				stored.Add(1)
			case errors.Is(err, audit.ErrRecorded):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if stored.Load() != 1 || refused.Load() != 7 {
		t.Fatalf("8 concurrent appends of one command: %d stored, %d refused", stored.Load(), refused.Load())
	}
	rep := mustVerify(t, ctx, l)
	got, err := l.Find(ctx, "", "m1")
	if err != nil || !rep.OK() || len(got) != 3 {
		t.Fatalf("chain m:m1 after the duplicates: %d records (%v), %+v", len(got), err, rep)
	}
	for i, cid := range []string{"c1", "c2", "c3"} {
		if got[i].CorrelationID != cid || got[i].Seq != int64(i+1) {
			t.Errorf("record %d = %s seq %d, want %s", i, got[i].CorrelationID, got[i].Seq, cid)
		}
	}
}

func TestAuditHintsBounded(t *testing.T) {
	l := &AuditLog{hints: map[string]chainHead{}}
	for i := range maxAuditHints + 50 {
		l.setHint(fmt.Sprint("c", i), chainHead{seq: 1})
	}
	if len(l.hints) > maxAuditHints {
		t.Fatalf("%d hints", len(l.hints))
	}
	l.setHint("x", chainHead{seq: 5, hash: "h5"})
	l.setHint("x", chainHead{seq: 3, hash: "h3"}) // never moves back
	if h, _ := l.hint("x"); h.seq != 5 {
		t.Fatalf("hint went back to %d", h.seq)
	}
}

// TestAuditBothIndexesRefuseOnFerretDB: what Append meets on the embedded
// engine when each of the trail's unique indexes refuses a record: a
// duplicate-key error that names its index, as MongoDB's does, and
// Append's answer for each: a seq taken by another command is retried at
// the head, a correlation id already in the chain is audit.ErrRecorded.
func TestAuditBothIndexesRefuseOnFerretDB(t *testing.T) {
	ctx, db := testCtx(t), auditDB(t)
	l := NewAuditLog(db)
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := l.Append(ctx, memberRec("m1", "c1", "000_000"))
	if err != nil {
		t.Fatal(err)
	}
	seqTaken := first
	seqTaken.CorrelationID = "c2"
	_, errID := db.Collection(AuditCollection).InsertOne(ctx, toAuditDoc(seqTaken))
	cidTaken := first
	cidTaken.Seq = 2
	_, errCID := db.Collection(AuditCollection).InsertOne(ctx, toAuditDoc(cidTaken))
	for _, c := range []struct {
		index string
		err   error
		want  Duplicate
	}{{"_id", errID, DuplicateOnOther}, {auditOnceIndex.Name, errCID, DuplicateOn}} {
		if got := ClassifyDuplicate(c.err, auditOnceIndex); got != c.want {
			t.Errorf("duplicate %s: classified %d (%v), want %d", c.index, got, c.err, c.want)
		}
	}

	stale := NewAuditLog(db) // tries seq 1 first: taken by c1
	if r, err := stale.Append(ctx, memberRec("m1", "c2", "000_000")); err != nil || r.Seq != 2 {
		t.Fatalf("append over a taken seq: %+v, %v; want seq 2", r, err)
	}
	if stale.conflicts.Load() != 1 {
		t.Errorf("%d conflicts counted, want 1 (seq 1 taken)", stale.conflicts.Load())
	}
	if _, err := NewAuditLog(db).Append(ctx, memberRec("m1", "c2", "000_000")); !errors.Is(err, audit.ErrRecorded) {
		t.Fatalf("c2 again from a fresh AuditLog: %v, want ErrRecorded", err)
	}
	if _, err := l.Append(ctx, memberRec("m1", "c1", "000_000")); !errors.Is(err, audit.ErrRecorded) { // hint seq 1: seq 2 is taken, seq 3 free but c1 recorded
		t.Fatalf("c1 again, its seq far behind: %v, want ErrRecorded", err)
	}
	if rep := mustVerify(t, ctx, l); !rep.OK() || rep.Records != 2 {
		t.Fatalf("trail after the refusals: %+v", rep)
	}
}

// TestAuditInsertLinkedRecords: records made by audit.Link are stored at
// their place, a second Insert of one is audit.ErrRecorded and stores
// nothing, and a record whose seq another command's record took (a chain
// head its maker did not know) is appended at the head instead; the chain
// verifies throughout.
func TestAuditInsertLinkedRecords(t *testing.T) {
	ctx := testCtx(t)
	l := NewAuditLog(auditDB(t))
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	r1, err := audit.Link(memberRec("m1", "261201090000-0000001", "000_000"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Insert(ctx, r1); err != nil || got.Seq != 1 {
		t.Fatalf("Insert: %+v, %v", got, err)
	}
	if _, err := l.Insert(ctx, r1); !errors.Is(err, audit.ErrRecorded) {
		t.Fatalf("second Insert: %v, want ErrRecorded", err)
	}
	r2, _ := audit.Link(memberRec("m1", "261201090000-0000002", "000_000"), r1.Seq, r1.Hash)
	if _, err := l.Append(ctx, memberRec("m1", "261201090000-0000009", "001_035")); err != nil { // takes seq 2
		t.Fatal(err)
	}
	got, err := l.Insert(ctx, r2)
	if err != nil || got.Seq != 3 || got.CorrelationID != r2.CorrelationID {
		t.Fatalf("Insert at a taken seq: %+v, %v; want it appended at seq 3", got, err)
	}
	bad := r2
	bad.Code = "000_500" // no longer the record Link made
	if _, err := l.Insert(ctx, bad); err == nil {
		t.Fatal("a record whose hash does not match was inserted")
	}
	if rep := mustVerify(t, ctx, l); !rep.OK() {
		t.Fatalf("the chain does not verify: %+v", rep)
	}
}
