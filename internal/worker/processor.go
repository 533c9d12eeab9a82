// Package worker decides PIN commands: it takes a command from
// password.commands, checks it against the member document, applies it with
// one compare-and-set, and publishes the result. It is the only writer of
// member documents.
package worker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/events"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/tracing"
	"github.com/kmwallet/pinreset/internal/wire"
)

// Members is what the processor needs of the member store.
type Members interface {
	FindMember(ctx context.Context, aspID, loginID string) (*pinreset.Member, error)
	// UpdateMember commits m with its events, returning the outbox entry
	// that holds them until they are published.
	UpdateMember(ctx context.Context, m pinreset.Member, expectVersion int64, correlationID string, events []pinreset.Event) (outbox string, err error)
	DeleteOutbox(ctx context.Context, id string) error
}

// Outcomes records each command's outcome once.
type Outcomes interface {
	FindOutcome(ctx context.Context, aspID, correlationID string) (mongostore.Outcome, error)
	InsertOutcome(ctx context.Context, o mongostore.Outcome) error
}

// Auditor appends to the tamper-evident audit trail, once per command: a
// second record of the same correlation id in its chain is refused with
// audit.ErrRecorded.
type Auditor interface {
	Append(ctx context.Context, r audit.Record) (audit.Record, error)
}

// Contents remembers the content of the requests that set a PIN, to detect
// replays: the same content under a new correlation id.
type Contents interface {
	FindContent(ctx context.Context, aspID, fp string) (correlationID string, at time.Time, err error)
	RecordContent(ctx context.Context, aspID, fp, correlationID string, at time.Time) error
}

// Fingerprinter makes and checks keyed fingerprints of request content,
// under the fingerprint keys (PINRESET_FINGERPRINT_KEYS), never the pepper.
type Fingerprinter interface {
	Fingerprint(content []byte) (string, error)
	// Fingerprints is content's fingerprint under every key, the current
	// key's first: for comparing with fingerprints made before a rotation.
	Fingerprints(content []byte) ([]string, error)
	SameFingerprint(fp string, content []byte) (bool, error)
}

// Publisher publishes messages.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkabus.Message) error
}

// Processor handles one command message at a time; it is safe for concurrent use.
type Processor struct {
	Members       Members
	Outcomes      Outcomes
	Audit         Auditor
	Contents      Contents
	Fingerprinter Fingerprinter
	Publisher     Publisher
	Sealer        wire.Sealer
	Hasher        pinreset.PINHasher
	Rules         pinreset.Rules
	Log           *zap.Logger
	// WorkerID names this instance in results' logs and the DLQ headers.
	WorkerID string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// ReplayWindow is how long the content of a decided request stays
	// claimed by its correlation id: the same content under another id in
	// that time is a replay and is refused with CodeDuplicateRequest.
	// Default 24 h.
	ReplayWindow time.Duration
	// Metrics, when set, counts outcomes, conflicts, locks and dead letters.
	Metrics *metrics.Worker
	// Tracer records a span per command and per store update, continuing
	// the trace the ingress started (traceparent header). Default: none.
	Tracer trace.Tracer
	// MaxConflicts bounds the compare-and-set retries of one command when
	// other commands keep changing the same member. Default 16.
	MaxConflicts int
	// Parked marks the commands parked on the retry topic, so that status
	// queries answer them as pending. Optional (then nothing is parked).
	Parked ParkedRecorder
	// Health, when set, is told of missing keys (readiness names them).
	Health *health.Monitor
	// Ready, when set, says whether the database and broker answer: a
	// command is not parked while they do not, nor for parkCalm after (every
	// command fails then; moving them all aside would only reorder them).
	Ready func(context.Context) error

	outageAt atomic.Int64 // when Ready last failed or an attempt met an outage, Unix nanoseconds
}

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

// Handle processes one message of password.commands. It returns an error only
// for failures worth retrying (database or broker unavailable, a key not
// deployed yet).
func (p *Processor) Handle(ctx context.Context, m kafka.Message) error {
	err := p.handle(ctx, m)
	if err != nil && (mongostore.Unavailable(err) || kafkabus.Unavailable(err)) {
		// Seen by Park: failures around an outage are the outage's.
		p.outageAt.Store(p.now().UnixNano())
	}
	return err
}

func (p *Processor) handle(ctx context.Context, m kafka.Message) error {
	ctx, span := p.tracer().Start(tracing.Extract(ctx, m.Headers), "process "+m.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("pinreset.correlation_id", string(m.Key)), attribute.Int("messaging.kafka.partition", m.Partition)))
	defer span.End()
	log := p.Log.With(zap.String("correlation_id", string(m.Key)), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset))
	if sc := span.SpanContext(); sc.IsValid() {
		log = log.With(zap.String("trace_id", sc.TraceID().String()))
	}
	cmd, err := wire.DecodeCommand(m.Key, m.Value, p.Sealer)
	if errors.Is(err, pinreset.ErrMissingKey) {
		p.missingKey(err)
		return fmt.Errorf("command %s: %w", m.Key, err)
	}
	if err != nil {
		return p.deadLetter(ctx, log, m, err)
	}
	start := p.now()
	res, how, due, err := p.outcome(ctx, cmd)
	if err != nil {
		if errors.Is(err, pinreset.ErrMissingKey) {
			p.missingKey(err)
		}
		return fmt.Errorf("command %s: %w", cmd.CorrelationID, err)
	}
	// The client waits for the result, not for the audit record or the
	// events: both are safe to repeat, so they follow it. A crash in between
	// leaves the offset uncommitted; the redelivered command finds its
	// outcome recorded and settles them then (and the relay publishes the
	// events in any case).
	if err := p.publishResult(ctx, res); err != nil {
		return err
	}
	if due.events.ID != "" {
		p.publishEvents(ctx, due.events)
	}
	if due.audit {
		if err := p.appendAudit(ctx, cmd, due.code, due.memberID); err != nil {
			return err
		}
	}
	if p.Metrics != nil {
		p.Metrics.Outcomes.WithLabelValues(string(cmd.Kind), string(res.Code), how).Inc()
		p.Metrics.CommandDuration.WithLabelValues(string(cmd.Kind)).Observe(p.now().Sub(start).Seconds())
		p.Metrics.CommandAge.Observe(p.now().Sub(cmd.AcceptedAt).Seconds())
	}
	log.Info("command done", zap.String("asp_id", cmd.ASPID), zap.String("kind", string(cmd.Kind)),
		zap.String("code", string(res.Code)), zap.String("member_id", res.MemberID), zap.String("how", how),
		zap.Duration("took", p.now().Sub(start)), zap.Duration("since_accepted", p.now().Sub(cmd.AcceptedAt)))
	return nil
}

// owed is what a command still owes once its result is published: the
// audit record of its outcome, and the events of its change (an outbox
// entry, ID "" for none).
type owed struct {
	audit    bool
	code     pinreset.Code
	memberID string
	events   mongostore.Pending
}

// outcome finds the result of cmd: the recorded outcome of its correlation
// id if there is one (a retry gets the same answer, a different request with
// the same id a 409, a status query the outcome), else a new decision, which
// is recorded before it is published. how says which, for the log.
func (p *Processor) outcome(ctx context.Context, cmd pinreset.Command) (res pinreset.Result, how string, o owed, err error) {
	rec, err := p.Outcomes.FindOutcome(ctx, cmd.ASPID, cmd.CorrelationID)
	switch {
	case errors.Is(err, mongostore.ErrNotFound):
		if cmd.Kind == pinreset.KindStatus {
			// Keyed like its command, the query sits behind it on the same
			// partition and lane: no record now means no such command,
			// unless the command was parked to be tried again later.
			if p.Parked != nil {
				parked, err := p.Parked.IsParked(ctx, cmd.ASPID, cmd.CorrelationID)
				if err != nil {
					return pinreset.Result{}, "", owed{}, err
				}
				if parked {
					return pinreset.NewResult(cmd, pinreset.CodeAccepted, "", p.now()), "status", owed{}, nil
				}
			}
			return pinreset.NewResult(cmd, pinreset.CodeNotFound, "", p.now()), "status", owed{}, nil
		}
	case err != nil:
		return pinreset.Result{}, "", owed{}, err
	default:
		return p.recorded(cmd, rec)
	}

	fp, err := p.Fingerprinter.Fingerprint(cmd.Content())
	if err != nil {
		return pinreset.Result{}, "", owed{}, err
	}
	now := p.now()
	window := p.ReplayWindow
	if window <= 0 {
		window = 24 * time.Hour
	}
	// KMV1 binds only the body, so a captured request can be sent again
	// under a fresh correlation id and fresh times. Deciding it again is
	// harmless, but for one case: content that set a PIN would set it again
	// (a captured reset undoing a later change). So content that set a PIN
	// is refused under any other correlation id within the replay window.
	// A wrong PIN sent again is answered from the member's memory of wrong
	// attempts, without argon2 and without being counted (attemptKeys,
	// pinreset.Member.WrongAttempts); any other refusal changed nothing and
	// may be retried. The fingerprint holds the
	// PINs: it must tell two requests that differ only in a PIN apart.
	// KMV2 binds the correlation id and the times: its replay is stale (401
	// at the ingress) or has this correlation id (answered above), so the
	// rule is skipped and a member may set an earlier PIN again.
	kmv2 := cmd.Auth == pinreset.SchemeKMV2
	prev, prevAt, err := "", time.Time{}, error(mongostore.ErrNotFound)
	if !kmv2 {
		prev, prevAt, err = p.Contents.FindContent(ctx, cmd.ASPID, fp)
	}
	switch {
	case err == nil && prev != cmd.CorrelationID && now.Sub(prevAt) < window:
		how = "replay"
		res = pinreset.NewResult(cmd, pinreset.CodeDuplicateRequest, "", now)
	case err != nil && !errors.Is(err, mongostore.ErrNotFound):
		return pinreset.Result{}, "", owed{}, err
	default:
		how = "decided"
		if err := p.attemptKeys(&cmd); err != nil {
			return pinreset.Result{}, "", owed{}, err
		}
		if res, o.events, err = p.decide(ctx, cmd); err != nil {
			return pinreset.Result{}, "", owed{}, err
		}
		if res.Code == pinreset.CodeSuccess && !kmv2 {
			// A crash before this line leaves the replay window open for this
			// content until it is redelivered, which records it.
			if err := p.Contents.RecordContent(ctx, cmd.ASPID, fp, cmd.CorrelationID, now); err != nil {
				return pinreset.Result{}, "", owed{}, err
			}
		}
	}
	err = p.Outcomes.InsertOutcome(ctx, mongostore.Outcome{
		ASPID: cmd.ASPID, CorrelationID: cmd.CorrelationID, Kind: cmd.Kind, Fingerprint: fp,
		Code: res.Code, MemberID: res.MemberID, AcceptedAt: cmd.AcceptedAt, CompletedAt: res.CompletedAt, WorkerID: p.WorkerID,
	})
	if errors.Is(err, mongostore.ErrDuplicate) {
		// Another worker recorded it meanwhile (a rebalance handed the
		// partition over mid-command): its record is the outcome.
		rec, err := p.Outcomes.FindOutcome(ctx, cmd.ASPID, cmd.CorrelationID)
		if err != nil {
			return pinreset.Result{}, "", owed{}, err
		}
		res, how, ro, err := p.recorded(cmd, rec)
		ro.events = o.events
		return res, how, ro, err
	}
	if err != nil {
		return pinreset.Result{}, "", owed{}, err
	}
	o.audit, o.code, o.memberID = true, res.Code, res.MemberID
	return res, how, o, nil
}

// attemptKeys gives cmd the attempt keys the member rules compare with the
// member's memory of wrong attempts (pinreset.Member.WrongAttempts): of
// its currentPassword (a change) and of its newPassword (a set forgets the
// attempts of the PIN it sets), each under every fingerprint key. They hold
// a PIN, as they must (two wrong PINs must be told apart), scoped to the
// member. HMACs only: a replayed wrong attempt is then answered without
// argon2 work.
func (p *Processor) attemptKeys(cmd *pinreset.Command) error {
	if cmd.Kind != pinreset.KindChange && cmd.Kind != pinreset.KindReset {
		return nil
	}
	var err error
	if cmd.Kind == pinreset.KindChange {
		if cmd.AttemptKeys, err = p.Fingerprinter.Fingerprints(cmd.AttemptContent()); err != nil {
			return fmt.Errorf("attempt keys: %w", err)
		}
	}
	if cmd.NewPINKeys, err = p.Fingerprinter.Fingerprints(cmd.NewPINAttemptContent()); err != nil {
		return fmt.Errorf("attempt keys: %w", err)
	}
	return nil
}

// appendAudit appends the outcome of cmd to the audit trail, once: a record the
// trail already holds (appended before a crash or by another worker) is not
// appended again.
func (p *Processor) appendAudit(ctx context.Context, cmd pinreset.Command, code pinreset.Code, memberID string) error {
	kind := audit.KindUnknown
	if cmd.Kind == pinreset.KindReset || cmd.Kind == pinreset.KindChange {
		kind = string(cmd.Kind)
	}
	r := audit.Record{ASPID: cmd.ASPID, Kind: kind, MemberID: memberID, CorrelationID: cmd.CorrelationID,
		Code: string(code), At: p.now().UTC(), WorkerID: p.WorkerID}
	if memberID == "" && cmd.LoginID != "" {
		// No member: the trail says which loginId was asked for, keyed, never
		// in clear. No PIN is in it: it needs none.
		h, err := p.Fingerprinter.Fingerprint([]byte("audit-login\x00" + cmd.ASPID + "\x00" + cmd.LoginID))
		if err != nil {
			return err
		}
		r.LoginIDHash = h
	}
	if _, err := p.Audit.Append(ctx, r); err != nil && !errors.Is(err, audit.ErrRecorded) {
		return fmt.Errorf("audit command %s: %w", cmd.CorrelationID, err)
	}
	return nil
}

// recorded answers cmd from the recorded outcome of its correlation id. The
// same command found decided still owes the audit record of that outcome:
// it may be the redelivery of a command whose worker died before appending
// it (if not, the trail refuses the second record).
func (p *Processor) recorded(cmd pinreset.Command, rec mongostore.Outcome) (pinreset.Result, string, owed, error) {
	if cmd.Kind == pinreset.KindStatus {
		return pinreset.NewResult(cmd, rec.Code, rec.MemberID, rec.CompletedAt), "status", owed{}, nil
	}
	if rec.Fingerprint == "" {
		// A rejected command has no fingerprint (the dead-letter path
		// audits it); its correlation id keeps its one outcome, and a retry
		// must use a new one.
		return pinreset.NewResult(cmd, rec.Code, "", rec.CompletedAt), "repeated", owed{}, nil
	}
	same, err := p.Fingerprinter.SameFingerprint(rec.Fingerprint, cmd.Content())
	if err != nil {
		return pinreset.Result{}, "", owed{}, fmt.Errorf("compare with the recorded request: %w", err)
	}
	if !same {
		return pinreset.NewResult(cmd, pinreset.CodeCorrelationReused, "", p.now()), "reused", owed{}, nil
	}
	return pinreset.NewResult(cmd, rec.Code, rec.MemberID, rec.CompletedAt), "repeated",
		owed{audit: true, code: rec.Code, memberID: rec.MemberID}, nil
}

// decide applies cmd and returns its result and the outbox entry holding the
// events of its change (ID "" for none), which the caller publishes. A
// compare-and-set conflict (another command changed the member meanwhile)
// reloads and decides again.
func (p *Processor) decide(ctx context.Context, cmd pinreset.Command) (pinreset.Result, mongostore.Pending, error) {
	limit := p.MaxConflicts
	if limit <= 0 {
		limit = 16
	}
	for attempt := 0; attempt < limit; attempt++ {
		now := p.now()
		m, err := p.Members.FindMember(ctx, cmd.ASPID, cmd.LoginID)
		if errors.Is(err, mongostore.ErrNotFound) {
			code := pinreset.CodeUserNotFound
			if cmd.Expired(now) {
				code = pinreset.CodeExpired
			}
			return pinreset.NewResult(cmd, code, "", now), mongostore.Pending{}, nil
		}
		if err != nil {
			return pinreset.Result{}, mongostore.Pending{}, err
		}
		d, err := m.Decide(cmd, p.Hasher, p.Rules, now)
		if err != nil {
			return pinreset.Result{}, mongostore.Pending{}, err
		}
		if d.Replayed {
			return pinreset.NewResult(cmd, d.Code, m.ID, now), mongostore.Pending{}, nil
		}
		if !d.Changed {
			// Claimed on the member all the same (pinreset.Member.Recorded):
			// another worker deciding this command at once must not record
			// a different outcome beside a change it cannot see.
			d.Member = m.Recorded(cmd, d.Code, p.Rules, now)
		}
		_, span := p.tracer().Start(ctx, "store update", trace.WithAttributes(attribute.String("pinreset.member_id", m.ID),
			attribute.Int64("pinreset.version", d.Member.Version)))
		outbox, err := p.Members.UpdateMember(ctx, d.Member, m.Version, cmd.CorrelationID, d.Events)
		span.End()
		if errors.Is(err, mongostore.ErrConflict) {
			if p.Metrics != nil {
				p.Metrics.Conflicts.Inc()
			}
			continue
		}
		if err != nil {
			return pinreset.Result{}, mongostore.Pending{}, err
		}
		if p.Metrics != nil {
			for _, e := range d.Events {
				if e.Type == pinreset.EventLocked {
					p.Metrics.Locks.Inc()
				}
			}
		}
		var events mongostore.Pending
		if outbox != "" {
			events = mongostore.Pending{ID: outbox, Events: d.Events}
		}
		return pinreset.NewResult(cmd, d.Code, m.ID, now), events, nil
	}
	return pinreset.Result{}, mongostore.Pending{}, fmt.Errorf("member of command %s: %d compare-and-set conflicts in a row", cmd.CorrelationID, limit)
}

// publishEvents publishes the events of a committed change and clears its
// outbox entry. A failure is left to the relay, which publishes the entry
// later: the change is committed, so its events must go out.
func (p *Processor) publishEvents(ctx context.Context, e mongostore.Pending) {
	if err := PublishOutbox(ctx, p.Publisher, p.Members, e); err != nil {
		p.Log.Warn("publish events; the relay will retry", zap.String("outbox", e.ID), zap.Error(err))
	}
}

// OutboxDeleter clears outbox entries.
type OutboxDeleter interface {
	DeleteOutbox(ctx context.Context, id string) error
}

// PublishOutbox publishes an entry's events, then deletes the entry.
func PublishOutbox(ctx context.Context, pub Publisher, del OutboxDeleter, e mongostore.Pending) error {
	msgs, err := events.Messages(e.Events)
	if err != nil {
		return err
	}
	if err := pub.Publish(ctx, msgs...); err != nil {
		return err
	}
	return del.DeleteOutbox(ctx, e.ID)
}

func (p *Processor) publishResult(ctx context.Context, r pinreset.Result) error {
	v, err := wire.EncodeResult(r)
	if err != nil {
		return err
	}
	var headers []kafka.Header
	tracing.Inject(ctx, &headers)
	return p.Publisher.Publish(ctx, kafkabus.Message{Topic: kafkabus.TopicResults, Key: []byte(r.CorrelationID), Value: v, Headers: headers})
}

func (p *Processor) tracer() trace.Tracer {
	if p.Tracer == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return p.Tracer
}

// deadLetter moves a message that can never be processed to the DLQ, with the
// reason, records the rejection as the command's outcome when its ids can be
// read, and tells a waiting client. The reason names what failed, never a
// secret: DecodeCommand's errors hold none.
func (p *Processor) deadLetter(ctx context.Context, log *zap.Logger, m kafka.Message, reason error) error {
	now := p.now().UTC()
	cid, aspID, known := wire.PeekIDs(m.Key, m.Value)
	auditIt := true
	if known {
		err := p.Outcomes.InsertOutcome(ctx, mongostore.Outcome{ASPID: aspID, CorrelationID: cid,
			Code: pinreset.CodeRejected, CompletedAt: now, WorkerID: p.WorkerID})
		switch {
		case errors.Is(err, mongostore.ErrDuplicate):
			// A redelivery (audit it, once) or a broken message reusing the
			// correlation id of a decided command, whose record stands.
			rec, err := p.Outcomes.FindOutcome(ctx, aspID, cid)
			if err != nil {
				return err
			}
			auditIt = rec.Code == pinreset.CodeRejected
		case err != nil:
			return err
		}
	}
	// The trail keeps one record per correlation id and chain, so a
	// redelivered message is audited once. A message whose ids cannot be
	// read is named by its key and its place in the log, so two different
	// unreadable messages with the same key both appear.
	c := pinreset.Command{CorrelationID: cid, ASPID: aspID}
	if !known {
		key := m.Key[:min(len(m.Key), 64)]
		if !utf8.Valid(key) { // a BSON string must be UTF-8
			key = []byte(hex.EncodeToString(key[:min(len(key), 32)]))
		}
		c.CorrelationID = fmt.Sprintf("%s@%s/%d/%d", key, m.Topic, m.Partition, m.Offset)
	}
	if auditIt {
		if err := p.appendAudit(ctx, c, pinreset.CodeRejected, ""); err != nil {
			return err
		}
	}
	headers := append([]kafka.Header{}, m.Headers...)
	headers = append(headers,
		kafka.Header{Key: HeaderDLQReason, Value: []byte(reason.Error())},
		kafka.Header{Key: HeaderDLQWorker, Value: []byte(p.WorkerID)},
		kafka.Header{Key: HeaderDLQSource, Value: fmt.Appendf(nil, "%s/%d/%d", m.Topic, m.Partition, m.Offset)},
	)
	msgs := []kafkabus.Message{{Topic: kafkabus.TopicCommandsDLQ, Key: m.Key, Value: m.Value, Headers: headers}}
	if len(m.Key) > 0 && len(m.Key) <= 64 {
		r := pinreset.Result{CorrelationID: string(m.Key), ASPID: aspID, RequestID: header(m, wire.HeaderRequestID), Code: pinreset.CodeRejected,
			Message: pinreset.CodeRejected.Message(), CompletedAt: now}
		v, err := wire.EncodeResult(r)
		if err != nil {
			return err
		}
		msgs = append(msgs, kafkabus.Message{Topic: kafkabus.TopicResults, Key: m.Key, Value: v})
	}
	if err := p.Publisher.Publish(ctx, msgs...); err != nil {
		return fmt.Errorf("dead-letter %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	if p.Metrics != nil {
		p.Metrics.DeadLettered.Inc()
	}
	log.Warn("command dead-lettered", zap.Error(reason))
	return nil
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key && len(h.Value) <= 64 {
			return string(h.Value)
		}
	}
	return ""
}
