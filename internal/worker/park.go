package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/wire"
)

// ParkedRecorder marks the commands parked on the retry topic, so that a
// status query answers them as pending rather than unknown, and tells
// which of them an operator withdrew (pwctl parked purge).
type ParkedRecorder interface {
	MarkParked(ctx context.Context, aspID, correlationID, reason string, at time.Time) error
	IsWithdrawn(ctx context.Context, aspID, correlationID string) (bool, error)
}

// Headers of a parked command on password.commands.retry.
const (
	HeaderRetryAttempt   = "x-retry-attempt"    // how many times it was parked, 1 the first
	HeaderRetryNotBefore = "x-retry-not-before" // RFC 3339 time before which it is not tried again
	HeaderRetryReason    = "x-retry-reason"     // the last error, for people (never a secret)
	HeaderRetrySource    = "x-retry-source"     // topic/partition/offset it was parked from
)

// Delays before a parked command is tried again: 5 s doubling with each
// parking up to a minute, so that a key deployed late is picked up within a
// minute and a command that keeps failing costs a try a minute.
const (
	parkDelayMin = 5 * time.Second
	parkDelayMax = time.Minute
)

// parkCalm is how long after a dependency was last seen down (Ready failed,
// or an attempt failed for the database or broker as a whole) nothing is
// parked for a transient failure: the failures of that time are the
// outage's, not the command's, and they wait in their lanes.
const parkCalm = 30 * time.Second

// Park takes a command whose retry budget is spent out of its lane: it
// marks it parked (a status query then answers 202, still pending) and
// publishes it to password.commands.retry with the time of its next try. A
// transient failure never becomes an outcome this way; the command is
// decided when what it waits for is back. While the database or the broker
// does not answer nothing is parked: every command fails then, and moving
// them all aside would only reorder them; they wait in their lanes instead.
func (p *Processor) Park(ctx context.Context, m kafka.Message, cause error) error {
	if errors.Is(cause, pinreset.ErrDamagedMember) {
		return p.endDamaged(ctx, m, cause)
	}
	reason := "transient"
	if errors.Is(cause, pinreset.ErrMissingKey) {
		reason = "missing_key"
	} else if p.Ready != nil {
		if err := p.Ready(ctx); err != nil {
			p.outageAt.set(p.now())
			return fmt.Errorf("not parking while a dependency is down: %w", err)
		}
		// A command whose attempts failed during an outage that just ended
		// is not stuck: it gets another budget in its lane first.
		if since := p.now().Sub(p.outageAt.get()); since < parkCalm {
			return fmt.Errorf("not parking: a dependency was down %v ago", since.Round(time.Second))
		}
	}
	now := p.now().UTC()
	if cid, aspID, known := wire.PeekIDs(m.Key, m.Value); known {
		if err := p.Parked.MarkParked(ctx, aspID, cid, reason, now); err != nil {
			return err
		}
	}
	attempt := retryAttempt(m) + 1
	delay := min(parkDelayMin<<min(attempt-1, 16), parkDelayMax)
	headers := make([]kafka.Header, 0, len(m.Headers)+4)
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, "x-retry-") {
			headers = append(headers, h)
		}
	}
	source := fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)
	if s := header(m, HeaderRetrySource); s != "" {
		source = s // the first place it was parked from
	}
	msg := cause.Error()
	if len(msg) > 256 {
		msg = msg[:256]
	}
	headers = append(headers,
		kafka.Header{Key: HeaderRetryAttempt, Value: []byte(strconv.Itoa(attempt))},
		kafka.Header{Key: HeaderRetryNotBefore, Value: []byte(now.Add(delay).Format(time.RFC3339Nano))},
		kafka.Header{Key: HeaderRetryReason, Value: []byte(msg)},
		kafka.Header{Key: HeaderRetrySource, Value: []byte(source)},
	)
	if err := p.Publisher.Publish(ctx, kafkabus.Message{Topic: kafkabus.TopicCommandsRetry, Key: m.Key, Value: m.Value, Headers: headers}); err != nil {
		return fmt.Errorf("park %s: %w", source, err)
	}
	p.Metrics.Parked.WithLabelValues(reason).Inc()
	p.Log.Warn("command parked; it is tried again later", zap.ByteString("correlation_id", m.Key), zap.String("reason", reason),
		zap.Int("attempt", attempt), zap.Duration("next_try_in", delay), zap.String("source", source), zap.Error(cause))
	return nil
}

// ParkAtOnce reports the failures that waiting in the lane cannot end, so
// the consumer parks their command at its first failure instead of after
// its retry budget: a key this worker lacks (pinreset.ErrMissingKey). A
// worker loads its keys at start, so no retry in this process can find it,
// and the lane (then, once its buffer is full, every lane) would wait the
// whole budget for nothing. Parked, the command is tried again from the
// retry topic by whichever worker reads it, one deployed with the key
// included.
func ParkAtOnce(err error) bool {
	return errors.Is(err, pinreset.ErrMissingKey)
}

// RetryNotBefore is the time before which a parked command must not be
// tried again (zero for a message without one).
func RetryNotBefore(m kafka.Message) time.Time {
	t, err := time.Parse(time.RFC3339Nano, header(m, HeaderRetryNotBefore))
	if err != nil {
		return time.Time{}
	}
	return t
}

func retryAttempt(m kafka.Message) int {
	n, err := strconv.Atoi(header(m, HeaderRetryAttempt))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
