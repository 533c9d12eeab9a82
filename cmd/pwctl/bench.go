package main

import (
	"context"
	"flag"
	"io"
	"path/filepath"

	"github.com/kmwallet/pinreset/internal/bench"
)

// benchCmd is pwctl bench (make bench): flags into bench.Config, the JSON
// summary to stdout, the steps to stderr. It measures the service against
// the physical limit of its PIN hashing, on this machine, in one run (see
// README, Performance), starting the embedded infrastructure, the ingress
// and the worker from the binaries in -bin-dir as separate processes.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := bench.DefaultConfig()
	fs.StringVar(&c.BinDir, "bin-dir", c.BinDir, "directory holding the sandbox, ingress and worker binaries")
	fs.StringVar(&c.SandboxDir, "sandbox-dir", c.SandboxDir, "the sandbox's settings (asps.json, sandbox.env)")
	fs.DurationVar(&c.Saturate, "saturate", c.Saturate, "length of each saturation run")
	fs.DurationVar(&c.Light, "light", c.Light, "length of the light-load run")
	fs.IntVar(&c.Members, "members", c.Members, "members seeded per hashing setting")
	fs.StringVar(&c.Plot, "plot", c.Plot, "write the saturation run's latency and throughput plot to this PNG")
	if err := fs.Parse(args); err != nil {
		return err
	}
	creds, err := credentials(filepath.Join(c.SandboxDir, "asps.json"), "")
	if err != nil {
		return err
	}
	c.Credentials, c.Log = creds, stderr
	sum, err := bench.Run(ctx, c)
	if err != nil {
		return err
	}
	return sum.WriteJSON(stdout)
}
