package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/mongostore"
)

// bootstrapCmd creates the topics and the indexes the service needs, as an
// explicit, idempotent deployment step, so that production never depends on
// topic auto-creation (run the services with PINRESET_CREATE_TOPICS=false).
func bootstrapCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", envOr("PINRESET_KAFKA_BROKERS", config.DefaultKafkaBrokers), "Kafka bootstrap brokers, comma-separated")
	partitions := fs.Int("partitions", config.DefaultTopicPartitions, "partitions of password.commands, .retry, .results and .events (the DLQ gets 1)")
	replication := fs.Int("replication", 3, "replication factor of every topic")
	minInSync := fs.Int("min-insync", 0, "min.insync.replicas of every topic (with acks=all, a write needs that many replicas); default 2, or the replication factor if smaller")
	mongoURI := fs.String("mongo-uri", "", "MongoDB connection string (default: PINRESET_MONGO_URI, else mongodb://127.0.0.1:27017/)")
	db := fs.String("db", envOr("PINRESET_MONGO_DATABASE", mongostore.DefaultDatabase), "database name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mongoURI == "" {
		*mongoURI = envOr("PINRESET_MONGO_URI", "mongodb://127.0.0.1:27017/")
	}
	if *minInSync == 0 {
		*minInSync = min(2, *replication)
	}
	if *partitions < 1 || *replication < 1 || *minInSync < 1 || *minInSync > *replication {
		return fmt.Errorf("-partitions, -replication and -min-insync must be at least 1, and -min-insync at most -replication")
	}
	topics := kafkabus.Topics(*partitions, *replication, *minInSync)
	cluster, err := kafkaCluster(*brokers)
	if err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := kafkabus.EnsureTopics(tctx, cluster, topics); err != nil {
		return err
	}
	for _, t := range topics {
		fmt.Fprintf(stdout, "topic %s: present (partitions %d, replication %d when created here)\n", t.Name, t.Partitions, t.ReplicationFactor)
	}
	store, err := mongostore.Open(mongostore.Config{URI: *mongoURI, Database: *db})
	if err != nil {
		return err
	}
	defer store.Close(context.WithoutCancel(ctx))
	// No overall deadline: migrating a large audit trail takes as long as it
	// takes (each operation has the store's timeouts; docs/audit.md).
	if err := compose.EnsureIndexes(ctx, store); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database %s: indexes present\n", *db)
	return nil
}
