// Command ingress serves POST /api/v1/user/password/reset: it authenticates
// and validates requests, publishes commands to Kafka and waits for their
// results. Configuration is by environment variables (README, Configuration).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kmwallet/pinreset/cmd/ingress/compose"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/ingress"
	"github.com/kmwallet/pinreset/internal/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ingress:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		config.PrintHelp(stderr, "ingress")
		return nil
	}
	if len(args) > 0 {
		config.PrintHelp(stderr, "ingress")
		return fmt.Errorf("unexpected arguments %q", args)
	}
	cfg, err := config.LoadIngress(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log, err := logging.New(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	return ingress.Run(ctx, compose.Config(cfg), log.Named("ingress"), nil)
}
