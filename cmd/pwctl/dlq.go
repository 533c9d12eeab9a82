package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/mongostore"
)

const queueUsage = `usage: pwctl %[1]s <command> [flags]

%[2]s

commands:
  list     the messages not handled yet: id (topic/partition/offset), age, ASP,
           correlation id, kind, reason, state; -all adds the handled ones and
           what was done, -json prints one JSON object a line
  show     one message (-id) or those of a correlation id: its clear fields and
           headers only (the sealed part is never opened; unknown headers and
           fields are named, not printed)
  redrive  put a message (-id, -correlation-id, or every one of -reason) back on
           password.commands under its correlation id, with its value and trace
           headers, once: a message already redriven is left alone
  purge    record a message (-id or -correlation-id) as handled, with a required
           -reason; Kafka keeps it, list no longer shows it

Every redrive and purge is recorded in the collection queue_actions and in the
audit trail (pwctl audit verify), with -operator (default $USER) and why.
Run 'pwctl %[1]s <command> -h' for its flags.
`

var queueAbout = map[string]string{
	"dlq":    "Commands the worker could not decode or open, on password.commands.dlq (runbook:\nDLQ filling). A redriven command whose ids were readable is answered from\nits recorded outcome (the rejection): redrive re-checks a fix, it changes no outcome.",
	"parked": "Commands parked on password.commands.retry after their retry budget (runbook:\nCommands parked). list shows those the worker's retry group has not tried\nagain yet (-group names the worker's group). A worker tries each again by\nitself; redrive sends one to password.commands at once; purge withdraws it:\nat its next try the worker ends it as rejected (000_422, nothing applied)\nunless it was decided already, and it (and its later copies) leave list.",
}

// queueCmd runs 'pwctl dlq|parked list|show|redrive|purge'.
func queueCmd(ctx context.Context, q queue, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := fmt.Sprintf(queueUsage, q.name, queueAbout[q.name])
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return fmt.Errorf("%s: no command", q.name)
		}
		return flag.ErrHelp
	}
	sub := args[0]
	switch sub {
	case "list", "show", "redrive", "purge":
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%s: unknown command %q", q.name, sub)
	}
	fs := flag.NewFlagSet("pwctl "+q.name+" "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", envOr("PINRESET_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka bootstrap brokers, comma-separated (TLS and SASL from PINRESET_KAFKA_*)")
	db := addAuditFlags(fs)
	group := new(string)
	if q.topic == kafkabus.TopicCommandsRetry {
		group = fs.String("group", envOr("PINRESET_CONSUMER_GROUP", "pinreset-worker"), "the workers' consumer group: the messages below the offsets <group>-retry committed were tried again")
	}
	var (
		all, asJSON          *bool
		id, cid, reason, why *string
		operator             *string
	)
	switch sub {
	case "list":
		all = fs.Bool("all", false, "also list the handled messages (redriven, purged, tried again by the worker) and what was done")
		asJSON = fs.Bool("json", false, "print one JSON object a line")
		reason = fs.String("reason", "", "only the messages of this reason (as list prints it)")
	case "show":
		asJSON = fs.Bool("json", false, "print one JSON object a line")
	}
	if sub != "list" {
		id = fs.String("id", "", "the message: topic/partition/offset, or partition/offset, as list prints it")
		cid = fs.String("correlation-id", "", "the messages of this correlation id")
	}
	switch sub {
	case "redrive":
		reason = fs.String("reason", "", "every message not handled yet of this reason (as list prints it)")
		why = fs.String("note", "", "why, for the audit trail (default: \"redrive; queued for: <reason>\")")
	case "purge":
		why = fs.String("reason", "", "why (required), for the audit trail; never member data")
	}
	if sub == "redrive" || sub == "purge" {
		operator = fs.String("operator", "", "who runs it, for the audit trail (default $USER)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%s %s: unexpected argument %q", q.name, sub, fs.Arg(0))
	}
	var sel selector
	if sub != "list" {
		sel = selector{id: *id, cid: *cid}
		if sub == "redrive" {
			sel.reason = *reason
		}
		n := 0
		for _, s := range []string{sel.id, sel.cid, sel.reason} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			fs.Usage()
			if sub == "redrive" {
				return fmt.Errorf("%s %s: give one of -id, -correlation-id, -reason", q.name, sub)
			}
			return fmt.Errorf("%s %s: give one of -id, -correlation-id", q.name, sub)
		}
		if sel.id != "" && strings.Count(sel.id, "/") == 1 {
			sel.id = q.topic + "/" + sel.id
		}
	}
	var who actor
	if operator != nil {
		who.operator = *operator
		if who.operator == "" {
			who.operator = getenv("USER")
		}
		who.note = *why
		if sub == "redrive" && who.note == "" {
			who.note = "redrive" // completed below with each message's reason
		}
		if err := checkActor(who); err != nil {
			fs.Usage()
			return fmt.Errorf("%s %s: %w", q.name, sub, err)
		}
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
	database := store.Database()
	now := time.Now()
	entries, err := readQueue(ctx, cluster, database, q, *group, now)
	if err != nil {
		return fmt.Errorf("%s %s: %w", q.name, sub, err)
	}
	switch sub {
	case "list":
		return listQueue(stdout, q, entries, *all, *asJSON, *reason)
	case "show":
		return showQueue(stdout, sel.pick(entries), *asJSON)
	}
	picked := sel.pick(entries)
	if len(picked) == 0 {
		return fmt.Errorf("%s %s: no message matches", q.name, sub)
	}
	producer := kafkabus.NewProducer(cluster, kafkabus.ProducerConfig{})
	defer producer.Close()
	qa := &queueActor{db: database, trail: mongostore.NewAuditLog(database), producer: producer, now: time.Now}
	if q.topic == kafkabus.TopicCommandsRetry {
		qa.withdraw = store.WithdrawParked
	}
	what := actRedrive
	if sub == "purge" {
		what = actPurge
	}
	counts := map[outcome]int{}
	var failed error
	for _, e := range picked {
		w := who
		if what == actRedrive && *why == "" {
			w.note = "redrive; queued for: " + e.Reason
		}
		res, msg, err := qa.act(ctx, e, what, w)
		if err != nil {
			failed = errors.Join(failed, err)
			fmt.Fprintf(stdout, "%s: failed: %v\n", e.ID, err)
			counts[refused]++
			continue
		}
		counts[res]++
		fmt.Fprintf(stdout, "%s: %s\n", e.ID, msg)
	}
	// A CLI has no /metrics: the counts are printed, and each action is
	// recorded in queue_actions and the audit trail.
	fmt.Fprintf(stdout, "%s %s: %d %s, %d already handled, %d not done, %d in progress\n", q.name, sub,
		counts[done], pastTense(what), counts[already], counts[refused], counts[interrupted])
	if failed != nil {
		return fmt.Errorf("%s %s: %w", q.name, sub, failed)
	}
	if counts[refused]+counts[interrupted] > 0 {
		return fmt.Errorf("%s %s: %d message(s) not done", q.name, sub, counts[refused]+counts[interrupted])
	}
	return nil
}

// selector picks messages by id, correlation id or reason.
type selector struct{ id, cid, reason string }

// pick returns the matching entries. A selection by reason takes only the
// messages not handled yet; by id or correlation id, any (acting on a
// handled one then says so and does nothing).
func (s selector) pick(entries []entry) []entry {
	var out []entry
	for _, e := range entries {
		switch {
		case s.id != "" && e.ID == s.id,
			s.cid != "" && e.CorrelationID == s.cid,
			s.reason != "" && e.Reason == s.reason && e.pending():
			out = append(out, e)
		}
	}
	return out
}

// openStore connects to the service's database (uri, else
// $PINRESET_MONGO_URI, else the sandbox's) and checks that it answers.
func openStore(ctx context.Context, uri, name string, getenv func(string) string) (*mongostore.Store, func(), error) {
	if uri == "" {
		uri = getenv("PINRESET_MONGO_URI")
	}
	store, err := mongostore.Open(mongostore.Config{URI: uri, Database: name})
	if err != nil {
		return nil, nil, err
	}
	closeFn := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = store.Close(cctx)
	}
	if err := store.Ping(ctx); err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("connect to -mongo-uri: %w", err)
	}
	return store, closeFn, nil
}

func listQueue(w io.Writer, q queue, entries []entry, all, asJSON bool, reason string) error {
	waiting := map[string]int{}
	handled := map[string]int{}
	var shown []entry
	for _, e := range entries {
		if e.pending() {
			waiting[e.Reason]++
		} else {
			handled[e.State]++
		}
		if (all || e.pending()) && (reason == "" || e.Reason == reason) {
			shown = append(shown, e)
		}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		for _, e := range shown {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	parked := q.topic == kafkabus.TopicCommandsRetry
	head := "ID\tAGE\tASP\tCORRELATION ID\tKIND\tREASON\tSTATE"
	if parked {
		head += "\tATTEMPT\tNEXT TRY"
	}
	fmt.Fprintln(tw, head)
	for _, e := range shown {
		state := e.State
		if e.Action != nil {
			state += " (" + e.Action.Operator + ": " + e.Action.Note + ")"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", e.ID, age(time.Duration(e.AgeSeconds)*time.Second), dash(e.ASPID),
			dash(e.CorrelationID), dash(e.Kind), e.Reason, state)
		if parked {
			next := "-"
			if e.NotBefore != nil {
				next = e.NotBefore.UTC().Format(time.RFC3339)
			}
			line += fmt.Sprintf("\t%d\t%s", e.Attempt, next)
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%s: %d not handled%s; handled: %d redriven, %d purged", q.topic, total(waiting), byReason(waiting),
		handled[stateRedriven], handled[statePurged])
	if parked {
		fmt.Fprintf(w, ", %d tried again by the worker", handled[stateTried])
	}
	fmt.Fprintln(w)
	return nil
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func byReason(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func showQueue(w io.Writer, entries []entry, asJSON bool) error {
	if len(entries) == 0 {
		return errors.New("no message matches")
	}
	for i, e := range entries {
		f := clearFields(e.msg.Value)
		headers := shownHeaders(e.msg)
		if asJSON {
			out := struct {
				entry
				Fields  []field  `json:"fields"`
				Other   []string `json:"otherFields,omitempty"`
				Detail  string   `json:"valueNotRead,omitempty"`
				Headers []field  `json:"headers"`
			}{e, f.shown, f.other, f.detail, headers}
			if err := json.NewEncoder(w).Encode(out); err != nil {
				return err
			}
			continue
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\n", e.ID)
		fmt.Fprintf(tw, "  written\t%s (%s ago)\n", e.WrittenAt.Format(time.RFC3339Nano), age(time.Duration(e.AgeSeconds)*time.Second))
		fmt.Fprintf(tw, "  state\t%s\n", e.State)
		if a := e.Action; a != nil {
			fmt.Fprintf(tw, "  action\t%s of %s by %s at %s: %s\n", a.Action, a.ID, a.Operator, a.StartedAt.Format(time.RFC3339), a.Note)
		}
		fmt.Fprintf(tw, "  reason\t%s\n", e.Reason)
		fmt.Fprintf(tw, "  reason text\t%s\n", e.ReasonText)
		fmt.Fprintln(tw, "clear fields (loginId, ci and the PINs are sealed and stay so)")
		if f.detail != "" {
			fmt.Fprintf(tw, "  value\t%s\n", f.detail)
		}
		for _, x := range f.shown {
			fmt.Fprintf(tw, "  %s\t%s\n", x.Name, x.Value)
		}
		if len(f.other) > 0 {
			fmt.Fprintf(tw, "  other fields\t%s (not in the command format; not shown)\n", strings.Join(f.other, ", "))
		}
		fmt.Fprintln(tw, "headers")
		for _, h := range headers {
			fmt.Fprintf(tw, "  %s\t%s\n", h.Name, h.Value)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// dlqCmd and parkedCmd are 'pwctl dlq' and 'pwctl parked'.
func dlqCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return queueCmd(ctx, dlqQueue, args, os.Getenv, stdout, stderr)
}

func parkedCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return queueCmd(ctx, parkedQueue, args, os.Getenv, stdout, stderr)
}
