package audit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/sandbox"
)

// One FerretDB per test binary; every test gets its own database.
var (
	client *mongo.Client
	dbSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(runWithInfra(m))
}

func runWithInfra(m *testing.M) int {
	dir, err := os.MkdirTemp("", "audit-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	infra, err := sandbox.StartInfra(ctx, sandbox.InfraConfig{DataDir: dir, KafkaAddr: "127.0.0.1:0", MongoAddr: "127.0.0.1:0", NoKafka: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start FerretDB:", err)
		return 1
	}
	defer infra.Close()
	client, err = mongo.Connect(options.Client().ApplyURI(infra.MongoURI()).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		return 1
	}
	defer client.Disconnect(context.Background())
	return m.Run()
}

// newDB returns a fresh database, dropped at the end of the test.
func newDB(t *testing.T) *mongo.Database {
	t.Helper()
	if testing.Short() || client == nil {
		t.Skip("needs the embedded FerretDB (not with -short)")
	}
	db := client.Database(fmt.Sprintf("audit_test_%d", dbSeq.Add(1)))
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	return db
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// loginHash stands for the caller's keyed hash of a loginId.
func loginHash(i int) string { return fmt.Sprintf("lh1:%040x", i) }

func memberRec(member, cid, code string) Record {
	return Record{ASPID: "KMSANDBOXASP001", Kind: KindChange, MemberID: member, CorrelationID: cid, Code: code, WorkerID: "w1"}
}

func memberlessRec(cid string, i int) Record {
	return Record{ASPID: "KMSANDBOXASP001", Kind: KindReset, LoginIDHash: loginHash(i), CorrelationID: cid, Code: "001_006", WorkerID: "w2"}
}

func mustVerify(t *testing.T, ctx context.Context, l *Log) Report {
	t.Helper()
	rep, err := l.Verify(ctx, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func wantBroken(t *testing.T, rep Report, chain string, seq int64) {
	t.Helper()
	if len(rep.Broken) != 1 || rep.Broken[0].Chain != chain || rep.Broken[0].Seq != seq {
		t.Fatalf("Broken = %v, want exactly %s seq %d", rep.Broken, chain, seq)
	}
	t.Logf("reported: %s", rep.Broken[0])
}

func TestChainOf(t *testing.T) {
	if got := ChainOf(Record{ASPID: "A", MemberID: "m-1", CorrelationID: "c"}); got != "m:m-1" {
		t.Errorf("member chain = %q", got)
	}
	// FNV-32a("") = 0x811c9dc5; mod 16 = 5.
	if got := ChainOf(Record{ASPID: "A"}); got != "a:A:5" {
		t.Errorf("memberless chain of empty cid = %q, want a:A:5", got)
	}
	seen := map[string]bool{}
	for i := range 1000 {
		c := ChainOf(Record{ASPID: "ASP1", CorrelationID: fmt.Sprintf("cid-%d", i)})
		if !strings.HasPrefix(c, "a:ASP1:") {
			t.Fatalf("memberless chain = %q", c)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(c, "a:ASP1:"))
		if err != nil || n < 0 || n >= Shards {
			t.Fatalf("memberless chain = %q", c)
		}
		seen[c] = true
		if again := ChainOf(Record{ASPID: "ASP1", CorrelationID: fmt.Sprintf("cid-%d", i), LoginIDHash: loginHash(i)}); again != c {
			t.Fatalf("chain depends on more than ASP and correlation id: %q vs %q", again, c)
		}
	}
	if len(seen) != Shards {
		t.Errorf("1000 correlation ids used %d shards, want %d", len(seen), Shards)
	}
}

func TestHashCoversEveryField(t *testing.T) {
	base := Record{
		Chain: "m:m1", Seq: 3, PrevHash: strings.Repeat("ab", 32), ASPID: "ASP", Kind: KindChange,
		MemberID: "m1", LoginIDHash: loginHash(1), CorrelationID: "cid", Code: "000_000",
		At: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), WorkerID: "w",
	}
	h0 := recordHash(base)
	changes := map[string]func(*Record){
		"Chain":         func(r *Record) { r.Chain = "m:m2" },
		"Seq":           func(r *Record) { r.Seq = 4 },
		"PrevHash":      func(r *Record) { r.PrevHash = strings.Repeat("cd", 32) },
		"ASPID":         func(r *Record) { r.ASPID = "ASQ" },
		"Kind":          func(r *Record) { r.Kind = KindReset },
		"MemberID":      func(r *Record) { r.MemberID = "m2" },
		"LoginIDHash":   func(r *Record) { r.LoginIDHash = loginHash(2) },
		"CorrelationID": func(r *Record) { r.CorrelationID = "cie" },
		"Code":          func(r *Record) { r.Code = "000_001" },
		"At":            func(r *Record) { r.At = r.At.Add(time.Millisecond) },
		"WorkerID":      func(r *Record) { r.WorkerID = "x" },
		"Note":          func(r *Record) { r.Note = "why" }, // (hashed only when set: older records keep their hashes)
		// Moving bytes between adjacent fields must change the hash too.
		"boundary": func(r *Record) { r.ASPID, r.Kind = "ASPc", "hange" },
	}
	// Every field but Hash must have a case.
	typ := reflect.TypeOf(Record{})
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if _, ok := changes[name]; !ok && name != "Hash" {
			t.Errorf("no case for field %s", name)
		}
	}
	for name, change := range changes {
		r := base
		change(&r)
		if recordHash(r) == h0 {
			t.Errorf("changing %s leaves the hash unchanged", name)
		}
	}
	r := base
	r.Hash = "whatever"
	if recordHash(r) != h0 {
		t.Error("the hash depends on the Hash field")
	}
	r = base
	r.At = base.At.In(time.FixedZone("X", 3600))
	if recordHash(r) != h0 {
		t.Error("the hash depends on the time zone")
	}
}

func TestAppendRefuses(t *testing.T) {
	l := &Log{} // check runs before any database access
	for name, r := range map[string]Record{
		"kind":        {ASPID: "A", Kind: "status", Code: "000_000"},
		"no code":     {ASPID: "A", Kind: KindReset},
		"raw loginId": {ASPID: "A", Kind: KindReset, Code: "001_006", LoginIDHash: "someone@example.com"},
		"phone":       {ASPID: "A", Kind: KindReset, Code: "001_006", LoginIDHash: "01012345678"},
		"note":        {ASPID: "A", Kind: KindReset, Code: "000_000", Note: "a note is for operator records"},
		"long note":   {ASPID: "A", Kind: KindOperator, Code: "purge", Note: strings.Repeat("x", MaxNote+1)},
	} {
		if _, err := l.Append(context.Background(), r); err == nil {
			t.Errorf("%s: Append accepted %+v", name, r)
		} else if strings.Contains(err.Error(), "someone") {
			t.Errorf("%s: error echoes the value: %v", name, err)
		}
	}
}

func TestAppendBuildsChain(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	l := New(db)
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatalf("EnsureIndexes twice: %v", err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("KST", 9*3600))
	var got []Record
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
	for i, r := range got {
		if r.Chain != "m:m1" || r.Seq != int64(i+1) {
			t.Errorf("record %d: chain %q seq %d", i, r.Chain, r.Seq)
		}
		if i == 0 && r.PrevHash != "" {
			t.Errorf("first prevHash = %q", r.PrevHash)
		}
		if i > 0 && r.PrevHash != got[i-1].Hash {
			t.Errorf("record %d: prevHash %q, want %q", i, r.PrevHash, got[i-1].Hash)
		}
		if r.Hash != recordHash(r) || len(r.Hash) != 64 {
			t.Errorf("record %d: hash %q", i, r.Hash)
		}
		if !r.At.Equal(at.Truncate(time.Millisecond)) || r.At.Location() != time.UTC {
			t.Errorf("record %d: At = %v", i, r.At)
		}
	}
	// A fresh Log (another process) without hints continues the chain.
	out, err := New(db).Append(ctx, memberRec("m1", "cid-5", "001_043"))
	if err != nil || out.Seq != 6 || out.PrevHash != got[4].Hash {
		t.Fatalf("fresh Log appended seq %d prev %q (%v)", out.Seq, out.PrevHash, err)
	}
	// A zero At becomes now.
	before := time.Now().Add(-time.Second)
	m, err := l.Append(ctx, memberlessRec("cid-x", 1))
	if err != nil || m.At.Before(before) || m.Chain != ChainOf(m) || !strings.HasPrefix(m.Chain, "a:KMSANDBOXASP001:") {
		t.Fatalf("memberless append: %+v %v", m, err)
	}
	// The stored document is what Append returned, field for field.
	var doc recordDoc
	if err := db.Collection(Collection).FindOne(ctx, bson.D{{Key: "_id", Value: "m:m1:3"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(doc.record(), got[2]) {
		t.Errorf("stored %+v\nreturned %+v", doc.record(), got[2])
	}
	var visited []string
	rep, err := l.Verify(ctx, func(r Record) { visited = append(visited, recordID(r.Chain, r.Seq)) })
	if err != nil || !rep.OK() || rep.Chains != 2 || rep.Records != 7 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	want := []string{m.Chain + ":1", "m:m1:1", "m:m1:2", "m:m1:3", "m:m1:4", "m:m1:5", "m:m1:6"}
	if !reflect.DeepEqual(visited, want) {
		t.Errorf("visited %v, want %v", visited, want)
	}
}

// TestFindHeadLongChain: a Log that has never seen a chain finds its head by
// a logarithmic number of lookups, and a stale hint is corrected.
func TestFindHeadLongChain(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	l := New(db)
	const n = 300
	for i := range n {
		if _, err := l.Append(ctx, memberRec("long", fmt.Sprint(i), "000_000")); err != nil {
			t.Fatal(err)
		}
	}
	fresh := New(db)
	start := time.Now()
	h, err := fresh.findHead(ctx, "m:long", head{})
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

func TestConcurrentAppends(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	if err := New(db).EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	const goroutines, total, members = 8, 200, 10
	logs := make([]*Log, goroutines)
	for i := range logs {
		logs[i] = New(db) // one Log each: like separate worker processes, no shared hints
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []Record
		errs    []error
	)
	start := time.Now()
	for g := range goroutines {
		wg.Go(func() {
			for i := g; i < total; i += goroutines {
				cid := fmt.Sprintf("cid-%03d", i)
				var r Record
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
	cur, err := db.Collection(Collection).Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []recordDoc
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
	for _, r := range results {
		if ChainOf(r) != r.Chain {
			t.Errorf("record %s:%d in the wrong chain", r.Chain, r.Seq)
		}
	}
	rep := mustVerify(t, ctx, logs[0])
	if !rep.OK() || rep.Records != total || rep.Chains != len(seqs) {
		t.Fatalf("Verify = %+v (chains stored %d)", rep, len(seqs))
	}
	t.Logf("%d chains (%d member chains)", rep.Chains, members)
}

// TestConcurrentOneChain: many writers on one chain, the worst case.
func TestConcurrentOneChain(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	shared := New(db)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	start := time.Now()
	for g := range 8 {
		l := shared
		if g%2 == 0 {
			l = New(db)
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

// seed appends five records to member m1 and two memberless ones.
func seed(t *testing.T, ctx context.Context, l *Log) []Record {
	t.Helper()
	var out []Record
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

func TestVerifyDetectsEdit(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	l := New(db)
	seed(t, ctx, l)
	res, err := db.Collection(Collection).UpdateOne(ctx, bson.D{{Key: "_id", Value: "m:m1:3"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "code", Value: "000_000"}}}})
	if err != nil || res.ModifiedCount != 1 {
		t.Fatalf("update: %+v %v", res, err)
	}
	rep := mustVerify(t, ctx, l)
	wantBroken(t, rep, "m:m1", 3)
	chains := map[string]bool{"m:m1": true, ChainOf(memberlessRec("other-0", 0)): true, ChainOf(memberlessRec("other-1", 1)): true}
	if rep.Records != 7 || rep.Chains != len(chains) {
		t.Errorf("report %+v, want 7 records in %d chains", rep, len(chains))
	}
}

func TestVerifyDetectsEditWithRecomputedHash(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	l := New(db)
	recs := seed(t, ctx, l)
	r := recs[1]
	r.Code = "000_000"
	r.Hash = recordHash(r)
	if _, err := db.Collection(Collection).ReplaceOne(ctx, bson.D{{Key: "_id", Value: "m:m1:2"}}, toDoc(r)); err != nil {
		t.Fatal(err)
	}
	wantBroken(t, mustVerify(t, ctx, l), "m:m1", 3) // record 3's prevHash no longer matches
}

func TestVerifyDetectsDelete(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	l := New(db)
	seed(t, ctx, l)
	if res, err := db.Collection(Collection).DeleteOne(ctx, bson.D{{Key: "_id", Value: "m:m1:2"}}); err != nil || res.DeletedCount != 1 {
		t.Fatalf("delete: %+v %v", res, err)
	}
	rep := mustVerify(t, ctx, l)
	wantBroken(t, rep, "m:m1", 2)
	if rep.Records != 6 {
		t.Errorf("records = %d", rep.Records)
	}
	// Deleting the first record is a break at seq 1.
	if _, err := db.Collection(Collection).DeleteOne(ctx, bson.D{{Key: "_id", Value: "m:m1:1"}}); err != nil {
		t.Fatal(err)
	}
	wantBroken(t, mustVerify(t, ctx, l), "m:m1", 1)
}

func TestVerifyDetectsReorder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []string // the fields swapped between records 2 and 3
	}{
		{"all fields", []string{"chain", "seq", "prevHash", "hash", "aspId", "kind", "memberId", "loginIdHash", "correlationId", "code", "at", "workerId"}},
		{"content", []string{"correlationId", "code", "at"}},
		{"content and hashes", []string{"correlationId", "code", "at", "hash", "prevHash"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, db := testCtx(t), newDB(t)
			l := New(db)
			seed(t, ctx, l)
			coll := db.Collection(Collection)
			var a, b bson.M
			if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "m:m1:2"}}).Decode(&a); err != nil {
				t.Fatal(err)
			}
			if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "m:m1:3"}}).Decode(&b); err != nil {
				t.Fatal(err)
			}
			setA, setB := bson.D{}, bson.D{}
			for _, f := range tc.fields {
				setA = append(setA, bson.E{Key: f, Value: b[f]})
				setB = append(setB, bson.E{Key: f, Value: a[f]})
			}
			for id, set := range map[string]bson.D{"m:m1:2": setA, "m:m1:3": setB} {
				if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}}); err != nil {
					t.Fatal(err)
				}
			}
			wantBroken(t, mustVerify(t, ctx, l), "m:m1", 2)
		})
	}
}

func TestVerifyDetectsForeignAndMalformedDocuments(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	l := New(db)
	recs := seed(t, ctx, l)
	coll := db.Collection(Collection)
	// An extra field on a record.
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "m:m1:4"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "note", Value: "x"}}}}); err != nil {
		t.Fatal(err)
	}
	wantBroken(t, mustVerify(t, ctx, l), "m:m1", 4)
	// A forged record in a new chain, well formed but with a wrong hash,
	// and one moved to another member's chain.
	forged := recs[0]
	forged.MemberID, forged.Chain = "m9", "m:m9"
	if _, err := coll.InsertOne(ctx, toDoc(forged)); err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, ctx, l)
	if len(rep.Broken) != 2 || rep.Broken[1].Chain != "m:m9" || rep.Broken[1].Seq != 1 {
		t.Fatalf("Broken = %v", rep.Broken)
	}
	// A record whose time became a string cannot be decoded: reported, not a failure of Verify.
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "m:m9:1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "at", Value: "yesterday"}}}}); err != nil {
		t.Fatal(err)
	}
	rep = mustVerify(t, ctx, l)
	if len(rep.Broken) != 2 || rep.Broken[1].Chain != "m:m9" || !strings.Contains(rep.Broken[1].Reason, "cannot be read") {
		t.Fatalf("Broken = %v", rep.Broken)
	}
}

func TestFind(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	l := New(db)
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	seed(t, ctx, l)
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
	memberless := ChainOf(memberlessRec("shared", 7))
	if len(got) != 2 || got[0].Chain != memberless || got[1].Chain != "m:m2" || got[1].Seq != 1 {
		t.Fatalf("Find(shared) = %+v", got)
	}
	if got[0].LoginIDHash != loginHash(7) || got[0].Hash != recordHash(got[0]) {
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

// TestAppendOncePerCorrelation: a second record of a correlation id in its
// chain is refused with ErrRecorded, whether the appender's hint points at
// the free seq (the duplicate is the correlation id's), at a seq another
// command took, or nowhere (a fresh process), and also when many append the
// same command at once; the same correlation id in another chain is a
// different record.
func TestAppendOncePerCorrelation(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	l := New(db)
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := l.Append(ctx, memberRec("m1", "c1", "000_000"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, memberRec("m1", "c1", "000_000")); !errors.Is(err, ErrRecorded) {
		t.Fatalf("again, hint at the free seq: %v, want ErrRecorded", err)
	}
	if _, err := New(db).Append(ctx, memberRec("m1", "c1", "000_000")); !errors.Is(err, ErrRecorded) {
		t.Fatalf("again from a fresh Log (seq 1 is c1's own): %v, want ErrRecorded", err)
	}
	if _, err := l.Append(ctx, memberRec("m1", "c2", "000_000")); err != nil {
		t.Fatal(err)
	}
	stale := New(db)
	stale.setHint("m:m1", head{seq: first.Seq, hash: first.Hash}) // it will try seq 2, taken by c2
	if _, err := stale.Append(ctx, memberRec("m1", "c1", "000_000")); !errors.Is(err, ErrRecorded) {
		t.Fatalf("again from a stale hint: %v, want ErrRecorded", err)
	}
	if _, err := l.Append(ctx, memberlessRec("c1", 1)); err != nil {
		t.Fatalf("c1 in a memberless chain: %v", err)
	}

	var wg sync.WaitGroup
	var stored, refused atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := New(db).Append(ctx, memberRec("m1", "c3", "001_035"))
			switch {
			case err == nil:
				stored.Add(1)
			case errors.Is(err, ErrRecorded):
				refused.Add(1)
			default:
				t.Error(err)
			}
		}()
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

func TestHintsBounded(t *testing.T) {
	l := &Log{hints: map[string]head{}}
	for i := range maxHints + 50 {
		l.setHint(fmt.Sprint("c", i), head{seq: 1})
	}
	if len(l.hints) > maxHints {
		t.Fatalf("%d hints", len(l.hints))
	}
	l.setHint("x", head{seq: 5, hash: "h5"})
	l.setHint("x", head{seq: 3, hash: "h3"}) // never moves back
	if h, _ := l.hint("x"); h.seq != 5 {
		t.Fatalf("hint went back to %d", h.seq)
	}
}

// TestBothIndexesRefuseOnFerretDB: what Append meets on the embedded engine
// when each of the trail's unique indexes refuses a record: a duplicate-key
// error that names its index, as MongoDB's does, and Append's answer for
// each: a seq taken by another command is retried at the head, a
// correlation id already in the chain is ErrRecorded.
func TestBothIndexesRefuseOnFerretDB(t *testing.T) {
	ctx, db := testCtx(t), newDB(t)
	l := New(db)
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := l.Append(ctx, memberRec("m1", "c1", "000_000"))
	if err != nil {
		t.Fatal(err)
	}
	seqTaken := first
	seqTaken.CorrelationID = "c2"
	_, errID := db.Collection(Collection).InsertOne(ctx, toDoc(seqTaken))
	cidTaken := first
	cidTaken.Seq = 2
	_, errCID := db.Collection(Collection).InsertOne(ctx, toDoc(cidTaken))
	for _, c := range []struct {
		index string
		err   error
		want  mongostore.Duplicate
	}{{"_id", errID, mongostore.DuplicateOnOther}, {onceIndex.Name, errCID, mongostore.DuplicateOn}} {
		if got := mongostore.ClassifyDuplicate(c.err, onceIndex); got != c.want {
			t.Errorf("duplicate %s: classified %d (%v), want %d", c.index, got, c.err, c.want)
		}
	}

	stale := New(db) // tries seq 1 first: taken by c1
	if r, err := stale.Append(ctx, memberRec("m1", "c2", "000_000")); err != nil || r.Seq != 2 {
		t.Fatalf("append over a taken seq: %+v, %v; want seq 2", r, err)
	}
	if stale.conflicts.Load() != 1 {
		t.Errorf("%d conflicts counted, want 1 (seq 1 taken)", stale.conflicts.Load())
	}
	if _, err := New(db).Append(ctx, memberRec("m1", "c2", "000_000")); !errors.Is(err, ErrRecorded) {
		t.Fatalf("c2 again from a fresh Log: %v, want ErrRecorded", err)
	}
	if _, err := l.Append(ctx, memberRec("m1", "c1", "000_000")); !errors.Is(err, ErrRecorded) { // hint seq 1: seq 2 is taken, seq 3 free but c1 recorded
		t.Fatalf("c1 again, its seq far behind: %v, want ErrRecorded", err)
	}
	if rep := mustVerify(t, ctx, l); !rep.OK() || rep.Records != 2 {
		t.Fatalf("trail after the refusals: %+v", rep)
	}
}

// TestInsertLinkedRecords: records made by Link are stored at their place,
// a second Insert of one is ErrRecorded and stores nothing, and a record
// whose seq another command's record took (a chain head its maker did not
// know) is appended at the head instead; the chain verifies throughout.
func TestInsertLinkedRecords(t *testing.T) {
	ctx := testCtx(t)
	l := New(newDB(t))
	if err := l.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	r1, err := Link(memberRec("m1", "261201090000-0000001", "000_000"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Insert(ctx, r1); err != nil || got.Seq != 1 {
		t.Fatalf("Insert: %+v, %v", got, err)
	}
	if _, err := l.Insert(ctx, r1); !errors.Is(err, ErrRecorded) {
		t.Fatalf("second Insert: %v, want ErrRecorded", err)
	}
	r2, _ := Link(memberRec("m1", "261201090000-0000002", "000_000"), r1.Seq, r1.Hash)
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
