// Package events encodes member events for password.events as CloudEvents
// 1.0 in the Kafka protocol binding's binary content mode: the context
// attributes are ce_* headers, the data is the JSON value, the key is the
// member id so that one member's events stay in order.
package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Source is the ce_source of every event (a URI reference naming the producer).
const Source = "/kmwallet/pinreset"

// DataSchema is the ce_dataschema: the JSON Schema of the data, in schemas/.
const DataSchema = "https://schemas.kmwallet.example/pinreset/event-data.schema.json"

// Data is the JSON payload of an event: ids and times only.
type Data struct {
	MemberID      string        `json:"memberId"`
	ASPID         string        `json:"aspId"`
	CorrelationID string        `json:"correlationId"`
	Kind          pinreset.Kind `json:"kind,omitempty"`        // password.changed: reset or change
	OccurredAt    time.Time     `json:"occurredAt"`            // same instant as ce_time
	LockedUntil   *time.Time    `json:"lockedUntil,omitempty"` // password.locked
	// Unlocked: password.changed by a reset of a locked PIN, which it
	// unlocked; absent otherwise (no password.unlocked follows for it).
	Unlocked bool `json:"unlocked,omitempty"`
}

// Message encodes e for password.events.
func Message(e pinreset.Event) (kafkabus.Message, error) {
	if e.ID == "" || e.Type == "" || e.MemberID == "" || e.At.IsZero() || e.Version <= 0 {
		return kafkabus.Message{}, fmt.Errorf("event %q of type %q: id, type, member, version and time are required", e.ID, e.Type)
	}
	d := Data{MemberID: e.MemberID, ASPID: e.ASPID, CorrelationID: e.CorrelationID, Kind: e.Kind, OccurredAt: e.At.UTC(), Unlocked: e.Unlocked}
	if !e.LockedUntil.IsZero() {
		t := e.LockedUntil.UTC()
		d.LockedUntil = &t
	}
	value, err := json.Marshal(d)
	if err != nil {
		return kafkabus.Message{}, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	h := func(k, v string) kafka.Header { return kafka.Header{Key: k, Value: []byte(v)} }
	return kafkabus.Message{
		Topic: kafkabus.TopicEvents,
		Key:   []byte(e.MemberID),
		Value: value,
		Headers: []kafka.Header{
			h("ce_specversion", "1.0"),
			h("ce_id", e.ID),
			h("ce_source", Source),
			h("ce_type", string(e.Type)),
			h("ce_time", e.At.UTC().Format(time.RFC3339Nano)),
			h("ce_subject", e.MemberID),
			h("ce_dataschema", DataSchema),
			// The CloudEvents extension memberversion: a consumer orders a
			// member's events and drops duplicates by it.
			h("ce_memberversion", strconv.FormatInt(e.Version, 10)),
			h("content-type", "application/json"),
		},
	}, nil
}

// Messages encodes every event.
func Messages(evs []pinreset.Event) ([]kafkabus.Message, error) {
	out := make([]kafkabus.Message, 0, len(evs))
	for _, e := range evs {
		m, err := Message(e)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
