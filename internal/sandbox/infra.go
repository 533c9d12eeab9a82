// Package sandbox runs the embedded infrastructure of the sandbox and the
// tests: a Kafka-protocol broker (franz-go's kfake) and a MongoDB-wire
// database (FerretDB v2 on PostgreSQL with DocumentDB; postgres.go), both
// durable under one data directory, and loads the sandbox's seed data. It is linked into cmd/sandbox and the
// tests only, never into the production binaries.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/v2/ferretdb"
	"github.com/twmb/franz-go/pkg/kfake"
)

// InfraConfig says where the embedded servers listen and keep their data.
type InfraConfig struct {
	// DataDir holds kafka/ (the broker's log and committed offsets), pg/
	// (the PostgreSQL cluster), postgres.log and ferretdb/ (FerretDB's
	// state). Required; created if missing.
	DataDir string
	// KafkaAddr is the broker's listen address. Default 127.0.0.1:9092;
	// "127.0.0.1:0" picks a free port.
	KafkaAddr string
	// MongoAddr is the database's listen address. Default 127.0.0.1:27017.
	MongoAddr string
	// NoKafka and NoMongo leave one of the two servers out (a test that
	// stops the database alone runs them as two processes).
	NoKafka, NoMongo bool
	// Log receives the servers' own logs. Default: discarded.
	Log *slog.Logger
}

// Infra is the running embedded infrastructure.
type Infra struct {
	cfg     InfraConfig
	kafka   *kfake.Cluster
	pg      *postgres
	ferret  *ferretdb.FerretDB
	stopDB  context.CancelFunc
	dbDone  chan struct{}
	brokers []string
}

// StartInfra starts the broker and the database and returns once both accept
// connections.
func StartInfra(ctx context.Context, cfg InfraConfig) (*Infra, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("sandbox: DataDir is required")
	}
	if cfg.KafkaAddr == "" {
		cfg.KafkaAddr = "127.0.0.1:9092"
	}
	if cfg.MongoAddr == "" {
		cfg.MongoAddr = "127.0.0.1:27017"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	kafkaDir := filepath.Join(cfg.DataDir, "kafka")
	if err := os.MkdirAll(kafkaDir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox data dir: %w", err)
	}
	in := &Infra{cfg: cfg}
	if !cfg.NoKafka {
		if err := in.startKafka(kafkaDir); err != nil {
			return nil, err
		}
	}
	if !cfg.NoMongo {
		if err := in.startMongo(ctx); err != nil {
			in.Close()
			return nil, err
		}
		if err := waitTCP(ctx, in.MongoAddr()); err != nil {
			in.Close()
			return nil, err
		}
	}
	return in, nil
}

func (in *Infra) startKafka(dir string) error {
	host, port, err := splitAddr(in.cfg.KafkaAddr)
	if err != nil {
		return fmt.Errorf("kafka address: %w", err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// Every produce is fsynced before it is acknowledged, so a killed
		// sandbox loses nothing it acknowledged.
		kfake.DataDir(dir), kfake.SyncWrites(),
		kfake.ClusterID("pinreset-sandbox"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		// Workers that are killed must lose their partitions quickly.
		kfake.GroupMinSessionTimeout(time.Second),
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start embedded kafka on %s: %w", in.cfg.KafkaAddr, err)
	}
	in.kafka = c
	in.brokers = c.ListenAddrs()
	return nil
}

func (in *Infra) startMongo(ctx context.Context) error {
	pg, err := startPostgres(ctx, filepath.Join(in.cfg.DataDir, "pg"), in.cfg.Log)
	if err != nil {
		return err
	}
	in.pg = pg
	stateDir := filepath.Join(in.cfg.DataDir, "ferretdb")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("sandbox data dir: %w", err)
	}
	off := false
	f, err := ferretdb.New(&ferretdb.Config{
		PostgreSQLURL: pg.url(),
		ListenAddr:    in.cfg.MongoAddr,
		StateDir:      stateDir,
		LogLevel:      slog.LevelError,
		LogOutput:     slogWriter{in.cfg.Log},
		Telemetry:     &off,
	})
	if err != nil {
		return fmt.Errorf("start embedded database on %s: %w", in.cfg.MongoAddr, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	in.ferret, in.stopDB, in.dbDone = f, cancel, make(chan struct{})
	go func() {
		defer close(in.dbDone)
		f.Run(runCtx)
	}()
	return nil
}

// DatabaseExited is closed when the PostgreSQL server under FerretDB has
// exited: on its own (killed, or a fatal error: DataDir/postgres.log) while
// the Infra runs, or stopped by Close. Nil (never closed) with NoMongo.
func (in *Infra) DatabaseExited() <-chan struct{} {
	if in.pg == nil {
		return nil
	}
	return in.pg.done
}

// Brokers are the broker's addresses (none with NoKafka).
func (in *Infra) Brokers() []string { return in.brokers }

// MongoURI is the database's connection string ("" with NoMongo).
func (in *Infra) MongoURI() string {
	if in.ferret == nil {
		return ""
	}
	return in.ferret.MongoDBURI()
}

// PostgresURL is the connection string of the PostgreSQL server under
// FerretDB ("" with NoMongo), for tests that look beneath the MongoDB wire.
func (in *Infra) PostgresURL() string {
	if in.pg == nil {
		return ""
	}
	return in.pg.url()
}

// MongoAddr is the database's host:port.
func (in *Infra) MongoAddr() string {
	u := in.ferret.MongoDBURI()
	// mongodb://host:port/
	return u[len("mongodb://") : len(u)-1]
}

// Close stops both servers; their data stays on disk.
func (in *Infra) Close() {
	if in.stopDB != nil {
		in.stopDB()
		<-in.dbDone
	}
	if in.pg != nil {
		in.pg.stop(syscall.SIGINT) // fast shutdown: a checkpoint, a quick next start
	}
	if in.kafka != nil {
		in.kafka.Close()
	}
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}

// waitTCP waits until addr accepts connections (FerretDB listens in Run's goroutine).
func waitTCP(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// slogWriter hands FerretDB's log lines (its own text format) to a slog.Logger.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	w.l.Error(strings.TrimSpace(string(b)), "server", "ferretdb")
	return len(b), nil
}
