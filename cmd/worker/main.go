// Command worker consumes password.commands, decides each command against the
// member document in MongoDB and publishes its result. Configuration is by
// environment variables (README, Configuration).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/logging"
	"github.com/kmwallet/pinreset/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		config.PrintHelp(stderr, "worker")
		return nil
	}
	if len(args) > 0 {
		config.PrintHelp(stderr, "worker")
		return fmt.Errorf("unexpected arguments %q", args)
	}
	cfg, err := config.LoadWorker(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log, err := logging.New(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	if limit, tuned := worker.TuneGC(worker.MemoryLimit(cfg.HashConcurrency, cfg.Argon2MemoryKiB), getenv); tuned {
		log.Info("garbage collection by memory limit (GOGC off)", zap.Int64("memory_limit_mib", limit>>20))
	}
	if !worker.MADVFree(getenv) {
		log.Warn("GODEBUG lacks madvdontneed=0: every hash faults its argon2 memory in again (deployments set it; internal/worker/gc.go)")
	}
	return compose.Run(ctx, cfg, log.Named("worker"))
}
