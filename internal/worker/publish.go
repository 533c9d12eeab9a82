package worker

import (
	"context"

	"github.com/segmentio/kafka-go"

	"github.com/kmwallet/pinreset/internal/events"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/tracing"
	"github.com/kmwallet/pinreset/internal/wire"
)

// KafkaPublisher is the decision service's Publisher on Kafka: results on
// password.results (with the trace context, so the ingress's span
// continues), events on password.events as CloudEvents.
type KafkaPublisher struct{ Publisher Publisher }

// Answer publishes r, keyed by its correlation id.
func (k KafkaPublisher) Answer(ctx context.Context, r pinreset.Result) error {
	v, err := wire.EncodeResult(r)
	if err != nil {
		return err
	}
	var headers []kafka.Header
	tracing.Inject(ctx, &headers)
	return k.Publisher.Publish(ctx, kafkabus.Message{Topic: kafkabus.TopicResults, Key: []byte(r.CorrelationID), Value: v, Headers: headers})
}

// Announce publishes a member's events, keyed by member, in one batch.
func (k KafkaPublisher) Announce(ctx context.Context, evs []pinreset.Event) error {
	msgs, err := events.Messages(evs)
	if err != nil {
		return err
	}
	return k.Publisher.Publish(ctx, msgs...)
}
