// Command sandbox runs the whole service on one machine with nothing else
// installed: an embedded Kafka-protocol broker and an embedded MongoDB-wire
// database (durable under -data-dir), the topics and indexes, the sandbox ASP
// and members from deployments/sandbox/, and the ingress and the worker.
// With -infra-only it starts only the broker and the database, so ingress and
// worker can run as separate processes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"

	"github.com/kmwallet/pinreset/cmd/ingress/compose"
	workercompose "github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/ingress"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/logging"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

// ReadyLine is printed once the infrastructure is up (scripts and tests wait for it).
const ReadyLine = "sandbox: infrastructure ready"

// Env is what a started sandbox tells its caller (tests use it).
type Env struct {
	HTTPAddr   string // empty with -infra-only
	Brokers    []string
	MongoURI   string
	Database   string
	SandboxDir string
	Getenv     func(string) string // the settings the services run with
}

type sandboxFlags struct {
	dataDir, sandboxDir            string
	httpAddr, kafkaAddr, mongoAddr string
	infraOnly                      bool
	infra                          string
	ingressAdmin, workerAdmin      string
	cpuProfile                     string
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, started func(Env)) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o sandboxFlags
	fs.StringVar(&o.dataDir, "data-dir", ".sandbox", "directory for the broker's log and the database files (kept across restarts)")
	fs.StringVar(&o.sandboxDir, "sandbox-dir", "deployments/sandbox", "directory of asps.json, members.jsonl and sandbox.env")
	fs.StringVar(&o.httpAddr, "http-addr", config.DefaultHTTPAddr, "ingress listen address")
	fs.StringVar(&o.kafkaAddr, "kafka-addr", config.DefaultKafkaBrokers, "embedded Kafka broker listen address")
	fs.StringVar(&o.mongoAddr, "mongo-addr", "127.0.0.1:27017", "embedded MongoDB-wire database listen address")
	fs.StringVar(&o.ingressAdmin, "ingress-admin-addr", config.DefaultIngressAdminAddr, "ingress admin listener (/metrics, /healthz, /readyz); off disables it")
	fs.StringVar(&o.workerAdmin, "worker-admin-addr", config.DefaultWorkerAdminAddr, "worker admin listener (/metrics, /healthz, /readyz); off disables it")
	fs.BoolVar(&o.infraOnly, "infra-only", false, "start only the broker and the database (and load the seed data)")
	fs.StringVar(&o.infra, "infra", "kafka,mongo", "with -infra-only: which embedded servers to start (kafka, mongo or both)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (broker, database and all) to this file, for go tool pprof")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fileEnv, err := config.ReadEnvFile(filepath.Join(o.sandboxDir, "sandbox.env"))
	if err != nil {
		return err
	}

	logLevel := getenv("PINRESET_LOG_LEVEL")
	if logLevel == "" {
		logLevel = "info"
	}
	log, err := logging.New(stderr, logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()

	kafkaOn, mongoOn := true, true
	if o.infraOnly {
		kafkaOn, mongoOn = strings.Contains(o.infra, "kafka"), strings.Contains(o.infra, "mongo")
		if !kafkaOn && !mongoOn {
			return fmt.Errorf("-infra %q names neither kafka nor mongo", o.infra)
		}
	}
	infra, err := sandbox.StartInfra(ctx, sandbox.InfraConfig{
		DataDir: o.dataDir, KafkaAddr: o.kafkaAddr, MongoAddr: o.mongoAddr, NoKafka: !kafkaOn, NoMongo: !mongoOn,
		Log: slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		return err
	}
	defer infra.Close()

	// The services' settings: the process environment wins over sandbox.env,
	// which wins over the sandbox's own addresses.
	env := func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		if v, ok := fileEnv[k]; ok {
			return v
		}
		switch k {
		case "PINRESET_KAFKA_BROKERS":
			return strings.Join(infra.Brokers(), ",")
		case "PINRESET_MONGO_URI":
			return infra.MongoURI()
		case "PINRESET_HTTP_ADDR":
			return o.httpAddr
		case "PINRESET_ASP_FILE":
			return filepath.Join(o.sandboxDir, "asps.json")
		case "PINRESET_JWE_KEYS_DIR":
			return filepath.Join(o.sandboxDir, "jwe")
		}
		return ""
	}
	wcfg, err := config.LoadWorker(env)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if kafkaOn {
		if err := kafkabus.EnsureTopics(ctx, kafkabus.Cluster{Brokers: wcfg.KafkaBrokers}, kafkabus.Topics(wcfg.TopicPartitions, wcfg.TopicReplication, wcfg.TopicMinInSync)); err != nil {
			return err
		}
	}
	if mongoOn {
		if err := prepareDatabase(ctx, wcfg, filepath.Join(o.sandboxDir, "members.jsonl")); err != nil {
			return err
		}
	}
	e := Env{Brokers: infra.Brokers(), MongoURI: infra.MongoURI(), Database: wcfg.MongoDatabase,
		SandboxDir: o.sandboxDir, Getenv: env}

	if o.infraOnly {
		fmt.Fprintf(stdout, "\nEmbedded infrastructure is up (data in %s):\n  Kafka   %s\n  MongoDB %s\nRun ingress and worker with PINRESET_KAFKA_BROKERS=%s PINRESET_MONGO_URI=%s and the settings of %s.\nCtrl-C stops it.\n",
			o.dataDir, strings.Join(infra.Brokers(), ","), infra.MongoURI(), strings.Join(infra.Brokers(), ","), infra.MongoURI(), filepath.Join(o.sandboxDir, "sandbox.env"))
		fmt.Fprintln(stdout, ReadyLine)
		if started != nil {
			started(e)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-infra.DatabaseExited():
			return errDatabaseExited(o.dataDir)
		}
	}

	icfg, err := config.LoadIngress(env)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	// Both run in this process, so each gets its own admin listener.
	icfg.AdminAddr, wcfg.AdminAddr = strings.TrimSuffix(o.ingressAdmin, "off"), strings.TrimSuffix(o.workerAdmin, "off")
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case <-infra.DatabaseExited():
			return errDatabaseExited(o.dataDir)
		}
	})
	g.Go(func() error { return workercompose.Run(gctx, wcfg, log.Named("worker")) })
	g.Go(func() error {
		return ingress.Run(gctx, compose.Config(icfg), log.Named("ingress"), func(addr string) {
			e.HTTPAddr = addr
			printUsage(stdout, addr, o)
			if started != nil {
				started(e)
			}
		})
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// errDatabaseExited: the sandbox does not go on without its database (a
// restart recovers it).
func errDatabaseExited(dataDir string) error {
	return fmt.Errorf("the database's PostgreSQL server exited (log: %s)", filepath.Join(dataDir, "postgres.log"))
}

// prepareDatabase creates the collections and indexes and puts the seed
// members in their seed state.
func prepareDatabase(ctx context.Context, cfg config.Worker, seedFile string) error {
	store, err := mongostore.Open(mongostore.Config{URI: cfg.MongoURI, Database: cfg.MongoDatabase, OperationTimeout: cfg.MongoTimeout})
	if err != nil {
		return err
	}
	defer store.Close(context.WithoutCancel(ctx))
	if err := workercompose.EnsureIndexes(ctx, store); err != nil {
		return err
	}
	// (The seed members go back to their seed PINs below, replay claims
	// included, so the example requests sent again after a restart are not
	// refused as replays.)
	collections := []string{mongostore.MembersCollection, mongostore.OutcomesCollection,
		mongostore.ParkedCollection, mongostore.AuditCollection}
	for _, c := range collections {
		err := store.Database().CreateCollection(ctx, c)
		var ce mongo.CommandError
		if err != nil && !(errors.As(err, &ce) && ce.Name == "NamespaceExists") {
			return fmt.Errorf("create collection %s: %w", c, err)
		}
	}
	members, err := sandbox.LoadSeed(seedFile)
	if err != nil {
		return err
	}
	hasher, err := workercompose.NewHasher(cfg)
	if err != nil {
		return err
	}
	return sandbox.Seed(ctx, store, hasher, members, time.Now())
}

func printUsage(w io.Writer, addr string, o sandboxFlags) {
	fmt.Fprintf(w, `
PIN reset sandbox is up.
  API      http://%[1]s/api/v1/user/password/reset
  Metrics  http://%[6]s/metrics (ingress)  http://%[7]s/metrics (worker)
  Kafka    %[2]s   (kcat -b %[2]s -L)
  MongoDB  %[3]s   (mongosh mongodb://%[3]s/pinreset)
  Data     %[4]s   (kept across restarts; seed members are restored at every start)

Try the four sandbox cases (each prints the response):
  go run ./cmd/pwctl sign -body %[5]s/requests/success.json -curl | sh         # 000_000
  go run ./cmd/pwctl sign -body %[5]s/requests/user-not-found.json -curl | sh  # 001_006
  go run ./cmd/pwctl sign -body %[5]s/requests/same-pin.json -curl | sh        # 001_043
  go run ./cmd/pwctl sign -body %[5]s/requests/info-mismatch.json -curl | sh   # 001_035
Ctrl-C stops it.
`, addr, o.kafkaAddr, o.mongoAddr, o.dataDir, o.sandboxDir, o.ingressAdmin, o.workerAdmin)
}
