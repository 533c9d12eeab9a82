package main

// pwctl trace: one transaction's journey, joined from everything that
// records it: its command(s) on password.commands (and their copies parked
// on password.commands.retry or dead-lettered on password.commands.dlq),
// its outcome record, its result(s) on password.results, its events on
// password.events, and its audit record(s) with the state of their chains.
//
// It reads, never writes: the topics outside any consumer group (each only
// on the partition its key maps to, from the oldest offset kept to the end
// the partition had when the scan began), the database through the store's
// Outcome and IsParked and the audit trail's Find and Verify. Everything it
// prints is an id, a code, a time or a header known to be harmless, checked
// against its expected shape: the sealed part of a command (loginId, CI,
// PINs) is never opened, and no hash, token or CI is read into the output.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/events"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/wire"
	"github.com/kmwallet/pinreset/internal/worker"
)

// Shapes of the ids trace prints besides those of queues.go.
// Each is bounded below the 88 characters of a CI; shownAs also refuses
// a bare 6-digit value (a PIN).
var (
	memberRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	workerRE = regexp.MustCompile(`^[A-Za-z0-9._:@+-]{1,80}$`)
	chainRE  = regexp.MustCompile(`^[am]:[A-Za-z0-9._:-]{1,80}$`)
	codeRE   = regexp.MustCompile(`^[A-Za-z0-9_]{1,20}$`) // an outcome code, or an operator's action
	ceTypeRE = regexp.MustCompile(`^[a-z][a-z.]{0,80}$`)
)

// errNoTransaction: nothing anywhere names the transaction.
var errNoTransaction = errors.New("no such transaction")

// traceReport is what pwctl trace found, as -json prints it.
type traceReport struct {
	ASPID         string `json:"aspId"`
	CorrelationID string `json:"correlationId"`
	// Found: at least one message or record of the transaction exists.
	Found bool `json:"found"`
	// Status is the one-line answer ("decided 000_000 Success.", "pending:
	// ...", "no such transaction ...").
	Status   string          `json:"status"`
	Commands []traceCommand  `json:"commands"`
	Parked   []entry         `json:"parked"`       // copies on password.commands.retry
	DLQ      []entry         `json:"deadLettered"` // copies on password.commands.dlq
	Outcome  *traceOutcome   `json:"outcome"`      // the recorded outcome; null: none
	Marked   bool            `json:"parkedMarker"` // the store's parked marker (IsParked)
	Results  []traceResult   `json:"results"`
	Events   []traceEvent    `json:"events"`
	Audit    traceAudit      `json:"audit"`
	Timeline []traceStep     `json:"timeline"`
	Scanned  []span          `json:"scanned"`  // what was read of each topic
	NotFound []string        `json:"notFound"` // what could not be found, and why if known
	Other    int             `json:"otherAspMessages,omitempty"`
	memberOf map[string]bool // member ids named by the outcome, results and audit
}

// traceCommand is one message of the correlation id on password.commands.
type traceCommand struct {
	ID         string     `json:"id"` // topic/partition/offset
	WrittenAt  time.Time  `json:"writtenAt"`
	Kind       string     `json:"kind,omitempty"` // reset, change or status (a status query)
	AcceptedAt *time.Time `json:"acceptedAt,omitempty"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	Auth       string     `json:"auth,omitempty"`
	IngressID  string     `json:"ingressId,omitempty"` // x-ingress-id
	RequestID  string     `json:"requestId,omitempty"` // x-request-id
	TraceID    string     `json:"traceId,omitempty"`   // of the traceparent header
	Sealed     string     `json:"sealed,omitempty"`    // the sealed part described, never opened
	// ReadByWorkers: the workers' group has committed past it; null when
	// the committed offsets could not be read.
	ReadByWorkers *bool   `json:"committedByWorkers,omitempty"`
	Headers       []field `json:"headers"` // as pwctl dlq show prints them
	Unreadable    string  `json:"valueNotRead,omitempty"`
}

type traceOutcome struct {
	Code        string     `json:"code"`
	Message     string     `json:"message"`
	Kind        string     `json:"kind,omitempty"`
	MemberID    string     `json:"memberId,omitempty"`
	AcceptedAt  *time.Time `json:"acceptedAt,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	WorkerID    string     `json:"workerId,omitempty"`
}

type traceResult struct {
	ID          string     `json:"id"`
	WrittenAt   time.Time  `json:"writtenAt"`
	Code        string     `json:"code,omitempty"`
	Message     string     `json:"message,omitempty"`
	MemberID    string     `json:"memberId,omitempty"`
	RequestID   string     `json:"requestId,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	Unreadable  string     `json:"valueNotRead,omitempty"`
}

type traceEvent struct {
	ID            string     `json:"id"` // topic/partition/offset
	EventID       string     `json:"eventId"`
	Type          string     `json:"type"`
	Time          time.Time  `json:"time"`
	MemberID      string     `json:"memberId"`
	MemberVersion int64      `json:"memberVersion"` // the member's version the event announces
	Kind          string     `json:"kind,omitempty"`
	LockedUntil   *time.Time `json:"lockedUntil,omitempty"`
	Unlocked      bool       `json:"unlocked,omitempty"`
}

type traceAudit struct {
	Records []traceRecord `json:"records"`
	Chains  []traceChain  `json:"chains"`
	// Checked says how the chains were checked: audit verifies the whole
	// trail at once (it has no check of one chain).
	Checked string `json:"checked,omitempty"`
}

type traceRecord struct {
	At            time.Time `json:"at"`
	Chain         string    `json:"chain"`
	Seq           int64     `json:"seq"`
	Kind          string    `json:"kind"`
	MemberID      string    `json:"memberId,omitempty"`
	CorrelationID string    `json:"correlationId"`
	Code          string    `json:"code"`
	WorkerID      string    `json:"workerId,omitempty"`
	Note          string    `json:"note,omitempty"`
}

type traceChain struct {
	Chain string `json:"chain"`
	// Verified: true, false (Break says where) or null (not checked).
	Verified *bool  `json:"verified"`
	Break    string `json:"break,omitempty"`
}

// traceStep is one line of the journey.
type traceStep struct {
	At     time.Time `json:"at"`
	Step   string    `json:"step"`
	Where  string    `json:"where"`
	Detail string    `json:"detail"`
}

func traceCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return traceCmdEnv(ctx, args, os.Getenv, stdout, stderr)
}

func traceCmdEnv(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: pwctl trace -asp ID -correlation-id X [-json] [flags]

The journey of one transaction, in time order: its command on
password.commands (which ingress accepted it, where), copies parked on
password.commands.retry or dead-lettered on password.commands.dlq, its
outcome record, its results, its events (with the member version each
announces) and its audit records, with whether their hash chains verify;
then what could not be found. It reads only, outside any consumer group,
each topic's partition of the key up to its end when the scan began, and
never prints a PIN, hash, token, CI or anything sealed. Exit status 1 when
nothing at all is found.

`)
		fs.PrintDefaults()
	}
	brokers := fs.String("brokers", envOr("PINRESET_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka bootstrap brokers, comma-separated (TLS and SASL from PINRESET_KAFKA_*)")
	db := addAuditFlags(fs)
	aspID := fs.String("asp", "", "the ASP id (required): the transaction is the ASP's correlation id")
	cid := fs.String("correlation-id", "", "the transaction's correlation id (required)")
	asJSON := fs.Bool("json", false, "print one JSON object, for tools")
	group := fs.String("group", envOr("PINRESET_CONSUMER_GROUP", "pinreset-worker"), "the workers' consumer group: says whether they have read the command")
	allParts := fs.Bool("all-partitions", false, "read every partition of each topic, not only the key's (after a topic's partition count was changed)")
	verify := fs.Bool("verify", true, "check the hash chains of the audit records found (reads the whole audit trail)")
	defRetention := 168 * time.Hour
	if d, err := time.ParseDuration(getenv("PINRESET_OUTCOME_RETENTION")); err == nil && d > 0 {
		defRetention = d
	}
	retention := fs.Duration("outcome-retention", defRetention, "the workers' PINRESET_OUTCOME_RETENTION: an outcome older than this is swept")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("trace: unexpected argument %q", fs.Arg(0))
	}
	// The values are not echoed: a mistyped flag could hold anything.
	if !aspRE.MatchString(*aspID) {
		fs.Usage()
		return errors.New("trace: -asp must be an ASP id (15 letters or digits)")
	}
	if !cidRE.MatchString(*cid) {
		fs.Usage()
		return errors.New("trace: -correlation-id must be a correlation id (yyMMddHHmmss-xxxxxxx)")
	}
	cluster, err := kafkaCluster(*brokers)
	if err != nil {
		return err
	}
	store, closeDB, err := openStore(ctx, *db.uri, *db.db, getenv)
	if err != nil {
		return err
	}
	defer closeDB()
	t := tracer{cluster: cluster, store: store, trail: mongostore.NewAuditLog(store.Database()), group: *group, allParts: *allParts,
		verify: *verify, retention: *retention, now: time.Now().UTC()}
	rep, err := t.trace(ctx, *aspID, *cid)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := printTrace(stdout, rep); err != nil {
		return err
	}
	if !rep.Found {
		return fmt.Errorf("trace: %w", errNoTransaction)
	}
	return nil
}

// tracer gathers a traceReport.
type tracer struct {
	cluster   kafkabus.Cluster
	store     *mongostore.Store
	trail     *mongostore.AuditLog
	group     string
	allParts  bool
	verify    bool
	retention time.Duration
	now       time.Time
}

func (t *tracer) trace(ctx context.Context, aspID, cid string) (*traceReport, error) {
	rep := &traceReport{ASPID: aspID, CorrelationID: cid, Commands: []traceCommand{}, Parked: []entry{}, DLQ: []entry{},
		Results: []traceResult{}, Events: []traceEvent{}, Audit: traceAudit{Records: []traceRecord{}, Chains: []traceChain{}},
		Timeline: []traceStep{}, NotFound: []string{}, memberOf: map[string]bool{}}
	key := []byte(cid)
	if err := t.commands(ctx, rep, key); err != nil {
		return nil, err
	}
	for _, q := range []queue{parkedQueue, dlqQueue} {
		entries, spans, err := readQueueOf(ctx, t.cluster, t.store.Database(), q, t.group, t.now, key)
		if err != nil {
			return nil, err
		}
		rep.Scanned = append(rep.Scanned, spans...)
		for _, e := range entries {
			if e.ASPID != "" && e.ASPID != aspID {
				rep.Other++
				continue
			}
			if q.topic == kafkabus.TopicCommandsRetry {
				rep.Parked = append(rep.Parked, e)
			} else {
				rep.DLQ = append(rep.DLQ, e)
			}
		}
	}
	if err := t.outcome(ctx, rep); err != nil {
		return nil, err
	}
	if err := t.results(ctx, rep, key); err != nil {
		return nil, err
	}
	if err := t.audit(ctx, rep); err != nil {
		return nil, err
	}
	// Events are keyed by member: the outcome, results and audit records
	// name the member, if any.
	if err := t.events(ctx, rep); err != nil {
		return nil, err
	}
	rep.Found = len(rep.Commands)+len(rep.Parked)+len(rep.DLQ)+len(rep.Results)+len(rep.Events)+len(rep.Audit.Records) > 0 ||
		rep.Outcome != nil || rep.Marked
	t.timeline(rep)
	t.conclude(rep)
	return rep, nil
}

func (t *tracer) commands(ctx context.Context, rep *traceReport, key []byte) error {
	client := t.cluster.Client()
	committed, cerr := committedOffsets(ctx, client, t.group, kafkabus.TopicCommands)
	var msgs []kafka.Message
	spans, err := scanTopic(ctx, t.cluster, kafkabus.TopicCommands, key, t.allParts, func(m kafka.Message) { msgs = append(msgs, m) })
	if err != nil {
		return err
	}
	rep.Scanned = append(rep.Scanned, spans...)
	for _, m := range msgs {
		f := clearFields(m.Value)
		if a := f.get("aspId"); a != "" && a != rep.ASPID {
			rep.Other++
			continue
		}
		c := traceCommand{ID: fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset), WrittenAt: m.Time.UTC(),
			Kind: f.get("kind"), Auth: f.get("auth"), Headers: shownHeaders(m), Unreadable: f.detail}
		c.AcceptedAt, c.ExpiresAt = timeField(f, "acceptedAt"), timeField(f, "expiresAt")
		for _, x := range f.shown {
			if x.Name == "sealed" {
				c.Sealed = x.Value
			}
		}
		if v := headerValue(m, wire.HeaderIngressID); hostLike(v) {
			c.IngressID = v
		}
		if v := headerValue(m, wire.HeaderRequestID); tokenRE.MatchString(v) && redact(v) == v {
			c.RequestID = v
		}
		if v := headerValue(m, "traceparent"); traceRE.MatchString(v) {
			c.TraceID = strings.Split(v, "-")[1]
		}
		if cerr == nil {
			read := m.Offset < committed[m.Partition]
			c.ReadByWorkers = &read
		}
		rep.Commands = append(rep.Commands, c)
	}
	return nil
}

func timeField(f fields, name string) *time.Time {
	v := f.get(name)
	if v == "" {
		return nil
	}
	ts, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil
	}
	ts = ts.UTC()
	return &ts
}

func (t *tracer) outcome(ctx context.Context, rep *traceReport) error {
	o, err := t.store.Outcome(ctx, rep.ASPID, rep.CorrelationID)
	switch {
	case errors.Is(err, pinreset.ErrNoOutcome):
	case err != nil:
		return err
	default:
		out := &traceOutcome{Code: string(o.Code), Kind: shownAs(string(o.Kind), nameRE), MemberID: shownAs(o.MemberID, memberRE),
			WorkerID: shownAs(o.WorkerID, workerRE), AcceptedAt: nonZero(o.AcceptedAt), CompletedAt: nonZero(o.CompletedAt)}
		if o.Code.Known() {
			out.Message = o.Code.Message()
		} else {
			out.Code = shownAs(string(o.Code), codeRE)
		}
		if memberRE.MatchString(o.MemberID) {
			rep.memberOf[o.MemberID] = true
		}
		rep.Outcome = out
	}
	rep.Marked, err = t.store.IsParked(ctx, rep.ASPID, rep.CorrelationID)
	return err
}

func (t *tracer) results(ctx context.Context, rep *traceReport, key []byte) error {
	var msgs []kafka.Message
	spans, err := scanTopic(ctx, t.cluster, kafkabus.TopicResults, key, t.allParts, func(m kafka.Message) { msgs = append(msgs, m) })
	if err != nil {
		return err
	}
	rep.Scanned = append(rep.Scanned, spans...)
	for _, m := range msgs {
		r := traceResult{ID: fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset), WrittenAt: m.Time.UTC()}
		res, err := wire.DecodeResult(m.Value)
		if err != nil {
			r.Unreadable = fmt.Sprintf("value of %d bytes is not a result of ours, not shown", len(m.Value))
			rep.Results = append(rep.Results, r)
			continue
		}
		if res.ASPID != "" && res.ASPID != rep.ASPID {
			rep.Other++
			continue
		}
		r.Code, r.Message = string(res.Code), res.Code.Message() // the catalogue's text, not the message's
		r.MemberID, r.CompletedAt = shownAs(res.MemberID, memberRE), nonZero(res.CompletedAt)
		if tokenRE.MatchString(res.RequestID) && redact(res.RequestID) == res.RequestID {
			r.RequestID = res.RequestID
		}
		if memberRE.MatchString(res.MemberID) {
			rep.memberOf[res.MemberID] = true
		}
		rep.Results = append(rep.Results, r)
	}
	return nil
}

// audit finds the records of the correlation id, and those of the
// operators' redrives and purges of its queued copies (named
// "<correlation id>@<topic>/<partition>/<offset>"), and checks their chains.
func (t *tracer) audit(ctx context.Context, rep *traceReport) error {
	ids := []string{rep.CorrelationID}
	seen := map[string]bool{}
	for _, e := range append(append([]entry{}, rep.Parked...), rep.DLQ...) {
		if e.Action != nil && !seen[e.Action.ID] {
			seen[e.Action.ID] = true
			ids = append(ids, rep.CorrelationID+"@"+e.Action.ID)
		}
	}
	var recs []audit.Record
	for _, id := range ids {
		got, err := t.trail.Find(ctx, id, "")
		if err != nil {
			return err
		}
		recs = append(recs, got...)
	}
	chains := map[string]bool{}
	var order []string
	for _, r := range recs {
		// (An operator's record of a queued copy whose ids were unreadable
		// has no ASP.)
		if r.ASPID != "" && r.ASPID != rep.ASPID {
			rep.Other++
			continue
		}
		rec := traceRecord{At: r.At.UTC(), Chain: shownAs(r.Chain, chainRE), Seq: r.Seq, Kind: shownAs(r.Kind, nameRE),
			MemberID: shownAs(r.MemberID, memberRE), Code: shownAs(r.Code, codeRE), WorkerID: shownAs(r.WorkerID, workerRE),
			Note: redact(r.Note), CorrelationID: rep.CorrelationID}
		if pos, ok := strings.CutPrefix(r.CorrelationID, rep.CorrelationID+"@"); ok {
			// An operator's record of a queued copy (Find matched it exactly).
			rec.CorrelationID += "@" + orNot(shownAs(pos, positionRE), "(not shown)")
		}
		rep.Audit.Records = append(rep.Audit.Records, rec)
		if memberRE.MatchString(r.MemberID) {
			rep.memberOf[r.MemberID] = true
		}
		if !chains[r.Chain] {
			chains[r.Chain] = true
			order = append(order, r.Chain)
		}
	}
	sort.SliceStable(rep.Audit.Records, func(i, j int) bool { return rep.Audit.Records[i].At.Before(rep.Audit.Records[j].At) })
	if len(order) == 0 {
		return nil
	}
	if !t.verify {
		for _, c := range order {
			rep.Audit.Chains = append(rep.Audit.Chains, traceChain{Chain: shownAs(c, chainRE)})
		}
		rep.Audit.Checked = "not checked (-verify=false)"
		return nil
	}
	// audit checks the whole trail at once; the breaks of other chains are
	// counted, not named.
	vr, err := t.trail.Verify(ctx, nil)
	if err != nil {
		return err
	}
	breaks := map[string]audit.Break{}
	for _, b := range vr.Broken {
		breaks[b.Chain] = b
	}
	others := len(vr.Broken)
	for _, c := range order {
		ok := true
		tc := traceChain{Chain: shownAs(c, chainRE)}
		if b, broken := breaks[c]; broken {
			ok, tc.Break = false, fmt.Sprintf("seq %d: %s", b.Seq, redact(b.Reason))
			others--
		}
		tc.Verified = &ok
		rep.Audit.Chains = append(rep.Audit.Chains, tc)
	}
	rep.Audit.Checked = fmt.Sprintf("the whole trail verified: %d chain(s), %d record(s); %d other chain(s) broken", vr.Chains, vr.Records, others)
	return nil
}

// events reads password.events on the partition of each member the
// transaction names, for the events of this correlation id.
func (t *tracer) events(ctx context.Context, rep *traceReport) error {
	members := make([]string, 0, len(rep.memberOf))
	for m := range rep.memberOf {
		members = append(members, m)
	}
	sort.Strings(members)
	for _, member := range members {
		var msgs []kafka.Message
		spans, err := scanTopic(ctx, t.cluster, kafkabus.TopicEvents, []byte(member), t.allParts, func(m kafka.Message) { msgs = append(msgs, m) })
		if err != nil {
			return err
		}
		rep.Scanned = append(rep.Scanned, spans...)
		for _, m := range msgs {
			var d events.Data
			if json.Unmarshal(m.Value, &d) != nil || d.CorrelationID != rep.CorrelationID {
				continue
			}
			if d.ASPID != rep.ASPID {
				rep.Other++
				continue
			}
			e := traceEvent{ID: fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset), MemberID: member, Kind: shownAs(string(d.Kind), nameRE),
				Unlocked: d.Unlocked, Type: shownAs(headerValue(m, "ce_type"), ceTypeRE)}
			if ts, err := time.Parse(time.RFC3339Nano, headerValue(m, "ce_time")); err == nil {
				e.Time = ts.UTC()
			} else {
				e.Time = d.OccurredAt.UTC()
			}
			if d.LockedUntil != nil {
				lu := d.LockedUntil.UTC()
				e.LockedUntil = &lu
			}
			// "<member id>:<version>:<n>"
			id := headerValue(m, "ce_id")
			e.EventID = "(not shown)"
			if rest, ok := strings.CutPrefix(id, member+":"); ok {
				v, n, _ := strings.Cut(rest, ":")
				version, verr := strconv.ParseInt(v, 10, 64)
				if _, nerr := strconv.Atoi(n); verr == nil && nerr == nil {
					e.EventID, e.MemberVersion = id, version
				}
			}
			rep.Events = append(rep.Events, e)
		}
	}
	return nil
}

// timeline puts every step in time order (steps at the same instant stay
// in the order of the journey).
func (t *tracer) timeline(rep *traceReport) {
	add := func(at time.Time, step, where, detail string) {
		rep.Timeline = append(rep.Timeline, traceStep{At: at.UTC(), Step: step, Where: where, Detail: detail})
	}
	for _, c := range rep.Commands {
		step, what := "command", dash(c.Kind)
		if c.Kind == string(pinreset.KindStatus) {
			step, what = "status query", "status query"
		}
		var d []string
		d = append(d, what+" accepted by ingress "+orNot(c.IngressID, "(not named: a command from before x-ingress-id)"))
		ids := []string{}
		if c.RequestID != "" {
			ids = append(ids, "request "+c.RequestID)
		}
		if c.TraceID != "" {
			ids = append(ids, "trace "+c.TraceID)
		}
		if len(ids) > 0 {
			d[0] += " (" + strings.Join(ids, ", ") + ")"
		}
		if c.ExpiresAt != nil {
			d = append(d, "expires "+stamp(*c.ExpiresAt))
		}
		if c.Unreadable != "" {
			d = append(d, c.Unreadable)
		}
		switch {
		case c.ReadByWorkers == nil:
		case *c.ReadByWorkers:
			d = append(d, "group "+t.group+" committed past it")
		default:
			d = append(d, "group "+t.group+" has not committed past it yet")
		}
		add(c.WrittenAt, step, c.ID, strings.Join(d, "; "))
	}
	for _, e := range rep.Parked {
		d := fmt.Sprintf("attempt %d, reason %s (%s), from %s", e.Attempt, e.Reason, e.ReasonText, dash(e.Source))
		if e.NotBefore != nil {
			d += ", next try " + stamp(*e.NotBefore)
		}
		add(e.WrittenAt, "parked", e.ID, d+"; "+queueState(e))
	}
	for _, e := range rep.DLQ {
		by := ""
		for _, h := range shownHeaders(e.msg) {
			if h.Name == worker.HeaderDLQWorker && !strings.HasPrefix(h.Value, "(") {
				by = "by worker " + h.Value + ", "
			}
		}
		add(e.WrittenAt, "dead-lettered", e.ID, fmt.Sprintf("%sfrom %s, reason: %s; %s", by, dash(e.Source), e.ReasonText, queueState(e)))
	}
	if o := rep.Outcome; o != nil {
		at := t.now
		if o.CompletedAt != nil {
			at = *o.CompletedAt
		}
		var d []string
		if o.Kind != "" {
			d = append(d, o.Kind)
		}
		if o.MemberID != "" {
			d = append(d, "member "+o.MemberID)
		} else {
			d = append(d, "no member")
		}
		if o.WorkerID != "" {
			d = append(d, "by "+o.WorkerID)
		}
		add(at, "decided", "outcome record", o.Code+" "+o.Message+" ("+strings.Join(d, ", ")+")")
	}
	for _, r := range rep.Results {
		if r.Unreadable != "" {
			add(r.WrittenAt, "result", r.ID, r.Unreadable)
			continue
		}
		var d []string
		if r.MemberID != "" {
			d = append(d, "member "+r.MemberID)
		}
		if r.RequestID != "" {
			d = append(d, "to request "+r.RequestID)
		}
		detail := r.Code + " " + r.Message
		if len(d) > 0 {
			detail += " (" + strings.Join(d, ", ") + ")"
		}
		add(r.WrittenAt, "result", r.ID, detail)
	}
	for _, e := range rep.Events {
		d := strings.TrimPrefix(e.Type, "com.kmwallet.pinreset.")
		if e.Kind != "" {
			d += " (" + e.Kind + ")"
		}
		d += fmt.Sprintf(", member %s version %d, event %s", e.MemberID, e.MemberVersion, e.EventID)
		if e.LockedUntil != nil {
			d += ", locked until " + stamp(*e.LockedUntil)
		}
		if e.Unlocked {
			d += ", unlocked"
		}
		add(e.Time, "event", e.ID, d)
	}
	for _, r := range rep.Audit.Records {
		d := r.Kind + " " + r.Code
		if r.MemberID != "" {
			d += ", member " + r.MemberID
		}
		if r.WorkerID != "" {
			d += ", by " + r.WorkerID
		}
		if r.Note != "" {
			d += ": " + r.Note
		}
		if r.CorrelationID != rep.CorrelationID {
			d += " (" + r.CorrelationID + ")"
		}
		add(r.At, "audited", fmt.Sprintf("audit %s seq %d", r.Chain, r.Seq), d)
	}
	sort.SliceStable(rep.Timeline, func(i, j int) bool { return rep.Timeline[i].At.Before(rep.Timeline[j].At) })
}

func queueState(e entry) string {
	s := "state " + e.State
	if a := e.Action; a != nil {
		s += fmt.Sprintf(" (%s by %s at %s: %s)", a.Action, a.Operator, stamp(a.StartedAt), a.Note)
	}
	return s
}

// conclude writes the status line and what could not be found.
func (t *tracer) conclude(rep *traceReport) {
	miss := func(format string, args ...any) { rep.NotFound = append(rep.NotFound, fmt.Sprintf(format, args...)) }
	cidTime, cidErr := time.Parse("060102150405", rep.CorrelationID[:12])
	// What a topic kept: "password.commands/3 offsets 120 to 500 read".
	kept := func(topic string) (string, bool) {
		var parts []string
		removed := false
		for _, s := range rep.Scanned {
			if s.Topic != topic {
				continue
			}
			p := fmt.Sprintf("%s/%d offsets %d to %d read", s.Topic, s.Partition, s.First, s.End)
			if s.End == s.First {
				p = fmt.Sprintf("%s/%d holds no message", s.Topic, s.Partition)
			}
			if s.First > 0 {
				removed = true
				p += fmt.Sprintf("; offsets below %d were removed by retention", s.First)
				if s.OldestAt != nil {
					p += ", the oldest kept was written " + stamp(*s.OldestAt)
				}
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "; "), removed
	}
	retentionHint := func(topic string) string {
		where, removed := kept(topic)
		if !removed {
			return " (" + where + "; nothing was removed by retention)"
		}
		if cidErr == nil {
			return fmt.Sprintf(" (%s; the correlation id names %s in the client's zone: if older, retention has passed)", where, cidTime.Format("2006-01-02 15:04:05"))
		}
		return " (" + where + ")"
	}
	if len(rep.Commands) == 0 {
		miss("no command on %s%s", kafkabus.TopicCommands, retentionHint(kafkabus.TopicCommands))
	}
	if rep.Outcome == nil {
		why := ""
		switch {
		case rep.Marked:
			why = ": the command is parked, and tried again until it is decided"
		case cidErr == nil && t.now.Sub(cidTime) > t.retention+24*time.Hour:
			why = fmt.Sprintf(": outcomes are kept %s (-outcome-retention) and the correlation id names %s", t.retention, cidTime.Format("2006-01-02 15:04:05"))
		case len(rep.Commands) > 0 && !anyRead(rep.Commands):
			why = ": not decided yet (the workers' group has not committed past the command)"
		}
		miss("no outcome recorded for ASP %s%s", rep.ASPID, why)
	}
	if len(rep.Results) == 0 {
		miss("no result on %s%s", kafkabus.TopicResults, retentionHint(kafkabus.TopicResults))
	}
	if len(rep.Events) == 0 {
		switch {
		case len(rep.memberOf) == 0:
			miss("no event: no member is named by an outcome, result or audit record (events are keyed by member)")
		default:
			where, _ := kept(kafkabus.TopicEvents)
			miss("no event of this correlation id on the member's partition of %s (%s); only a PIN set or a lock is announced", kafkabus.TopicEvents, where)
		}
	}
	if len(rep.Audit.Records) == 0 {
		miss("no audit record of this correlation id")
	}
	if rep.Other > 0 {
		miss("%d message(s) or record(s) of this correlation id belong to another ASP: not shown", rep.Other)
	}

	switch o := rep.Outcome; {
	case !rep.Found:
		rep.Status = fmt.Sprintf("no such transaction: nothing of ASP %s names correlation id %s", rep.ASPID, rep.CorrelationID)
	case o != nil && o.Code == string(pinreset.CodeExpired):
		rep.Status = "expired: " + o.Code + " " + o.Message + " Nothing was changed."
	case o != nil && o.Code == string(pinreset.CodeRejected) && len(rep.DLQ) == 0 && slices.ContainsFunc(rep.Parked, func(e entry) bool { return e.State == statePurged }):
		rep.Status = "withdrawn by an operator (parked, purged): " + o.Code + " " + o.Message + " Nothing was changed."
	case o != nil && o.Code == string(pinreset.CodeRejected):
		rep.Status = "dead-lettered: " + o.Code + " " + o.Message
	case o != nil && o.Code == string(pinreset.CodeSuccess):
		rep.Status = "succeeded: " + o.Code + " " + o.Message
	case o != nil:
		rep.Status = "refused: " + o.Code + " " + o.Message
	case rep.Marked || hasPending(rep.Parked):
		rep.Status = "parked: no outcome yet; a worker tries it again"
	case len(rep.DLQ) > 0:
		rep.Status = "dead-lettered, its ids not readable: no outcome recorded"
	case len(rep.Results) > 0:
		last := rep.Results[len(rep.Results)-1]
		rep.Status = "outcome record no longer kept; the last result says " + last.Code + " " + last.Message
	case len(rep.Commands) > 0 && !anyRead(rep.Commands):
		rep.Status = "pending: not decided yet (the workers' group has not committed past the command)"
	case len(rep.Commands) > 0:
		rep.Status = "no outcome: the workers' group committed past the command and no outcome is recorded (being decided, or its outcome was swept)"
	default:
		rep.Status = "no outcome: only traces of it remain (see below)"
	}
}

func anyRead(cs []traceCommand) bool {
	for _, c := range cs {
		if c.ReadByWorkers == nil || *c.ReadByWorkers {
			return true
		}
	}
	return false
}

func hasPending(es []entry) bool {
	for _, e := range es {
		if e.pending() {
			return true
		}
	}
	return false
}

func printTrace(w io.Writer, rep *traceReport) error {
	fmt.Fprintf(w, "transaction %s of ASP %s: %s\n", rep.CorrelationID, rep.ASPID, rep.Status)
	if len(rep.Timeline) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tSTEP\tWHERE\tWHAT")
		for _, s := range rep.Timeline {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", stamp(s.At), s.Step, s.Where, s.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.Audit.Chains) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "audit chains:")
		for _, c := range rep.Audit.Chains {
			switch {
			case c.Verified == nil:
				fmt.Fprintf(w, "  %s: not checked\n", c.Chain)
			case *c.Verified:
				fmt.Fprintf(w, "  %s: verifies\n", c.Chain)
			default:
				fmt.Fprintf(w, "  %s: BROKEN at %s\n", c.Chain, c.Break)
			}
		}
		fmt.Fprintf(w, "  (%s)\n", rep.Audit.Checked)
	}
	if len(rep.NotFound) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "not found:")
		for _, s := range rep.NotFound {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	}
	return nil
}

// shownAs is s if it has the shape re and is not a bare 6-digit number,
// "" if empty, else a placeholder.
func shownAs(s string, re *regexp.Regexp) string {
	switch {
	case s == "":
		return ""
	case re.MatchString(s) && !digits6RE.MatchString(s):
		return s
	default:
		return "(not shown)"
	}
}

func nonZero(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func orNot(s, instead string) string {
	if s == "" {
		return instead
	}
	return s
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
