package decision_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/decision/decisiontest"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// roundTrips counts the database commands a client sends, by name, with
// mongo-driver's command monitor: each is one round trip to the server.
// waits counts the round trips the caller waits for one after another: a
// command started while another is in flight (the member and the
// transaction's outcome read at once) adds none.
type roundTrips struct {
	mu       sync.Mutex
	counts   map[string]int
	total    int
	waits    int
	inFlight int
}

func (r *roundTrips) monitor() *event.CommandMonitor {
	done := func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.inFlight--
	}
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.counts[e.CommandName]++
		r.total++
		if r.inFlight == 0 {
			r.waits++
		}
		r.inFlight++
	}, Succeeded: func(context.Context, *event.CommandSucceededEvent) { done() },
		Failed: func(context.Context, *event.CommandFailedEvent) { done() }}
}

func (r *roundTrips) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts, r.total, r.waits = map[string]int{}, 0, 0
}

// sequential is how many round trips were waited for one after another.
func (r *roundTrips) sequential() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waits
}

func (r *roundTrips) snapshot() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.counts))
	for n := range r.counts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s:%d ", n, r.counts[n])
	}
	return r.total, strings.TrimSpace(b.String())
}

// resultPublisher records what the processor publishes and how many round
// trips had been made when the result went out (the client's answer).
type resultPublisher struct {
	trips       *roundTrips
	mu          sync.Mutex
	beforeReply int // round trips when the result was published; -1 until then
	waitsBefore int // of them waited for one after another
	results     []pinreset.Result
}

func (p *resultPublisher) Answer(_ context.Context, r pinreset.Result) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.results = append(p.results, r)
	if p.beforeReply < 0 {
		p.beforeReply, _ = p.trips.snapshot()
		p.waitsBefore = p.trips.sequential()
	}
	return nil
}

func (p *resultPublisher) Announce(context.Context, []pinreset.Event) error { return nil }

// TestRoundTrips counts the MongoDB round trips of one command's journey
// through Service.Handle, with the real store on FerretDB, for each kind
// of path, and holds each to its count: a regression guard. `go test -v
// -run RoundTrips` prints the table.
func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	d := decisiontest.NewDeps(t)
	in, hasher, fingerprints := d.Infra, d.Hasher, d.Fingerprints
	trips := &roundTrips{counts: map[string]int{}}
	store, err := mongostore.Open(mongostore.Config{URI: in.MongoURI(), Database: "roundtrips", Monitor: trips.monitor()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(context.Background()) })
	if err := compose.EnsureIndexes(ctx, store); err != nil {
		t.Fatal(err)
	}
	pub := &resultPublisher{trips: trips, beforeReply: -1}
	svc := &decision.Service{Store: store, Trail: mongostore.NewAuditLog(store.Database()), Fingerprinter: fingerprints,
		Publisher: pub, Hasher: hasher, Rules: pinreset.DefaultRules(), WorkerID: "w-roundtrips"}

	const asp = "KMTESTASP000001"
	ci := strings.Repeat("QkM9", 22) // 88 characters
	for _, login := range []string{"set", "history", "samepin", "cimismatch"} {
		h, err := hasher.Hash("246810")
		if err != nil {
			t.Fatal(err)
		}
		// "history" is at version 18, as a long-lived member is (before the
		// redesign its commit also swept an old version: a write more).
		puts := 1
		if login == "history" {
			puts = 18
		}
		for range puts {
			if err := store.PutMember(ctx, pinreset.Member{ID: "m-" + login, ASPID: asp, LoginID: login + "@example.com", CI: ci, PINHash: h}); err != nil {
				t.Fatal(err)
			}
		}
	}
	seq := 0
	message := func(kind pinreset.Kind, login, ci, cur, next string) pinreset.Command {
		seq++
		now := time.Now().UTC()
		return pinreset.Command{CorrelationID: fmt.Sprintf("261201120000-%07x", seq), RequestID: fmt.Sprintf("%016x", seq), ASPID: asp,
			Kind: kind, LoginID: login, CI: ci, CurrentPIN: cur, NewPIN: next, AcceptedAt: now, ExpiresAt: now.Add(2 * time.Minute)}
	}
	set := message(pinreset.KindChange, "set@example.com", ci, "246810", "581379")

	// A command first, so that the client holds the connections a busy
	// worker's pool has (the two reads at once need two).
	if _, err := svc.Handle(ctx, message(pinreset.KindReset, "warmup@example.com", "", "", "581379")); err != nil {
		t.Fatal(err)
	}

	// "before" counts up to the publish of the result, "all" to the end of
	// Handle (the delivery: events, audit record, outcome record). Waits
	// are the round trips waited for one after another: the member and the
	// transaction's outcome record are read at once (commands adds one),
	// the member through its (aspId, loginId) index, the outcome by _id;
	// the wait targets are what the design allows when they overlap.
	for _, tc := range []struct {
		path                    string
		msg                     pinreset.Command
		code                    pinreset.Code
		waitsBefore, waitsAll   int
		commandsBefore, cmdsAll int
	}{
		{"PIN set (change)", set, pinreset.CodeSuccess, 2, 4, 3, 5},
		{"PIN set, long history", message(pinreset.KindChange, "history@example.com", ci, "246810", "581379"), pinreset.CodeSuccess, 2, 4, 3, 5},
		// A no-change outcome is a decision like any other (a version, the
		// history, the outbox), so that a redelivery finds it in the
		// member's history (no argon2 again): the same writes.
		{"same PIN (no change)", message(pinreset.KindReset, "samepin@example.com", "", "", "246810"), pinreset.CodeSamePIN, 2, 4, 3, 5},
		{"CI mismatch (no change)", message(pinreset.KindChange, "cimismatch@example.com", strings.Repeat("QUJD", 22), "246810", "581379"), pinreset.CodeInvalidUserInfo, 2, 4, 3, 5},
		{"unknown member", message(pinreset.KindReset, "nobody@example.com", "", "", "581379"), pinreset.CodeUserNotFound, 2, 3, 3, 4},
		{"redelivered, already decided", set, pinreset.CodeSuccess, 1, 1, 2, 2},
		{"status query", pinreset.NewStatusQuery(set.CorrelationID, "q1", asp, time.Now(), time.Minute), pinreset.CodeSuccess, 1, 1, 1, 1},
	} {
		trips.reset()
		pub.mu.Lock()
		pub.beforeReply, pub.waitsBefore, pub.results = -1, -1, nil
		pub.mu.Unlock()
		if _, err := svc.Handle(ctx, tc.msg); err != nil {
			t.Fatalf("%s: Handle: %v", tc.path, err)
		}
		all, detail := trips.snapshot()
		waitsAll := trips.sequential()
		pub.mu.Lock()
		before, waitsBefore, results := pub.beforeReply, pub.waitsBefore, pub.results
		pub.mu.Unlock()
		if len(results) != 1 || results[0].Code != tc.code {
			t.Fatalf("%s: results %+v, want one %s", tc.path, results, tc.code)
		}
		t.Logf("%-30s waits before the answer %d (target <= %d), in all %d (<= %d); commands %d and %d (<= %d, %d); %s",
			tc.path, waitsBefore, tc.waitsBefore, waitsAll, tc.waitsAll, before, all, tc.commandsBefore, tc.cmdsAll, detail)
		// The commands sent are the guard; whether the two reads overlap
		// is up to the scheduler of a shared machine, so the waits are
		// reported, not held to.
		if before > tc.commandsBefore || all > tc.cmdsAll {
			t.Errorf("%s: %d/%d commands before the answer and in all; targets %d/%d (waits %d/%d)",
				tc.path, before, all, tc.commandsBefore, tc.cmdsAll, waitsBefore, waitsAll)
		}
	}
}
