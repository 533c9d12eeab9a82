package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/loadgen"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

const membersUsage = `usage: pwctl members <command> [flags]

commands:
  seed     create load-test members in bulk, all with one PIN (pwctl load's members)
  import   import members from JSON Lines: bad lines reported and skipped, re-runs idempotent
  show     print a member's state (never its PIN hash)
  add      add one member (its PIN hashed as the worker does)
  repair   give a member whose document is damaged (runbook, Damaged members)
           a new PIN and a clean state, keeping its id, ASP, loginId and CI,
           through the decision path: one conditional update, a
           password.changed event, an audit record with -operator (default
           $USER) and -reason (required), an outcome record

pwctl members seed hashes the PIN as the worker does, so it needs the
worker's environment: PINRESET_PEPPERS, PINRESET_SEAL_KEYS and
PINRESET_FINGERPRINT_KEYS (required by the worker's configuration, e.g.
from deployments/sandbox/sandbox.env), and
PINRESET_ARGON2_MEMORY_KIB, PINRESET_ARGON2_TIME, PINRESET_ARGON2_THREADS if
the worker runs with other than the defaults.
`

// membersCmd is `pwctl members`: tools for the member collection.
func membersCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return membersCmdEnv(ctx, args, os.Getenv, stdout, stderr)
}

// membersCmdEnv is membersCmd reading the worker's settings through getenv
// (tests pass their own).
func membersCmdEnv(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, membersUsage)
		if len(args) == 0 {
			return errors.New("members: no command")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "seed":
		return membersSeed(ctx, args[1:], getenv, stdout, stderr)
	case "import":
		return membersImport(ctx, args[1:], getenv, stdout, stderr)
	case "show":
		return membersShow(ctx, args[1:], getenv, stdout, stderr)
	case "add":
		return membersAdd(ctx, args[1:], getenv, stdout, stderr)
	case "repair":
		return membersRepair(ctx, args[1:], getenv, stdout, stderr)
	default:
		fmt.Fprint(stderr, membersUsage)
		return fmt.Errorf("members: unknown command %q", args[0])
	}
}

// membersSeed creates -count members with one PIN, in bulk.
func membersSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl members seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	count := fs.Int("count", 1000, "number of members: indexes 0 to count-1 of -pattern")
	pin := fs.String("pin", "240810", "the PIN every member gets (pwctl load -initial-pin)")
	pattern := fs.String("pattern", "load%06d@sandbox.example", "loginId pattern; %d is the member's index (pwctl load -members)")
	aspID := fs.String("asp", "KMSANDBOXASP001", "ASP id the members belong to")
	mongoURI := fs.String("mongo-uri", "", "MongoDB connection string (default: PINRESET_MONGO_URI, else mongodb://127.0.0.1:27017/)")
	db := fs.String("db", "", "database name (default: PINRESET_MONGO_DATABASE, else pinreset)")
	showProgress := fs.Bool("progress", isTerminal(stderr), "show a progress bar on standard error (default: when standard error is a terminal)")
	batch := fs.Int("batch", 1000, "members per bulk insert")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: pwctl members seed [flags]\n\n"+
			"Creates members in bulk (unordered inserts; members already there are\n"+
			"left as they are, so a re-run is idempotent). Needs the worker's\n"+
			"environment (PINRESET_PEPPERS, PINRESET_SEAL_KEYS, PINRESET_FINGERPRINT_KEYS,\n"+
			"PINRESET_ARGON2_*) to "+
			"hash the PIN as the worker does.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("members seed: unexpected argument %q", fs.Arg(0))
	case *count < 1:
		return errors.New("-count must be at least 1")
	case *batch < 1:
		return errors.New("-batch must be at least 1")
	case !pinreset.IsPIN(*pin):
		return errors.New("-pin must be 6 digits")
	case *aspID == "":
		return errors.New("-asp is required")
	}
	if err := loadgen.CheckPattern(*pattern); err != nil {
		return fmt.Errorf("-pattern: %w", err)
	}
	hasher, store, err := openAsWorker(ctx, getenv, *mongoURI, *db)
	if err != nil {
		return err
	}
	defer store.Close(context.WithoutCancel(ctx))
	// One hash, hence one salt, for every member. Salt reuse across seeded
	// benchmark members is acceptable for load data (they are public test
	// accounts with one known PIN) and is what makes seeding a million
	// members take seconds instead of hours of argon2. Each member gets its
	// own salt at its first PIN set. Never seed real members this way.
	hash, err := hasher.Hash(*pin)
	if err != nil {
		return fmt.Errorf("hash the PIN: %w", err)
	}

	began := time.Now()
	bar := progressbar.NewOptions(*count,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetVisibility(*showProgress),
		progressbar.OptionSetDescription("seeding members"),
		progressbar.OptionSetItsString("members"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	progress := func(done int) { _ = bar.Set(done) }
	inserted, err := loadgen.Seed(ctx, store, loadgen.SeedSpec{ASPID: *aspID, Pattern: *pattern, Count: *count, Batch: *batch,
		PINHash: hash, Now: began}, progress)
	if err != nil {
		if *showProgress && !bar.IsFinished() { // stopped by an error: end the bar's line
			fmt.Fprintln(stderr)
		}
		return err
	}
	took := time.Since(began)
	fmt.Fprintf(stdout, "seeded %d members (%d new, %d already there) of %s in %s (%.0f members/s)\n",
		*count, inserted, *count-inserted, *aspID, took.Round(time.Millisecond), float64(*count)/took.Seconds())
	return nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// openAsWorker builds the PIN hasher exactly as the worker does, from the
// worker's environment, and opens the store (uri and db default to the
// worker's) with its indexes in place. The caller closes the store.
func openAsWorker(ctx context.Context, getenv func(string) string, uri, db string) (*pinhash.Hasher, *mongostore.Store, error) {
	cfg, err := config.LoadWorker(getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("the worker's environment is needed to hash PINs as the worker does: %w", err)
	}
	if uri == "" {
		uri = cfg.MongoURI
	}
	if db == "" {
		db = cfg.MongoDatabase
	}
	hasher, err := compose.NewHasher(cfg)
	if err != nil {
		return nil, nil, err
	}
	store, err := mongostore.Open(mongostore.Config{URI: uri, Database: db})
	if err != nil {
		return nil, nil, err
	}
	if err := store.EnsureIndexes(ctx); err != nil {
		store.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return hasher, store, nil
}
