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
//
// A parked copy (from the retry topic) of a command an operator withdrew
// is decided as rejected (decision.Service.Withdraw) instead; one this
// worker cannot open is rejected by its ids (endWithdrawn).
func (p *Processor) Handle(ctx context.Context, m kafka.Message) (Done, error) {
	cid, aspID, withdrawn, err := p.withdrawn(ctx, m)
	if err != nil {
		return Done{}, err
	}
	cmd, err := wire.DecodeCommand(m.Key, m.Value, p.Sealer)
	switch {
	case withdrawn && err != nil:
		return p.endWithdrawn(ctx, m, cid, aspID)
	case errors.Is(err, pinreset.ErrMissingKey):
		if d, answered, err := p.answerUnopened(ctx, m); answered || err != nil {
			return d, err
		}
		return Done{}, fmt.Errorf("command %s: %w", m.Key, err)
	case err != nil:
		return Done{}, &PoisonError{Err: err}
	}
	handle := p.Service.Handle
	if withdrawn {
		handle = p.Service.Withdraw
	}
	rep, err := handle(ctx, cmd)
	return Done{ASPID: cmd.ASPID, Kind: cmd.Kind, AcceptedAt: cmd.AcceptedAt, Report: rep}, err
}

// withdrawn reports whether m is a parked copy of a command an operator
// withdrew, and its ids when it is. Only parked copies are asked (one read
// each): a purge acts on the parked list.
func (p *Processor) withdrawn(ctx context.Context, m kafka.Message) (cid, aspID string, withdrawn bool, err error) {
	if m.Topic != kafkabus.TopicCommandsRetry {
		return "", "", false, nil
	}
	cid, aspID, known := wire.PeekIDs(m.Key, m.Value)
	if !known {
		return "", "", false, nil
	}
	if withdrawn, err = p.Parked.IsWithdrawn(ctx, aspID, cid); err != nil {
		return "", "", false, fmt.Errorf("command %s: %w", cid, err)
	}
	return cid, aspID, withdrawn, nil
}

// endWithdrawn ends a withdrawn command this worker cannot open (its key
// was never deployed here) or decode: its transaction's outcome is the
// rejection, unless it has one, and its client is told. A worker that can
// open it decides it through its member instead (Handle), so that the
// rejection and a decision of another copy cannot both stand; this one
// can only be raced by a worker holding the key while an operator
// redrives and purges the same command at once.
func (p *Processor) endWithdrawn(ctx context.Context, m kafka.Message, cid, aspID string) (Done, error) {
	o, err := p.Service.Reject(ctx, cid, aspID, true)
	if err != nil {
		return Done{}, err
	}
	return p.answer(ctx, m, aspID, o, "withdrawn")
}

// answerUnopened answers a copy this worker cannot open from its
// transaction's record when that record answers any copy (a rejection or
// a withdrawal: decision.Service.Unopened), instead of parking it until a
// key that may never come.
func (p *Processor) answerUnopened(ctx context.Context, m kafka.Message) (Done, bool, error) {
	cid, aspID, known := wire.PeekIDs(m.Key, m.Value)
	if !known {
		return Done{}, false, nil
	}
	o, ok, err := p.Service.Unopened(ctx, cid, aspID)
	if err != nil || !ok {
		return Done{}, false, err
	}
	d, err := p.answer(ctx, m, aspID, o, "repeated")
	return d, err == nil, err
}

// answer tells m's client its transaction's outcome o, reached how.
func (p *Processor) answer(ctx context.Context, m kafka.Message, aspID string, o pinreset.Outcome, how string) (Done, error) {
	r, msg, err := resultOf(m, aspID, o)
	if err != nil {
		return Done{}, err
	}
	if err := p.Publisher.Publish(ctx, msg); err != nil {
		return Done{}, fmt.Errorf("answer command %s: %w", r.CorrelationID, err)
	}
	return Done{ASPID: aspID, Kind: o.Kind, Report: decision.Report{Result: r, How: how}}, nil
}

// resultOf is the result that answers m's client with outcome o, and its
// message.
func resultOf(m kafka.Message, aspID string, o pinreset.Outcome) (pinreset.Result, kafkabus.Message, error) {
	r := pinreset.Result{CorrelationID: string(m.Key), ASPID: aspID, RequestID: header(m, wire.HeaderRequestID), Code: o.Code,
		Message: o.Code.Message(), MemberID: o.MemberID, CompletedAt: o.CompletedAt.UTC()}
	v, err := wire.EncodeResult(r)
	if err != nil {
		return pinreset.Result{}, kafkabus.Message{}, err
	}
	return r, kafkabus.Message{Topic: kafkabus.TopicResults, Key: m.Key, Value: v}, nil
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
		_, r, err := resultOf(m, aspID, answer)
		if err != nil {
			return Done{}, err
		}
		msgs = append(msgs, r)
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
