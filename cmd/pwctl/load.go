package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/kmwallet/pinreset/internal/loadgen"
)

const loadHelp = `usage: pwctl load [flags]

Sends signed PIN reset and change requests to the API and reports throughput,
latency percentiles and the answers. The members must exist, all with the
same PIN: create them with 'pwctl members seed' (same -asp, -pattern/-members,
-count/-member-count and -pin/-initial-pin).

Closed model (-concurrency C): C workers, each sending its next request when
the last one is answered; latency runs from the send. Open model (-rate R):
R arrivals a second on a fixed schedule, each in its own goroutine, whatever
the server does; an arrival that finds -max-inflight requests in flight, or
no member free, is dropped and counted, never delayed, and latency runs from
the scheduled arrival, so a slow server shows as latency instead of slowing
the generator down (no coordinated omission).

Every request is realistic: a fresh 6-digit PIN the PIN policy accepts, never
one the member had before in this run (so no 001_043 and no 001_409), the
member's current PIN for a change, and never two requests for one member at
once. A 202 answer is polled with GET until final; the latency is until the
final answer. -fail-share of the requests are meant to fail: changes with a
wrong current PIN (001_035, at most -max-wrong per member between successes,
so no member locks) and requests for members that do not exist (001_006).

flags:
`

// loadCmd is pwctl load, the load generator: flags into loadgen.Options,
// the report to stdout.
func loadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loadHelp)
		fs.PrintDefaults()
	}
	o := loadgen.DefaultOptions()
	fs.StringVar(&o.URL, "url", o.URL, "API URL of the POST requests (GET polls go to the Location answered with 202)")
	aspFile := fs.String("asp-file", "deployments/sandbox/asps.json", "ASP registry file holding the ASP's credentials")
	aspID := fs.String("asp", "", "ASP id (default: the only or first ASP of -asp-file)")
	fs.StringVar(&o.Members, "members", o.Members, "loginId pattern of the seeded members; %d is the index, 0 to -member-count - 1")
	fs.IntVar(&o.MemberCount, "member-count", o.MemberCount, "number of seeded members; keep it well above -concurrency (or the in-flight count of -rate)")
	fs.StringVar(&o.InitialPIN, "initial-pin", o.InitialPIN, `the PIN every member has at the start; "" if unknown (members used by an earlier run): each member's first request is then a reset`)
	fs.IntVar(&o.Requests, "requests", o.Requests, "stop after this many requests (open model: arrivals, dropped ones included)")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "stop starting requests after this long (with -requests: whichever comes first)")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "closed model: this many workers sending back to back (default 10 when -rate is not given)")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "open model: this many arrivals per second on a fixed schedule")
	fs.IntVar(&o.MaxInflight, "max-inflight", o.MaxInflight, "open model: bound on requests in flight; an arrival finding it full is dropped")
	fs.Float64Var(&o.Mix, "mix", o.Mix, "share of resets (isResetPassword true); the rest are changes")
	fs.Float64Var(&o.FailShare, "fail-share", o.FailShare, "share of requests meant to fail: wrong current PIN (001_035) or unknown member (001_006)")
	fs.IntVar(&o.MaxWrong, "max-wrong", o.MaxWrong, "wrong-PIN changes per member between two successes; keep it below the service's PINRESET_LOCK_AFTER (5)")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "give up on one request, polls included, after this long (counted as an error)")
	jsonOut := fs.Bool("json", false, "print one JSON object instead of the text report")
	fs.StringVar(&o.PlotFile, "plot", o.PlotFile, "write a PNG of the latency distribution and of the throughput over time (1 s buckets) to this file")
	progress := fs.Bool("progress", isTerminal(stderr), "show a progress line on standard error (default: when standard error is a terminal)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("load: unexpected argument %q", fs.Arg(0))
	}
	if err := o.Check(); err != nil {
		return err
	}
	creds, err := credentials(*aspFile, *aspID)
	if err != nil {
		return err
	}
	if o.Concurrency > 0 && o.MemberCount <= o.Concurrency {
		fmt.Fprintf(stderr, "pwctl load: warning: %d members for %d workers: workers wait for a free member\n", o.MemberCount, o.Concurrency)
	}
	if *progress {
		o.Progress = stderr
	}
	rep, err := loadgen.Run(ctx, o, creds)
	if err != nil {
		return err
	}
	if *jsonOut {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		rep.Print(stdout, o)
	}
	return nil
}
