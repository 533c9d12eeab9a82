package main

// The operator's view of the two queues a command can be taken aside to:
// password.commands.dlq (dead-lettered: could not be decoded or opened) and
// password.commands.retry (parked: its retry budget spent, tried again
// later). It reads them outside any consumer group, shows only what is
// clear by design (never opens a sealed part, never prints a header or
// field it does not know to be harmless), and records every redrive and
// purge in the collection queue_actions and in the audit trail.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/wire"
	"github.com/kmwallet/pinreset/internal/worker"
)

// Actions, as stored and as the audit record's Code.
const (
	actRedrive = "redrive"
	actPurge   = "purge"
)

// States of a queued message.
const (
	stateWaiting   = "waiting"   // nothing done yet
	stateTried     = "tried"     // parked: the worker's retry group has read it (tried it again)
	stateRedriven  = "redriven"  // put back on password.commands
	statePurged    = "purged"    // recorded as handled, nothing produced
	stateRedriving = "redriving" // claimed for a redrive, not confirmed (in progress, or interrupted)
	statePurging   = "purging"   // claimed for a purge, not confirmed
)

// claimStale is how old an unconfirmed claim must be before another run of
// the same action takes it over (a redrive takes seconds: a produce is
// bounded by the producer's 3 attempts of 5 s).
const claimStale = time.Minute

// queue is one of the two queues.
type queue struct {
	name         string // "dlq" or "parked"
	topic        string
	reasonHeader string
	sourceHeader string
}

var (
	dlqQueue    = queue{name: "dlq", topic: kafkabus.TopicCommandsDLQ, reasonHeader: worker.HeaderDLQReason, sourceHeader: worker.HeaderDLQSource}
	parkedQueue = queue{name: "parked", topic: kafkabus.TopicCommandsRetry, reasonHeader: worker.HeaderRetryReason, sourceHeader: worker.HeaderRetrySource}
)

// action is a document of queue_actions.
type action struct {
	ID            string     `bson:"_id" json:"id"` // topic/partition/offset of the queued message
	Topic         string     `bson:"topic" json:"-"`
	CorrelationID string     `bson:"correlationId,omitempty" json:"correlationId,omitempty"`
	Source        string     `bson:"source,omitempty" json:"source,omitempty"` // its x-dlq-source or x-retry-source
	Action        string     `bson:"action" json:"action"`                     // redrive or purge
	Done          bool       `bson:"done" json:"done"`                         // false: claimed, not confirmed
	Operator      string     `bson:"operator" json:"operator"`
	Note          string     `bson:"note" json:"note"`
	StartedAt     time.Time  `bson:"startedAt" json:"startedAt"`
	DoneAt        *time.Time `bson:"doneAt,omitempty" json:"doneAt,omitempty"`
}

func (a *action) state() string {
	switch {
	case a.Action == actRedrive && a.Done:
		return stateRedriven
	case a.Action == actRedrive:
		return stateRedriving
	case a.Done:
		return statePurged
	default:
		return statePurging
	}
}

// entry is one queued message as the tool shows it. Every string in it is
// either validated against its expected shape or redacted.
type entry struct {
	ID            string     `json:"id"`
	Topic         string     `json:"topic"`
	Partition     int        `json:"partition"`
	Offset        int64      `json:"offset"`
	WrittenAt     time.Time  `json:"writtenAt"`
	AgeSeconds    int64      `json:"ageSeconds"`
	CorrelationID string     `json:"correlationId,omitempty"`
	ASPID         string     `json:"aspId,omitempty"`
	Kind          string     `json:"kind,omitempty"`
	Reason        string     `json:"reason"`     // the reason's class, what -reason selects
	ReasonText    string     `json:"reasonText"` // the header's text, redacted
	Source        string     `json:"source,omitempty"`
	Attempt       int        `json:"attempt,omitempty"`
	NotBefore     *time.Time `json:"notBefore,omitempty"`
	State         string     `json:"state"`
	Action        *action    `json:"action,omitempty"`

	msg      kafka.Message // the original, for a redrive; never printed
	readable bool          // wire.PeekIDs read its ids: it can be redriven
}

func (e entry) pending() bool {
	return e.State == stateWaiting || e.State == stateRedriving || e.State == statePurging
}

// readQueue reads every message of q's topic, from each partition's start
// to the end it had when called, outside any consumer group, and returns
// them with their state. For the parked queue, group is the worker's
// consumer group: messages below the committed offset of group+"-retry"
// have been tried again by a worker.
func readQueue(ctx context.Context, cl kafkabus.Cluster, db *mongo.Database, q queue, group string, now time.Time) ([]entry, error) {
	out, _, err := readQueueOf(ctx, cl, db, q, group, now, nil)
	return out, err
}

// readQueueOf is readQueue for the messages of one key (a correlation id)
// when key is not nil: only the key's partition is read (scanTopic). It
// also returns the offsets it read.
func readQueueOf(ctx context.Context, cl kafkabus.Cluster, db *mongo.Database, q queue, group string, now time.Time, key []byte) ([]entry, []span, error) {
	client := cl.Client()
	committed := map[int]int64{}
	if q.topic == kafkabus.TopicCommandsRetry {
		var err error
		if committed, err = committedOffsets(ctx, client, group+"-retry", q.topic); err != nil {
			return nil, nil, err
		}
	}
	var msgs []kafka.Message
	spans, err := scanTopic(ctx, cl, q.topic, key, false, func(m kafka.Message) { msgs = append(msgs, m) })
	if err != nil {
		return nil, nil, err
	}
	actions, err := loadActions(ctx, db, q.topic)
	if err != nil {
		return nil, nil, err
	}
	// A parked command that keeps failing is parked again as a new message
	// with the same x-retry-source: a purge covers its later copies too.
	purgedSources := map[string]*action{}
	for _, a := range actions {
		if a.Action == actPurge && a.Source != "" {
			purgedSources[a.Source] = a
		}
	}
	out := make([]entry, 0, len(msgs))
	for _, m := range msgs {
		e := describe(m, q, now)
		switch a := actions[e.ID]; {
		case a != nil:
			e.Action, e.State = a, a.state()
		case q.topic == kafkabus.TopicCommandsRetry && purgedSources[e.Source] != nil && purgedSources[e.Source].Done:
			e.Action, e.State = purgedSources[e.Source], statePurged
		case q.topic == kafkabus.TopicCommandsRetry && e.Offset < committed[e.Partition]:
			e.State = stateTried
		default:
			e.State = stateWaiting
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out, spans, nil
}

// committedOffsets returns the offsets group committed on topic's
// partitions (none for a group that never committed).
func committedOffsets(ctx context.Context, client *kafka.Client, group, topic string) (map[int]int64, error) {
	ids, err := topicPartitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err == nil && res.Error != nil && !errors.Is(res.Error, kafka.GroupIdNotFound) {
		err = res.Error // (a group that never committed has nothing committed)
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// topicPartitions lists the partition ids of topic, in order.
func topicPartitions(ctx context.Context, client *kafka.Client, topic string) ([]int, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	var ids []int
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("topic %s not found", topic)
	}
	sort.Ints(ids)
	return ids, nil
}

// span is the part of one partition a scan read: offsets [First, End).
type span struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	// First is the oldest offset the partition still keeps: above 0, older
	// messages were removed (retention).
	First int64 `json:"first"`
	// End is the partition's end when the scan began: later messages are
	// not read.
	End int64 `json:"end"`
	// OldestAt is when the oldest message kept was written (none read: nil).
	OldestAt *time.Time `json:"oldestAt,omitempty"`
}

// keyPartition is the partition of key among the partitions ids (sorted),
// as the service's producers choose it: kafkabus.NewProducer's murmur2
// balancer, like the Java client's.
func keyPartition(key []byte, ids []int) int {
	return kafka.Murmur2Balancer{Consistent: true}.Balance(kafka.Message{Key: key}, ids...)
}

// scanTopic reads topic outside any consumer group (nothing a service
// reads or commits is touched), each partition from its oldest offset to
// the end it had when the scan began, and calls each with every message.
// With key set it reads only the key's partition, or every partition with
// allPartitions (after a change of the partition count a key's older
// messages are elsewhere), and hands on only the key's messages. It
// returns what it read of each partition.
func scanTopic(ctx context.Context, cl kafkabus.Cluster, topic string, key []byte, allPartitions bool, each func(kafka.Message)) ([]span, error) {
	client := cl.Client()
	ids, err := topicPartitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	if key != nil && !allPartitions {
		ids = []int{keyPartition(key, ids)}
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, id := range ids {
		req.Topics[topic] = append(req.Topics[topic], kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
	}
	offs, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	parts := offs.Topics[topic]
	sort.Slice(parts, func(i, j int) bool { return parts[i].Partition < parts[j].Partition })
	spans := make([]span, 0, len(parts))
	for _, po := range parts {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		sp := span{Topic: topic, Partition: po.Partition, First: po.FirstOffset, End: po.LastOffset}
		err := scanPartition(ctx, cl, topic, po.Partition, po.FirstOffset, po.LastOffset, func(m kafka.Message) {
			if sp.OldestAt == nil {
				t := m.Time.UTC()
				sp.OldestAt = &t
			}
			if key == nil || bytes.Equal(m.Key, key) {
				each(m)
			}
		})
		if err != nil {
			return nil, err
		}
		spans = append(spans, sp)
	}
	return spans, nil
}

// readPartition reads offsets [first, last) of one partition.
func readPartition(ctx context.Context, cl kafkabus.Cluster, topic string, partition int, first, last int64) ([]kafka.Message, error) {
	var out []kafka.Message
	err := scanPartition(ctx, cl, topic, partition, first, last, func(m kafka.Message) { out = append(out, m) })
	return out, err
}

// scanPartition calls each with every message of offsets [first, last) of
// one partition, in order, holding none of them.
func scanPartition(ctx context.Context, cl kafkabus.Cluster, topic string, partition int, first, last int64, each func(kafka.Message)) error {
	if last <= first {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: cl.Brokers, Dialer: cl.Dialer(), Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 500 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return fmt.Errorf("seek %s/%d: %w", topic, partition, err)
	}
	for {
		// Each read is bounded: a partition whose last offsets are not
		// readable (a transaction marker) must not hang the tool.
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("read %s/%d at %d of %d: %w", topic, partition, r.Offset(), last, err)
		}
		each(m)
		if m.Offset >= last-1 {
			return nil
		}
	}
}

func loadActions(ctx context.Context, db *mongo.Database, topic string) (map[string]*action, error) {
	cur, err := db.Collection(mongostore.QueueActionsCollection).Find(ctx, bson.D{{Key: "topic", Value: topic}})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", mongostore.QueueActionsCollection, err)
	}
	var docs []action
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read %s: %w", mongostore.QueueActionsCollection, err)
	}
	out := make(map[string]*action, len(docs))
	for i := range docs {
		out[docs[i].ID] = &docs[i]
	}
	return out, nil
}

// describe reads what may be shown of m.
func describe(m kafka.Message, q queue, now time.Time) entry {
	e := entry{
		ID: fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset), Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		WrittenAt: m.Time.UTC(), AgeSeconds: int64(now.Sub(m.Time).Seconds()), msg: m,
	}
	f := clearFields(m.Value)
	e.CorrelationID, e.ASPID, e.Kind = f.get("correlationId"), f.get("aspId"), f.get("kind")
	if cid, _, ok := wire.PeekIDs(m.Key, m.Value); ok && cid == e.CorrelationID {
		e.readable = true
	}
	raw := headerValue(m, q.reasonHeader)
	e.ReasonText = redact(raw)
	e.Reason = reasonClass(q, raw)
	if s := headerValue(m, q.sourceHeader); positionRE.MatchString(s) {
		e.Source = s
	}
	if n, err := strconv.Atoi(headerValue(m, worker.HeaderRetryAttempt)); err == nil && n > 0 && n < 1<<20 {
		e.Attempt = n
	}
	if t := worker.RetryNotBefore(m); !t.IsZero() {
		e.NotBefore = &t
	}
	return e
}

// reasonClass groups reasons for list and -reason: for a parked command the
// worker's own labels (pinreset_commands_parked_total{reason}); for a
// dead-lettered one the reason's first words, without "poison message: "
// and without the detail after the first ':', ',' or '"'.
func reasonClass(q queue, raw string) string {
	if raw == "" {
		return "(none)"
	}
	if q.topic == kafkabus.TopicCommandsRetry {
		// pinreset.MissingKeyError's text, or ErrMissingKey's.
		if missingKeyRE.MatchString(raw) || strings.Contains(raw, pinreset.ErrMissingKey.Error()) {
			return "missing_key"
		}
		return "transient"
	}
	s := strings.TrimPrefix(redact(raw), wire.ErrPoison.Error()+": ")
	if i := strings.IndexAny(s, `:,"`); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "(other)"
	}
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "")
	}
	return s
}

func headerValue(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Shapes of what is printed in clear.
var (
	positionRE   = regexp.MustCompile(`^[a-z][a-z.]{0,62}/[0-9]{1,9}/[0-9]{1,19}$`)
	cidRE        = regexp.MustCompile(`^[0-9]{12}-[0-9a-fA-F]{7}$`)
	aspRE        = regexp.MustCompile(`^[A-Za-z0-9]{15}$`)
	tokenRE      = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	traceRE      = regexp.MustCompile(`^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)
	nameRE       = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,39}$`)
	wordRE       = regexp.MustCompile(`[A-Za-z0-9+/=_.@:-]+`)
	digits6RE    = regexp.MustCompile(`^[0-9]{6}$`)
	missingKeyRE = regexp.MustCompile(`\bmissing [a-z]+ key: `)
)

// hostRE is a host name as Kubernetes names pods (lowercase DNS labels,
// often longer than the 24 characters redact lets through).
var hostRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)

// hostLike reports whether v may be shown as an instance's name
// (PINRESET_INGRESS_ID, PINRESET_WORKER_ID): a host name, or a short token.
func hostLike(v string) bool {
	return hostRE.MatchString(v) && !digits6RE.MatchString(v) || tokenRE.MatchString(v) && redact(v) == v
}

// redact returns s, bounded to 256 bytes of printable text, with every
// word that could be a secret replaced: a 6-digit number (a PIN), a word
// with an '@' (a loginId), and a word of 24 characters or more (a CI, an
// access key, a secret, a token, ciphertext) that is not a topic position.
// Reasons are written by the worker from errors that hold no secret; this
// is the second line, for a value a producer put where none belongs.
func redact(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	return wordRE.ReplaceAllStringFunc(s, func(w string) string {
		if digits6RE.MatchString(w) || strings.Contains(w, "@") || (len(w) >= 24 && !positionRE.MatchString(w)) {
			return "[redacted]"
		}
		return w
	})
}

// fields is the clear part of a command value, validated: name -> printable
// value, or a description of why it is not shown.
type fields struct {
	shown  []field
	other  []string // names of fields not in the command format (not shown)
	detail string   // why nothing could be read, when so
}

type field struct{ Name, Value string }

func (f fields) get(name string) string {
	for _, x := range f.shown {
		if x.Name == name && !strings.HasPrefix(x.Value, "(") {
			return x.Value
		}
	}
	return ""
}

// clearFields reads the fields of a command that the wire format leaves
// clear (wire: v, correlationId, requestId, aspId, kind, acceptedAt,
// expiresAt, auth; loginId, ci and the PINs are inside "sealed"), each
// only if it has its expected shape. The sealed part is described by its
// key id and size, never opened.
func clearFields(value []byte) fields {
	if len(value) > wire.MaxMessageBytes {
		return fields{detail: fmt.Sprintf("value of %d bytes, not read", len(value))}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(value, &m); err != nil {
		return fields{detail: fmt.Sprintf("value of %d bytes is not a JSON object, not shown", len(value))}
	}
	var f fields
	str := func(name string, ok func(string) bool) {
		raw, present := m[name]
		if !present {
			return
		}
		var s string
		if json.Unmarshal(raw, &s) != nil || !ok(s) {
			f.shown = append(f.shown, field{name, "(present, not of the expected shape: not shown)"})
			return
		}
		f.shown = append(f.shown, field{name, s})
	}
	if raw, ok := m["v"]; ok {
		var v int
		if json.Unmarshal(raw, &v) == nil && v >= 0 && v < 1000 {
			f.shown = append(f.shown, field{"v", strconv.Itoa(v)})
		} else {
			f.shown = append(f.shown, field{"v", "(present, not a version: not shown)"})
		}
	}
	str("correlationId", cidRE.MatchString)
	str("requestId", func(s string) bool { return tokenRE.MatchString(s) && redact(s) == s })
	str("aspId", aspRE.MatchString)
	str("kind", func(s string) bool {
		return s == string(pinreset.KindReset) || s == string(pinreset.KindChange) || s == string(pinreset.KindStatus)
	})
	for _, name := range []string{"acceptedAt", "expiresAt"} {
		str(name, func(s string) bool { _, err := time.Parse(time.RFC3339Nano, s); return err == nil && len(s) <= 40 })
	}
	str("auth", func(s string) bool { return pinreset.Scheme(s).Known() })
	if raw, ok := m["sealed"]; ok {
		var env struct {
			KID string `json:"kid"`
			CT  string `json:"ct"`
		}
		desc := "(present, not an envelope)"
		if string(raw) == "null" {
			desc = "null"
		} else if json.Unmarshal(raw, &env) == nil {
			kid := env.KID
			if !tokenRE.MatchString(kid) || redact(kid) != kid {
				kid = "(not shown)"
			}
			desc = fmt.Sprintf("key id %s, %d bytes of ciphertext (sealed: loginId, ci and PINs; not opened)", kid, base64.StdEncoding.DecodedLen(len(env.CT)))
		}
		f.shown = append(f.shown, field{"sealed", desc})
	}
	known := map[string]bool{"v": true, "correlationId": true, "requestId": true, "aspId": true, "kind": true,
		"acceptedAt": true, "expiresAt": true, "auth": true, "sealed": true}
	for name := range m {
		if known[name] {
			continue
		}
		if nameRE.MatchString(name) && redact(name) == name {
			f.other = append(f.other, name)
		} else {
			f.other = append(f.other, "(a field with an unprintable name)")
		}
	}
	sort.Strings(f.other)
	return f
}

// shownHeaders lists m's headers: the values of those known to be harmless
// (trace context, request id, the queue's own headers), validated or
// redacted; of every other header only its name and size.
func shownHeaders(m kafka.Message) []field {
	out := make([]field, 0, len(m.Headers))
	for _, h := range m.Headers {
		v := string(h.Value)
		name := h.Key
		if !nameRE.MatchString(name) || redact(name) != name {
			name = "(unprintable name)"
		}
		var shown string
		switch h.Key {
		case "traceparent":
			if traceRE.MatchString(v) {
				shown = v
			}
		case wire.HeaderRequestID:
			if tokenRE.MatchString(v) && redact(v) == v {
				shown = v
			}
		case wire.HeaderIngressID, worker.HeaderDLQWorker:
			if hostLike(v) {
				shown = v
			}
		case worker.HeaderDLQSource, worker.HeaderRetrySource:
			if positionRE.MatchString(v) {
				shown = v
			}
		case worker.HeaderRetryAttempt:
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				shown = v
			}
		case worker.HeaderRetryNotBefore:
			if _, err := time.Parse(time.RFC3339Nano, v); err == nil && len(v) <= 40 {
				shown = v
			}
		case worker.HeaderDLQReason, worker.HeaderRetryReason:
			shown = redact(v)
		}
		if shown == "" {
			shown = fmt.Sprintf("(%d bytes, not shown)", len(h.Value))
		}
		out = append(out, field{name, shown})
	}
	return out
}

// redriveHeaders are m's headers without the queue's own (x-dlq-*,
// x-retry-*): the trace context and the request id go back with the
// command, so its trace continues and the worker starts it afresh.
func redriveHeaders(m kafka.Message) []kafka.Header {
	out := make([]kafka.Header, 0, len(m.Headers))
	for _, h := range m.Headers {
		if strings.HasPrefix(h.Key, "x-dlq-") || strings.HasPrefix(h.Key, "x-retry-") {
			continue
		}
		out = append(out, h)
	}
	return out
}

// actor is who runs an action and why.
type actor struct {
	operator string
	note     string
}

var operatorRE = regexp.MustCompile(`^[A-Za-z0-9._+@-]{1,64}$`)

func checkActor(a actor) error {
	if !operatorRE.MatchString(a.operator) {
		return errors.New("-operator (default $USER) must be 1 to 64 letters, digits or ._+@-")
	}
	switch {
	case strings.TrimSpace(a.note) == "":
		return errors.New("the reason text is empty")
	case len(a.note) > audit.MaxNote || !utf8.ValidString(a.note):
		return fmt.Errorf("the reason text must be valid UTF-8 of at most %d bytes", audit.MaxNote)
	case redact(a.note) != a.note:
		// The note is kept in the audit trail for good: no member data.
		return errors.New("the reason text must say why, without member data (no 6-digit number, no '@', no word of 24 characters or more, no control character)")
	}
	return nil
}

// outcome of acting on one message.
type outcome int

const (
	done        outcome = iota // the action was carried out (or an interrupted one completed)
	already                    // the message was handled before: nothing done
	refused                    // not done, for a reason printed
	interrupted                // an unconfirmed claim younger than claimStale: left alone
)

// queueActor carries out redrives and purges.
type queueActor struct {
	db       *mongo.Database
	trail    *mongostore.AuditLog
	producer interface {
		Publish(ctx context.Context, msgs ...kafkabus.Message) error
	}
	now func() time.Time
	// withdraw, for the parked queue, marks a purged command withdrawn:
	// the worker ends its parked copy as rejected (mongostore.WithdrawParked).
	withdraw func(ctx context.Context, aspID, correlationID string, at time.Time) error
}

// act claims e for what (redrive or purge) by inserting its queue_actions
// document, carries it out, appends the audit record and confirms the
// claim. A second run finds the confirmed claim and does nothing. A run
// that died after the claim left it unconfirmed: list still shows the
// message (state redriving or purging), and the same action run again
// after claimStale takes the claim over and carries it out again. For a
// redrive that may produce the command a second time (if the first run
// died after producing), which its idempotency absorbs: the worker answers
// a decided transaction from its record. The other way round, a claim with
// nothing produced and the message hidden, cannot happen.
func (a *queueActor) act(ctx context.Context, e entry, what string, who actor) (outcome, string, error) {
	switch {
	case e.Action != nil && e.Action.ID != e.ID:
		return already, fmt.Sprintf("purged with its earlier copy %s by %s", e.Action.ID, e.Action.Operator), nil
	case e.State == stateTried:
		return already, "already tried again by the worker (if it was parked again, its new copy is listed)", nil
	case what == actRedrive && !e.readable:
		return refused, "its correlation id and ASP cannot be read (not a command of ours, or malformed): purge it instead", nil
	}
	coll := a.db.Collection(mongostore.QueueActionsCollection)
	now := a.now().UTC().Truncate(time.Millisecond)
	claim := action{ID: e.ID, Topic: e.Topic, CorrelationID: e.CorrelationID, Source: e.Source, Action: what,
		Operator: who.operator, Note: who.note, StartedAt: now}
	_, err := coll.InsertOne(ctx, claim)
	if mongo.IsDuplicateKeyError(err) {
		var cur action
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: e.ID}}).Decode(&cur); err != nil {
			return refused, "", fmt.Errorf("read the claim of %s: %w", e.ID, err)
		}
		switch {
		case cur.Done:
			return already, fmt.Sprintf("already %s by %s at %s", pastTense(cur.Action), cur.Operator, cur.DoneAt.UTC().Format(time.RFC3339)), nil
		case cur.Action != what:
			return refused, fmt.Sprintf("claimed for a %s by %s at %s, not confirmed: run that again", cur.Action, cur.Operator, cur.StartedAt.Format(time.RFC3339)), nil
		case now.Sub(cur.StartedAt) < claimStale:
			return interrupted, fmt.Sprintf("a %s by %s started at %s is in progress (or was interrupted: run it again after %s)", cur.Action, cur.Operator,
				cur.StartedAt.Format(time.RFC3339), cur.StartedAt.Add(claimStale).Format(time.RFC3339)), nil
		}
		// Take the stale claim over: compare-and-set on its start time, so
		// that of two runs taking it over at once only one goes on.
		res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: e.ID}, {Key: "done", Value: false}, {Key: "startedAt", Value: cur.StartedAt}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "startedAt", Value: now}, {Key: "operator", Value: who.operator}, {Key: "note", Value: who.note}}}})
		if err != nil {
			return refused, "", fmt.Errorf("take over the claim of %s: %w", e.ID, err)
		}
		if res.ModifiedCount != 1 {
			return interrupted, "another run took the interrupted claim over just now", nil
		}
	} else if err != nil {
		return refused, "", fmt.Errorf("claim %s: %w", e.ID, err)
	}
	if what == actPurge && a.withdraw != nil && e.readable {
		if err := a.withdraw(ctx, e.ASPID, e.CorrelationID, now); err != nil {
			return refused, "", fmt.Errorf("purge %s (claimed, not withdrawn: run it again after %s): %w", e.ID, claimStale, err)
		}
	}
	if what == actRedrive {
		msg := kafkabus.Message{Topic: kafkabus.TopicCommands, Key: []byte(e.CorrelationID), Value: e.msg.Value, Headers: redriveHeaders(e.msg)}
		if err := a.producer.Publish(ctx, msg); err != nil {
			return refused, "", fmt.Errorf("redrive %s (claimed, not produced: run it again after %s): %w", e.ID, claimStale, err)
		}
	}
	// The audit record names the message: "<correlation id>@<position>",
	// so that it is one record per message (Append is idempotent per
	// correlation id and chain) and an action completed again after an
	// interruption is not audited twice.
	rec := audit.Record{ASPID: e.ASPID, Kind: audit.KindOperator, CorrelationID: e.CorrelationID + "@" + e.ID, Code: what,
		WorkerID: "pwctl:" + who.operator, Note: who.note, At: now}
	if _, err := a.trail.Append(ctx, rec); err != nil && !errors.Is(err, audit.ErrRecorded) {
		return refused, "", fmt.Errorf("audit the %s of %s (done, not confirmed: run it again after %s): %w", what, e.ID, claimStale, err)
	}
	doneAt := a.now().UTC().Truncate(time.Millisecond)
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: e.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "done", Value: true}, {Key: "doneAt", Value: doneAt}}}}); err != nil {
		return refused, "", fmt.Errorf("confirm the %s of %s (done and audited, not confirmed: run it again after %s): %w", what, e.ID, claimStale, err)
	}
	return done, pastTense(what), nil
}

func pastTense(what string) string {
	if what == actRedrive {
		return "redriven"
	}
	return "purged"
}
