package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/kafkabus"
)

// eventsCmd is the example consumer of password.events that downstream
// teams can copy: it joins a consumer group, reads CloudEvents in binary
// mode (ce_* headers, JSON data), prints each one, and commits after
// printing, so a restart resumes where it stopped.
func eventsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl events", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", envOr("PINRESET_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka bootstrap brokers, comma-separated")
	group := fs.String("group", "", "consumer group (default: a fresh one, which reads from the beginning)")
	limit := fs.Int("n", 0, "stop after this many events (0: run until interrupted)")
	asJSON := fs.Bool("json", false, "print each event as one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *group == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		*group = "pwctl-events-" + hex.EncodeToString(b[:])
	}
	cluster, err := kafkaCluster(*brokers)
	if err != nil {
		return err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cluster.Brokers, GroupID: *group, Topic: "password.events",
		// TLS and SASL, when PINRESET_KAFKA_TLS/_SASL_* say so.
		Dialer:      cluster.Dialer(),
		StartOffset: kafka.FirstOffset, MaxWait: 500 * time.Millisecond, CommitInterval: 0,
	})
	defer r.Close()
	for n := 0; *limit == 0 || n < *limit; n++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read password.events: %w", err)
		}
		ce := map[string]string{}
		for _, h := range m.Headers {
			ce[h.Key] = string(h.Value)
		}
		var data map[string]any
		if err := json.Unmarshal(m.Value, &data); err != nil {
			fmt.Fprintf(stderr, "event %s: data is not JSON: %v\n", ce["ce_id"], err)
		}
		if *asJSON {
			out, _ := json.Marshal(map[string]any{"id": ce["ce_id"], "type": ce["ce_type"], "source": ce["ce_source"],
				"time": ce["ce_time"], "subject": ce["ce_subject"], "data": data})
			fmt.Fprintln(stdout, string(out))
		} else {
			fmt.Fprintf(stdout, "%s  %-40s  member=%s kind=%v asp=%v correlation=%v id=%s\n",
				ce["ce_time"], ce["ce_type"], ce["ce_subject"], data["kind"], data["aspId"], data["correlationId"], ce["ce_id"])
		}
		// Commit after handling: at-least-once; duplicates carry the same ce_id.
		if err := r.CommitMessages(ctx, m); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	return nil
}

// kafkaCluster is how pwctl reaches Kafka: the brokers of the -brokers
// flag, with the service's TLS and SASL settings (PINRESET_KAFKA_*).
func kafkaCluster(brokers string) (kafkabus.Cluster, error) {
	k, err := config.LoadKafka(os.Getenv)
	if err != nil {
		return kafkabus.Cluster{}, err
	}
	return kafkabus.NewCluster(kafkabus.ClusterConfig{Brokers: strings.Split(brokers, ","), TLS: k.KafkaTLS, CAFile: k.KafkaTLSCAFile,
		SASLMechanism: k.KafkaSASLMechanism, Username: k.KafkaSASLUsername, Password: k.KafkaSASLPassword})
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
