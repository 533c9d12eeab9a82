package mongostore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// BenchmarkCommitScale: the store's cost of a decision (find the member by
// login, commit the next version) must not grow with the number of members
// of the ASP, nor must the bulk insert's rate fall with it. A platform has a
// million members per ASP; this seeds n members of one ASP (the bulk path
// of pwctl and loadgen) and commits decisions about members spread over
// them. It reports the seeding rate (members/s) and the commit's p50 and
// p99; compare the sizes within one run. The larger sizes take minutes:
// pick them with -bench 'CommitScale/members=16000$'.
func BenchmarkCommitScale(b *testing.B) {
	for _, n := range []int{1000, 4000, 16000, 64000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) { benchCommitScale(b, n) })
	}
}

func benchCommitScale(b *testing.B, n int) {
	ctx := context.Background()
	_, store := startStore(b, "scale")
	if err := store.EnsureIndexes(ctx); err != nil {
		b.Fatal(err)
	}
	const asp = "KMTESTASP000001"
	login := func(i int) string { return fmt.Sprintf("m%07d@example.com", i) }
	const batch = 1000
	start := time.Now()
	for i := 0; i < n; i += batch {
		var ms []pinreset.Member
		for j := i; j < min(i+batch, n); j++ {
			ms = append(ms, pinreset.Member{ID: fmt.Sprintf("m%07d", j), ASPID: asp, LoginID: login(j), PINHash: "h"})
		}
		if got, err := store.InsertMembers(ctx, ms); err != nil || got != len(ms) {
			b.Fatalf("insert members %d..: %d, %v", i, got, err)
		}
	}
	seeded := time.Since(start)

	var took []time.Duration
	i := 0
	for b.Loop() {
		// A stride coprime with n: every commit is about another member,
		// spread over the whole ASP.
		l := login((i * 7919) % n)
		cid := fmt.Sprintf("261125120000-%07x", i)
		t0 := time.Now()
		_, err := store.Update(ctx, asp, l, cid, func(m pinreset.Member, _ *pinreset.Outcome) (pinreset.Member, bool, error) {
			next := m
			next.Version++
			next.UpdatedAt = time.Now()
			next.Recent = append(next.Recent, pinreset.Applied{CorrelationID: cid, Code: pinreset.CodeSuccess, At: time.Now()})
			return next, true, nil
		})
		took = append(took, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(n)/seeded.Seconds(), "seeded-members/s")
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
}
