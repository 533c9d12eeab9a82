package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kmwallet/pinreset/internal/bench"
)

// benchScaleCmd is pwctl bench-scale (make bench-scale): flags into
// bench.ScaleConfig, the JSON summary to stdout, the steps and the
// seeding's progress to stderr. It runs the pipeline with cheap hashing
// at a small and at a platform's size of data, seeded in bulk, and the
// retention sweep under load (docs/performance.md, "make bench-scale").
func benchScaleCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl bench-scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := bench.DefaultScaleConfig()
	fs.StringVar(&c.BinDir, "bin-dir", c.BinDir, "directory holding the sandbox, ingress and worker binaries")
	fs.StringVar(&c.SandboxDir, "sandbox-dir", c.SandboxDir, "the sandbox's settings (asps.json, sandbox.env)")
	fs.IntVar(&c.SmallMembers, "small-members", c.SmallMembers, "members of the small setup (a database of their own)")
	fs.IntVar(&c.LargeMembers, "large-members", c.LargeMembers, "members seeded in bulk into the large setup's database")
	fs.IntVar(&c.ASPMembers, "asp-members", c.ASPMembers, "members per ASP of the large setup (and loaded by each large run)")
	fs.IntVar(&c.Decisions, "decisions", c.Decisions, "retained decisions (outcome records) seeded for the large run")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "load on each of the small and the large setup, in -segments runs of each, alternately")
	fs.IntVar(&c.Segments, "segments", c.Segments, "runs of each setup the -duration is split into, small and large alternately")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "closed-loop clients of each run")
	fs.IntVar(&c.SeedWorkers, "seed-workers", c.SeedWorkers, "bulk inserts at once while seeding")
	probe := fs.String("probe-sizes", joinInts(c.ProbeSizes), "sizes one ASP is grown through to time its members' commits (comma-separated; empty: no probe)")
	fs.IntVar(&c.HashRounds, "hash-rounds", c.HashRounds, "hashes timed per argon2 implementation")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.ProbeSizes = nil
	for _, f := range strings.Split(*probe, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("-probe-sizes: %q is not a positive number", f)
		}
		c.ProbeSizes = append(c.ProbeSizes, n)
	}
	creds, err := credentials(filepath.Join(c.SandboxDir, "asps.json"), "")
	if err != nil {
		return err
	}
	c.Credentials, c.Log = creds, stderr
	sum, err := bench.RunScale(ctx, c)
	if err != nil {
		return err
	}
	return sum.WriteJSON(stdout)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
