// Package worker is the Kafka side of deciding PIN commands: a message of
// password.commands is decoded (or dead-lettered when it never can be) and
// handed to the decision service (package decision), which decides,
// commits, answers and delivers. Tracing, logging, metrics,
// dead-lettering and the outage watch wrap that handler as middleware
// (middleware.go, DeadLetters). Retries are the consumer's (kafkabus): a
// retry holds its message's lane, so that a key's commands keep their
// order, and each attempt runs under its own deadline and the lanes'
// watchdog, which a retry loop inside one handler call would share. A
// command whose retries are spent is parked on the retry topic (Park, the
// consumer's Parker).
package worker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/wire"
)

// Publisher publishes messages (*kafkabus.Producer).
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkabus.Message) error
}

// Processor handles the messages of password.commands and parks those
// whose retries are spent; it is safe for concurrent use. Every field but
// Ready, Outage and Now is required.
type Processor struct {
	Service   *decision.Service
	Sealer    wire.Sealer
	Publisher Publisher
	Parked    ParkedRecorder
	Metrics   *metrics.Worker
	Health    *health.Monitor
	Log       *zap.Logger
	// WorkerID names this instance in the DLQ headers.
	WorkerID string
	// Ready, when set, says whether the database and broker answer: a
	// command is not parked while they do not, nor for parkCalm after (every
	// command fails then; moving them all aside would only reorder them).
	Ready func(context.Context) error
	// Outage, when set, reports whether err means the database or the
	// broker as a whole is down (not this command's fault); such failures
	// mark an outage for Park (WatchOutages).
	Outage func(error) bool
	// Now is the clock. Default time.Now.
	Now func() time.Time

	outageAt atomicTime // when Ready last failed or an attempt met an outage
}

// Done is what handling one message did, for the middleware that logs and
// counts it. It holds ids and codes only, never a secret.
type Done struct {
	ASPID      string
	Kind       pinreset.Kind
	AcceptedAt time.Time
	Report     decision.Report
	// DeadLettered, when set, is why the message went to the DLQ
	// ("undecodable", "unopenable"); Reason is the error that said so.
	DeadLettered string
	Reason       error
}

// Handler handles one message and says what it did. An error means the
// message is to be tried again (a dependency unavailable, a key not
// deployed yet); a message that can never succeed is dead-lettered and
// done.
type Handler func(ctx context.Context, m kafka.Message) (Done, error)

// DLQ header names.
const (
	HeaderDLQReason = "x-dlq-reason"
	HeaderDLQWorker = "x-dlq-worker"
	HeaderDLQSource = "x-dlq-source"
)

func (p *Processor) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Handle decodes a message of password.commands and has the decision
// service handle its command. A message that can never be decoded or
// opened is a *PoisonError, for DeadLetters.
func (p *Processor) Handle(ctx context.Context, m kafka.Message) (Done, error) {
	cmd, err := wire.DecodeCommand(m.Key, m.Value, p.Sealer)
	if errors.Is(err, pinreset.ErrMissingKey) {
		return Done{}, fmt.Errorf("command %s: %w", m.Key, err)
	}
	if err != nil {
		return Done{}, &PoisonError{Err: err}
	}
	rep, err := p.Service.Handle(ctx, cmd)
	return Done{ASPID: cmd.ASPID, Kind: cmd.Kind, AcceptedAt: cmd.AcceptedAt, Report: rep}, err
}

// PoisonError is a message that can never be processed: retrying cannot
// decode it or open its sealed fields. Err says why, never a secret.
type PoisonError struct{ Err error }

func (e *PoisonError) Error() string { return "poison message: " + e.Err.Error() }
func (e *PoisonError) Unwrap() error { return e.Err }

// DeadLetters takes the poison messages its handler reports out of the
// stream (deadLetter), so that they are done, not retried.
func (p *Processor) DeadLetters(next Handler) Handler {
	return func(ctx context.Context, m kafka.Message) (Done, error) {
		d, err := next(ctx, m)
		if pe := (*PoisonError)(nil); errors.As(err, &pe) {
			return p.deadLetter(ctx, m, pe.Err)
		}
		return d, err
	}
}

// deadLetter moves a message that can never be processed to the DLQ, with the
// reason, records the rejection as the command's outcome when its ids can be
// read, and tells a waiting client. The reason names what failed, never a
// secret: DecodeCommand's errors hold none.
func (p *Processor) deadLetter(ctx context.Context, m kafka.Message, reason error) (Done, error) {
	cid, aspID, known := wire.PeekIDs(m.Key, m.Value)
	if !known {
		// Named by its key and its place in the log.
		key := m.Key[:min(len(m.Key), 64)]
		if !utf8.Valid(key) { // a BSON string must be UTF-8
			key = []byte(hex.EncodeToString(key[:min(len(key), 32)]))
		}
		cid = fmt.Sprintf("%s@%s/%d/%d", key, m.Topic, m.Partition, m.Offset)
	}
	answer, err := p.Service.Reject(ctx, cid, aspID, known)
	if err != nil {
		return Done{}, err
	}
	headers := append([]kafka.Header{}, m.Headers...)
	headers = append(headers,
		kafka.Header{Key: HeaderDLQReason, Value: []byte(reason.Error())},
		kafka.Header{Key: HeaderDLQWorker, Value: []byte(p.WorkerID)},
		kafka.Header{Key: HeaderDLQSource, Value: fmt.Appendf(nil, "%s/%d/%d", m.Topic, m.Partition, m.Offset)},
	)
	msgs := []kafkabus.Message{{Topic: kafkabus.TopicCommandsDLQ, Key: m.Key, Value: m.Value, Headers: headers}}
	if len(m.Key) > 0 && len(m.Key) <= 64 {
		r := pinreset.Result{CorrelationID: string(m.Key), ASPID: aspID, RequestID: header(m, wire.HeaderRequestID), Code: answer.Code,
			Message: answer.Code.Message(), MemberID: answer.MemberID, CompletedAt: answer.CompletedAt.UTC()}
		v, err := wire.EncodeResult(r)
		if err != nil {
			return Done{}, err
		}
		msgs = append(msgs, kafkabus.Message{Topic: kafkabus.TopicResults, Key: m.Key, Value: v})
	}
	if err := p.Publisher.Publish(ctx, msgs...); err != nil {
		return Done{}, fmt.Errorf("dead-letter %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	kind := "undecodable"
	if errors.Is(reason, seal.ErrOpen) {
		kind = "unopenable"
	}
	return Done{ASPID: aspID, DeadLettered: kind, Reason: reason}, nil
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key && len(h.Value) <= 64 {
			return string(h.Value)
		}
	}
	return ""
}
