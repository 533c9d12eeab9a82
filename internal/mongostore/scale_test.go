package mongostore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// BenchmarkCommitScale: the store's cost of a decision (find the member by
// login, commit the next version) must not grow with the number of members
// of the ASP, nor must the bulk insert's rate fall with it. A platform has a
// million members per ASP; this seeds n members of one ASP and commits
// decisions about members spread over them. It reports the seeding rate
// (seeded-members/s) and the commit's p50 and p99 (p50-ms, p99-ms); compare
// within one run.
//
// index=aspLogin is the store as it is (EnsureIndexes, then the bulk path
// of pwctl and loadgen). index=legacy is a database of an earlier version:
// member documents without aspLogin under the unique index on (aspId,
// loginId), seeded and committed to as that version did (commitLegacy:
// legacy-p50-ms, legacy-p99-ms), then migrated by EnsureIndexes
// (migrate-s) and committed to again. The larger sizes take minutes
// (legacy at 64000: ten and more, give -timeout); pick them with -bench
// 'CommitScale/members=16000/'. Right after the bulk insert, the first
// reads of a collection larger than the sandbox's shared buffers are
// slower (256000: the p99), whatever the index.
func BenchmarkCommitScale(b *testing.B) {
	for _, n := range []int{1000, 4000, 16000, 64000, 256000} {
		b.Run(fmt.Sprintf("members=%d/index=aspLogin", n), func(b *testing.B) { benchCommitScale(b, n, false) })
		b.Run(fmt.Sprintf("members=%d/index=legacy", n), func(b *testing.B) { benchCommitScale(b, n, true) })
	}
}

const scaleASP = "KMTESTASP000001"

func scaleLogin(i int) string { return fmt.Sprintf("m%07d@example.com", i) }

func benchCommitScale(b *testing.B, n int, legacy bool) {
	ctx := context.Background()
	_, store := startStore(b, "scale")
	members := store.Database().Collection(mongostore.MembersCollection)
	if legacy {
		if _, err := members.Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys:    bson.D{{Key: "aspId", Value: 1}, {Key: "loginId", Value: 1}},
			Options: options.Index().SetUnique(true).SetName(mongostore.LegacyLoginIndex.Name),
		}); err != nil {
			b.Fatal(err)
		}
	} else if err := store.EnsureIndexes(ctx); err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	start := time.Now()
	for i := 0; i < n; i += batch {
		var ms []pinreset.Member
		var docs []any
		for j := i; j < min(i+batch, n); j++ {
			ms = append(ms, pinreset.Member{ID: fmt.Sprintf("m%07d", j), ASPID: scaleASP, LoginID: scaleLogin(j), PINHash: "h"})
			docs = append(docs, legacyMember(fmt.Sprintf("m%07d", j), scaleASP, scaleLogin(j)))
		}
		var err error
		if legacy {
			// A batch takes longer than the client's operation timeout
			// once the ASP has tens of thousands of members.
			ictx, cancel := context.WithTimeout(ctx, mongostore.MaintenanceTimeout)
			_, err = members.InsertMany(ictx, docs, options.InsertMany().SetOrdered(false))
			cancel()
		} else {
			var got int
			if got, err = store.InsertMembers(ctx, ms); err == nil && got != len(ms) {
				err = fmt.Errorf("%d inserted", got)
			}
		}
		if err != nil {
			b.Fatalf("insert members %d..: %v", i, err)
		}
	}
	// Reported after b.Loop, which deletes what was reported before it.
	metrics := map[string]float64{"seeded-members/s": float64(n) / time.Since(start).Seconds()}

	i := 0
	if legacy {
		var took []time.Duration
		for range 300 {
			took = append(took, commitLegacy(b, members, n, i))
			i++
		}
		metrics["legacy-p50-ms"], metrics["legacy-p99-ms"] = percentiles(took)
		start := time.Now()
		if err := store.EnsureIndexes(ctx); err != nil {
			b.Fatal(err)
		}
		metrics["migrate-s"] = time.Since(start).Seconds()
	}
	var took []time.Duration
	for b.Loop() {
		took = append(took, commitScale(b, store, n, i))
		i++
	}
	metrics["p50-ms"], metrics["p99-ms"] = percentiles(took)
	for unit, v := range metrics {
		b.ReportMetric(v, unit)
	}
}

// commitScale commits the i-th decision: about a member at a stride
// coprime with n, so that the commits spread over the whole ASP. It
// returns how long the read and the commit took.
func commitScale(b *testing.B, store *mongostore.Store, n, i int) time.Duration {
	cid := fmt.Sprintf("261125120000-%07x", i)
	t0 := time.Now()
	_, err := store.Update(context.Background(), scaleASP, scaleLogin((i*7919)%n), cid, func(m pinreset.Member, _ *pinreset.Outcome) (pinreset.Member, bool, error) {
		next := m
		next.Version++
		next.UpdatedAt = time.Now()
		next.Recent = append(next.Recent, pinreset.Applied{CorrelationID: cid, Code: pinreset.CodeSuccess, At: time.Now()})
		return next, true, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

// commitLegacy is commitScale as an earlier version's store made it, on
// its documents (no aspLogin): a find by aspId and loginId, then an update
// of the next version filtered on the one read, which writes the whole
// document anew on DocumentDB.
func commitLegacy(b *testing.B, members *mongo.Collection, n, i int) time.Duration {
	ctx := context.Background()
	cid := fmt.Sprintf("261125120000-%07x", i)
	t0 := time.Now()
	var m struct {
		ID      string `bson:"_id"`
		Version int64  `bson:"version"`
	}
	if err := members.FindOne(ctx, bson.D{{Key: "aspId", Value: scaleASP}, {Key: "loginId", Value: scaleLogin((i * 7919) % n)}}).Decode(&m); err != nil {
		b.Fatal(err)
	}
	res, err := members.UpdateOne(ctx, bson.D{{Key: "_id", Value: m.ID}, {Key: "version", Value: m.Version}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: m.Version + 1}, {Key: "updatedAt", Value: time.Now()},
			{Key: "recent", Value: bson.A{bson.D{{Key: "cid", Value: cid}, {Key: "code", Value: pinreset.CodeSuccess}, {Key: "at", Value: time.Now()}}}}}}})
	if err != nil || res.MatchedCount != 1 {
		b.Fatalf("commit %s: %v, %+v", m.ID, err, res)
	}
	return time.Since(t0)
}

func percentiles(took []time.Duration) (p50, p99 float64) {
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return ms(took[len(took)/2]), ms(took[len(took)*99/100])
}
