// Package kafkabus is the service's Kafka plumbing on segmentio/kafka-go: one
// producer for every topic, the worker's consumer-group loop (concurrent, in
// order per key, committing only behind completed work), the ingress's tail of
// password.results, and topic bootstrap.
package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// Topic names (SPEC section 1).
const (
	TopicCommands    = "password.commands"
	TopicCommandsDLQ = "password.commands.dlq"
	// TopicCommandsRetry holds commands parked after their retry budget,
	// each with the time before which it is not tried again.
	TopicCommandsRetry = "password.commands.retry"
	TopicResults       = "password.results"
	TopicEvents        = "password.events"
)

// Message is what the service publishes. Headers keep their order.
type Message struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []kafka.Header
}

// Producer publishes to any topic. Safe for concurrent use.
//
// It batches only while it has something to batch with, like Nagle's
// algorithm: a publish of one message that finds no other in flight goes
// out at once (a writer whose batches hold one message); one that finds
// others in flight, or of several messages, joins the batch that forms
// (BatchTimeout, up to 100 messages). kafka-go has one batch size per
// writer and waits out BatchTimeout for any batch not full: a lone command
// and its result each waited it out before, about 1.2 ms of a publish's
// 2.5 on the sandbox's broker, a fifth of the pipeline's latency at light
// load. (A shorter BatchTimeout does not help: 100 µs measured the same as
// 1 ms on an idle machine; a single-message writer for every publish costs
// throughput, one produce request per message.) Both writers share one
// transport, so the brokers' connections. Order is what it was: each call
// returns once acknowledged, and the messages of one call go through one
// writer.
type Producer struct {
	single, batched *kafka.Writer
	inflight        atomic.Int64
}

// ProducerConfig tunes the producer. The zero value is usable.
type ProducerConfig struct {
	// BatchTimeout is how long a batch waits to fill, when it forms (other
	// publishes in flight, see Producer), before it is sent. kafka-go's own
	// default is 1 s, which would add up to a second to every request under
	// load; ours is 1 ms.
	BatchTimeout time.Duration
	// WriteTimeout bounds one produce request. Default 5 s.
	WriteTimeout time.Duration
	// MaxAttempts is how many times a batch is tried before Publish fails.
	// Default 3, with kafka-go's backoff of 100 ms to 1 s between tries.
	MaxAttempts int
}

// NewProducer returns a producer for the cluster. Every write waits for all
// in-sync replicas (acks=all): an accepted command must survive a broker loss.
// Keys are partitioned with murmur2 like the Java client, so any other
// producer of the same keys agrees on partitions.
func NewProducer(c Cluster, cfg ProducerConfig) *Producer {
	if cfg.BatchTimeout == 0 {
		cfg.BatchTimeout = time.Millisecond
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	transport := c.transport()
	writer := func(batchSize int) *kafka.Writer {
		return &kafka.Writer{
			Addr:                   kafka.TCP(c.Brokers...),
			Transport:              transport,
			Balancer:               &kafka.Murmur2Balancer{},
			RequiredAcks:           kafka.RequireAll,
			BatchTimeout:           cfg.BatchTimeout,
			BatchSize:              batchSize,
			WriteTimeout:           cfg.WriteTimeout,
			ReadTimeout:            cfg.WriteTimeout,
			MaxAttempts:            cfg.MaxAttempts,
			AllowAutoTopicCreation: false,
		}
	}
	return &Producer{single: writer(1), batched: writer(100)}
}

// Publish writes msgs and returns once the broker acknowledged them all.
func (p *Producer) Publish(ctx context.Context, msgs ...Message) error {
	km := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		km[i] = kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: m.Headers}
	}
	w := p.batched
	if p.inflight.Add(1) == 1 && len(km) == 1 {
		w = p.single
	}
	defer p.inflight.Add(-1)
	if err := w.WriteMessages(ctx, km...); err != nil {
		return fmt.Errorf("publish %d message(s) to %s: %w", len(msgs), msgs[0].Topic, err)
	}
	return nil
}

// Close flushes and closes the producer.
func (p *Producer) Close() error { return errors.Join(p.single.Close(), p.batched.Close()) }

// TopicSpec is one topic to create.
type TopicSpec struct {
	Name              string
	Partitions        int
	ReplicationFactor int
	// MinInSync is the topic's min.insync.replicas: with acks=all, a write
	// is refused unless this many replicas have it. 0 leaves the broker's
	// default.
	MinInSync int
}

// Topics returns the service's topics with the given partition count,
// replication factor and min.insync.replicas (the DLQ gets one partition:
// it is read by people).
func Topics(partitions, replication, minInSync int) []TopicSpec {
	return []TopicSpec{
		{TopicCommands, partitions, replication, minInSync},
		{TopicCommandsRetry, partitions, replication, minInSync},
		{TopicResults, partitions, replication, minInSync},
		{TopicEvents, partitions, replication, minInSync},
		{TopicCommandsDLQ, 1, replication, minInSync},
	}
}

// EnsureTopics creates the topics that do not exist yet. Idempotent.
func EnsureTopics(ctx context.Context, c Cluster, topics []TopicSpec) error {
	client := c.Client()
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		tc := kafka.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: t.ReplicationFactor}
		if t.MinInSync > 0 {
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(t.MinInSync)}}
		}
		req.Topics = append(req.Topics, tc)
	}
	res, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for name, err := range res.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", name, err)
		}
	}
	return nil
}

// Ping checks that a broker answers now and that the topics exist. It dials
// afresh on purpose: a kafka.Client caches metadata for seconds, and would
// call a dead cluster ready.
//
// It returns within PingTimeout, or sooner when ctx ends, whatever the
// broker does: a broker that accepts connections and never answers (stalled,
// or a half-open connection) would otherwise hold a kafka-go Conn for ever,
// since a Conn heeds only its own deadlines, and resets the socket's to them
// at every request (the SASL handshake runs with none). So each broker's
// connection gets the deadline of its exchange, and is closed when that
// exchange's context ends. A broker that does not answer is passed over for
// the next one.
func Ping(ctx context.Context, c Cluster, topics ...string) error {
	ctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	var last error
	for _, b := range c.Brokers {
		if ctx.Err() != nil {
			break
		}
		err := pingBroker(ctx, c, b, topics)
		if err == nil || !errors.Is(err, errNoAnswer) {
			return err
		}
		last = err
	}
	if last == nil {
		last = ctx.Err()
	}
	return fmt.Errorf("no kafka broker answers: %w", last)
}

// PingTimeout bounds one Ping, every broker included; pingBrokerTimeout
// bounds the exchange with one broker (dial, TLS, SASL, metadata).
const (
	PingTimeout       = 5 * time.Second
	pingBrokerTimeout = 2 * time.Second
)

// errNoAnswer marks a broker that could not be reached or did not answer,
// as opposed to one that answered that a topic is missing.
var errNoAnswer = errors.New("no answer")

func pingBroker(ctx context.Context, c Cluster, broker string, topics []string) error {
	ctx, cancel := context.WithTimeout(ctx, pingBrokerTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	d := &kafka.Dialer{TLS: c.TLS, SASLMechanism: c.SASL, DialFunc: func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		_ = conn.SetDeadline(deadline)
		// The exchange's context (ended at the latest when pingBroker
		// returns): closing unblocks whatever waits on the broker then.
		context.AfterFunc(ctx, func() { _ = conn.Close() })
		return conn, nil
	}}
	conn, err := d.DialContext(ctx, "tcp", broker)
	if err != nil {
		return fmt.Errorf("kafka broker %s: %w: %w", broker, errNoAnswer, orCtx(ctx, err))
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	parts, err := conn.ReadPartitions(topics...)
	var answered kafka.Error
	if errors.As(err, &answered) {
		return fmt.Errorf("kafka metadata from %s: %w", broker, err)
	}
	if err != nil {
		return fmt.Errorf("kafka metadata from %s: %w: %w", broker, errNoAnswer, orCtx(ctx, err))
	}
	found := map[string]bool{}
	for _, p := range parts {
		found[p.Topic] = true
	}
	for _, t := range topics {
		if !found[t] {
			return fmt.Errorf("kafka topic %s: not found", t)
		}
	}
	return nil
}

// orCtx is ctx's error when ctx has ended (the connection was closed under
// err's feet because of it), else err.
func orCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// zapLogger adapts zap to kafka-go's Logger.
func zapLogger(l *zap.Logger) kafka.LoggerFunc {
	s := l.Sugar()
	return func(msg string, args ...any) { s.Debugf(msg, args...) }
}

func zapErrorLogger(l *zap.Logger) kafka.LoggerFunc {
	s := l.Sugar()
	return func(msg string, args ...any) { s.Warnf(msg, args...) }
}

// partitions lists the partition ids of topic.
func partitions(ctx context.Context, client *kafka.Client, topic string) ([]int, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, t.Error)
		}
		ids := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ids = append(ids, p.ID)
		}
		return ids, nil
	}
	return nil, fmt.Errorf("metadata of %s: topic not found", topic)
}
