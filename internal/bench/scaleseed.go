package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/loadgen"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// seedLarge seeds the large setup's data in bulk, without the API:
// LargeMembers members in ASPs of ASPMembers (scaleASP(0), (1), ...), then
// Decisions outcome records completed at even steps over the retention
// (from Retention - 1 h ago to a minute ago, so the worker's own sweep at
// its start deletes none). It reports each part's time.
func (r *scaleRun) seedLarge(ctx context.Context) error {
	cfg, s := r.cfg, &r.s
	toSeed := cfg.LargeMembers
	asps := (toSeed + cfg.ASPMembers - 1) / cfg.ASPMembers
	sizeOf := func(i int) int { return min(cfg.ASPMembers, toSeed-i*cfg.ASPMembers) }

	start := time.Now()
	bar := newProgress(r.stderr, "seeding members", toSeed)
	jobs := make(chan int)
	err := r.parallel(ctx, jobs, func(i int) error {
		_, err := loadgen.Seed(ctx, r.store, loadgen.SeedSpec{ASPID: scaleASP(i), Pattern: aspPattern(i), Count: sizeOf(i),
			Batch: min(cfg.ASPMembers, 5000), PINHash: r.pinHash, Now: time.Now()}, nil)
		bar.add(sizeOf(i))
		return err
	}, asps)
	bar.done()
	if err != nil {
		return fmt.Errorf("seed members: %w", err)
	}
	s.SeedMembersSeconds = round2(time.Since(start).Seconds())

	start = time.Now()
	wcfg, err := config.LoadWorker(r.getenv(nil))
	if err != nil {
		return err
	}
	fp, err := compose.NewFingerprinter(wcfg)
	if err != nil {
		return err
	}
	first := start.Add(-cfg.Retention + time.Hour)
	span := cfg.Retention - time.Hour - time.Minute
	batches := (cfg.Decisions + cfg.SeedBatch - 1) / cfg.SeedBatch
	bar = newProgress(r.stderr, "seeding decisions", cfg.Decisions)
	jobs = make(chan int)
	err = r.parallel(ctx, jobs, func(b int) error {
		from, to := b*cfg.SeedBatch, min((b+1)*cfg.SeedBatch, cfg.Decisions)
		os := make([]pinreset.Outcome, 0, to-from)
		for i := from; i < to; i++ {
			o, err := seededOutcome(i, cfg, asps, sizeOf, first.Add(time.Duration(float64(span)*float64(i)/float64(cfg.Decisions))), fp)
			if err != nil {
				return err
			}
			os = append(os, o)
		}
		_, err := r.store.InsertOutcomes(ctx, os)
		bar.add(to - from)
		return err
	}, batches)
	bar.done()
	if err != nil {
		return fmt.Errorf("seed decisions: %w", err)
	}
	s.SeedDecisionsSeconds = round2(time.Since(start).Seconds())
	s.SeedSeconds = round2(s.SeedMembersSeconds + s.SeedDecisionsSeconds)
	r.logf("seeded %d members in %.0f s and %d decisions in %.0f s", toSeed, s.SeedMembersSeconds, cfg.Decisions, s.SeedDecisionsSeconds)
	return nil
}

// seededOutcome is the i-th retained decision: about a member of the
// large population (ASP i mod asps), completed at at, in the load's mix
// (nine in ten PIN sets, half resets; a wrong current PIN; an unknown
// loginId, which has no member), with a real fingerprint of made-up
// content, so that its size is a real record's.
func seededOutcome(i int, cfg ScaleConfig, asps int, sizeOf func(int) int, at time.Time, fp decision.Fingerprinter) (pinreset.Outcome, error) {
	a := i % asps
	aspID := scaleASP(a)
	content := make([]byte, 64)
	_, _ = rand.Read(content)
	f, err := fp.Fingerprint(content)
	if err != nil {
		return pinreset.Outcome{}, err
	}
	o := pinreset.Outcome{ASPID: aspID, CorrelationID: fmt.Sprintf("%s-%07x", at.UTC().Format("060102150405"), i&0xfffffff),
		Kind: pinreset.KindReset, Fingerprint: f, Code: pinreset.CodeSuccess,
		MemberID: loadgen.MemberID(aspID, fmt.Sprintf(aspPattern(a), (i/asps)%sizeOf(a))), AcceptedAt: at.Add(-20 * time.Millisecond), CompletedAt: at, WorkerID: "bench-scale-seed"}
	switch i % 20 {
	case 1, 3, 5, 7, 9, 11, 13, 15, 17:
		o.Kind = pinreset.KindChange
	case 18:
		o.Kind, o.Code = pinreset.KindChange, pinreset.CodeInvalidUserInfo
	case 19:
		o.Code, o.MemberID = pinreset.CodeUserNotFound, ""
	}
	return o, nil
}

// parallel runs do for 0 to n-1 on SeedWorkers goroutines, fed through
// jobs, and returns the first error (the others stop taking jobs).
func (r *scaleRun) parallel(ctx context.Context, jobs chan int, do func(int) error, n int) error {
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	failed := make(chan struct{})
	for range max(r.cfg.SeedWorkers, 1) {
		wg.Go(func() {
			for j := range jobs {
				if err := do(j); err != nil {
					once.Do(func() { first = err; close(failed) })
				}
			}
		})
	}
feed:
	for j := range n {
		select {
		case jobs <- j:
		case <-failed:
			break feed
		case <-ctx.Done():
			once.Do(func() { first = ctx.Err(); close(failed) })
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return first
}

// progress is a progress bar on one line of w, rewritten at most twice a
// second, for the seeding's minutes.
type progress struct {
	w     io.Writer
	what  string
	total int
	start time.Time
	n     atomic.Int64
	mu    sync.Mutex
	last  time.Time
}

func newProgress(w io.Writer, what string, total int) *progress {
	return &progress{w: w, what: what, total: total, start: time.Now()}
}

func (p *progress) add(n int) {
	p.n.Add(int64(n))
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) >= 500*time.Millisecond {
		p.last = time.Now()
		fmt.Fprintf(p.w, "\r%s", p.line())
	}
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r%s\n", p.line())
}

func (p *progress) line() string {
	n := int(p.n.Load())
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(n)/float64(p.total), 1)
	}
	const width = 30
	el := time.Since(p.start).Seconds()
	rate := float64(n) / max(el, 1e-9)
	eta := ""
	if rate > 0 && n < p.total {
		eta = fmt.Sprintf(", %.0f s to go", float64(p.total-n)/rate)
	}
	return fmt.Sprintf("bench-scale: %s [%s%s] %d/%d, %.0f/s, %.0f s%s ", p.what,
		strings.Repeat("#", int(frac*width)), strings.Repeat(".", width-int(frac*width)), n, p.total, rate, el, eta)
}
