package ingress

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/kmwallet/pinreset/internal/admin"
	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/jwe"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/retry"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/tracing"
	"github.com/kmwallet/pinreset/internal/wire"
)

// Run serves the API on cfg.HTTPAddr until ctx ends. If listening is non-nil
// it receives the bound address once the server accepts requests (tests bind
// port 0). Shutdown order: stop accepting, let in-flight requests finish (up
// to ShutdownTimeout), stop tailing results, flush the producer.
func Run(ctx context.Context, cfg config.Ingress, log *zap.Logger, listening func(addr string)) error {
	registry, err := asp.Load(cfg.ASPFile)
	if err != nil {
		return fmt.Errorf("PINRESET_ASP_FILE: %w", err)
	}
	ring, err := seal.ParseKeyring("PINRESET_SEAL_KEYS", cfg.SealKeys)
	if err != nil {
		return err
	}
	opts := Options{
		TranWindow: cfg.TranWindow, ResultWait: cfg.ResultWait, CommandTTL: cfg.CommandTTL,
		MaxBodyBytes: cfg.MaxBodyBytes, PINPolicy: pinreset.PINPolicy{Enabled: cfg.PINPolicy}, MaxInFlight: cfg.MaxInFlight,
		MemberRate: Rate{N: cfg.MemberRate.N, Per: cfg.MemberRate.Per}, ASPRate: Rate{N: cfg.ASPRate.N, Per: cfg.ASPRate.Per},
		InstanceID: cfg.IngressID,
	}
	if cfg.JWEKeysDir != "" {
		keys, err := jwe.LoadKeyring(cfg.JWEKeysDir)
		if err != nil {
			return fmt.Errorf("PINRESET_JWE_KEYS_DIR: %w", err)
		}
		clients, err := clientKeys(registry)
		if err != nil {
			return fmt.Errorf("PINRESET_ASP_FILE: %w", err)
		}
		opts.JWE, opts.ClientKeys = keys, clients
	}
	cluster, err := kafkabus.ClusterFromSettings(cfg.Kafka)
	if err != nil {
		return err
	}
	// The tail is positioned before the first request is accepted, so no
	// result of ours can be produced before we read from there. A broker
	// that is not up yet is waited for.
	var tail *kafkabus.Tail
	if err := retry.Until(ctx, log, "prepare topics and the results tail", kafkabus.Fatal, func() error {
		if cfg.CreateTopics {
			if err := kafkabus.EnsureTopics(ctx, cluster, kafkabus.Topics(cfg.TopicPartitions, cfg.TopicReplication, cfg.TopicMinInSync)); err != nil {
				return err
			}
		}
		tail, err = kafkabus.StartTail(ctx, cluster, kafkabus.TopicResults, log)
		return err
	}); err != nil {
		return err
	}
	defer tail.Close()
	// The loops of this process: readiness names those waiting on Kafka,
	// liveness fails for one that ended.
	mon := health.New()
	producer := kafkabus.NewProducer(cluster, kafkabus.ProducerConfig{})
	defer producer.Close()

	ready := func(ctx context.Context) error {
		return errors.Join(kafkabus.Ping(ctx, cluster, kafkabus.TopicCommands, kafkabus.TopicResults), mon.Ready())
	}
	srv := NewServer(registry, producer, ring, opts, log, ready)
	srv.Liveness(mon.Live)
	reg := metrics.NewRegistry()
	srv.Measure(reg)
	tp, stopTracing, err := tracing.Setup(ctx, cfg.TracesExporter, cfg.TracesFile, "pinreset-ingress")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.WithoutCancel(ctx)) }() // after the server stopped: flushes the last spans
	srv.Trace(tp)

	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.ResultWait + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("PINRESET_HTTP_ADDR: %w", err)
	}

	tailCtx, stopTail := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTail()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// A tail that ended while the ingress serves would leave waiters
		// without results: liveness reports it.
		loop := mon.Loop("results tail", time.Hour)
		defer loop.Exited(errors.New("stopped"))
		return tail.Run(tailCtx, loop, func(m kafka.Message) {
			r, err := wire.DecodeResult(m.Value)
			if err != nil {
				log.Warn("undecodable result", zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(err))
				return
			}
			srv.Deliver(r)
		})
	})
	g.Go(func() error {
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	adminRoutes := admin.Handler
	if cfg.AdminPprof {
		adminRoutes = admin.WithProfiles
	}
	if cfg.AdminAddr != "" {
		g.Go(func() error {
			return admin.Serve(gctx, cfg.AdminAddr, adminRoutes(reg, mon.Live, ready, log), func(a string) {
				log.Info("admin listening", zap.String("addr", a))
			})
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		err := httpSrv.Shutdown(sctx)
		stopTail() // only once no request waits any more
		return err
	})
	log.Info("ingress listening", zap.String("addr", ln.Addr().String()))
	if listening != nil {
		listening(ln.Addr().String())
	}
	err = g.Wait()
	log.Info("ingress stopped", zap.Error(err))
	return err
}

// clientKeys parses the registered client public keys once, at start.
func clientKeys(reg *asp.Registry) (ClientKeys, error) {
	type clientKey struct {
		key *rsa.PublicKey
		kid string
	}
	keys := map[string]clientKey{}
	for _, a := range reg.All() {
		if a.ClientPublicKey == "" {
			continue
		}
		k, err := jwe.ParsePublicKeyPEM([]byte(a.ClientPublicKey))
		if err != nil {
			return nil, fmt.Errorf("asp %s clientPublicKey: %w", a.ID, err)
		}
		keys[a.ID] = clientKey{k, a.ClientKeyID}
	}
	return func(aspID string) (*rsa.PublicKey, string, bool) {
		k, ok := keys[aspID]
		return k.key, k.kid, ok
	}, nil
}
