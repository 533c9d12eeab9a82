package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kmwallet/pinreset/internal/decision"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/loadgen"
	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/worker"
)

// importLine is one line of a members JSON Lines file.
type importLine struct {
	ASPID   string `json:"aspId"`
	LoginID string `json:"loginId"`
	CI      string `json:"ci,omitempty"`
	PIN     string `json:"pin"`
}

// membersImport reads JSON Lines of members, refuses bad lines with their
// line number and reason without stopping, hashes each PIN as the worker
// does (its own salt, on every core), and inserts the good ones in bulk.
// Member ids derive from ASP and loginId, so a re-run skips what is there.
func membersImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl members import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mongoURI := fs.String("mongo-uri", "", "MongoDB connection string (default: the worker's PINRESET_MONGO_URI)")
	db := fs.String("db", "", "database name (default: the worker's PINRESET_MONGO_DATABASE)")
	batch := fs.Int("batch", 500, "members per bulk insert")
	progress := fs.Bool("progress", isTerminal(stderr), "show a progress bar on standard error (default: when standard error is a terminal)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: pwctl members import [flags] FILE.jsonl\n\n"+
			"Each line: {\"aspId\":\"...\",\"loginId\":\"...\",\"ci\":\"...\"(optional),\"pin\":\"123456\"}.\n"+
			"Bad lines are reported and skipped; the exit status is 1 if any was.\n"+
			"Needs the worker's environment to hash PINs as the worker does.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("members import: one FILE.jsonl is required")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("members import: %w", err)
	}
	defer f.Close()
	hasher, store, err := openAsWorker(ctx, getenv, *mongoURI, *db)
	if err != nil {
		return err
	}
	defer store.Close(context.WithoutCancel(ctx))
	bar, err := importProgress(f, *progress, stderr)
	if err != nil {
		return fmt.Errorf("members import: %w", err)
	}
	defer func() {
		if *progress && !bar.IsFinished() { // stopped by an error: keep the bar, end its line
			fmt.Fprintln(stderr)
		}
	}()

	type parsed struct {
		n int
		m pinreset.Member
	}
	type refusal struct {
		n      int
		reason string
	}
	var (
		lines    = make(chan parsed, 256)
		hashed   = make(chan pinreset.Member, 256)
		refusals []refusal
		refuseMu sync.Mutex
		total    int
	)
	refuse := func(n int, reason string) {
		refuseMu.Lock()
		refusals = append(refusals, refusal{n, reason})
		refuseMu.Unlock()
	}
	go func() { // reader: validates each line with the API's own rules
		defer close(lines)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for n := 1; sc.Scan(); n++ {
			total = n
			if len(sc.Bytes()) == 0 {
				bar.Add(1)
				continue
			}
			m, reason := parseMemberLine(sc.Bytes())
			if reason != "" {
				refuse(n, reason)
				bar.Add(1)
				continue
			}
			select {
			case lines <- parsed{n, m}:
			case <-ctx.Done():
				return
			}
		}
		if err := sc.Err(); err != nil {
			refuse(total+1, "unreadable: "+err.Error())
		}
	}()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) { // hashers: argon2id on every core
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range lines {
				h, err := hasher.Hash(p.m.PINHash)
				if err != nil {
					refuse(p.n, "hashing failed")
					bar.Add(1)
					continue
				}
				p.m.PINHash, p.m.UpdatedAt = h, time.Now().UTC()
				hashed <- p.m
			}
		}()
	}
	go func() { wg.Wait(); close(hashed) }()

	start := time.Now()
	inserted, seen := 0, 0
	buf := make([]pinreset.Member, 0, *batch)
	flush := func() error {
		n, err := store.InsertMembers(ctx, buf)
		inserted += n
		buf = buf[:0]
		return err
	}
	for m := range hashed {
		seen++
		buf = append(buf, m)
		if len(buf) == *batch {
			if err := flush(); err != nil {
				return err
			}
		}
		bar.Add(1)
	}
	if err := flush(); err != nil {
		return err
	}
	bar.Finish() // and clears it, before the summary
	fmt.Fprintf(stdout, "%d lines: %d members imported (%d new, %d already there), %d refused, in %s\n",
		total, seen, inserted, seen-inserted, len(refusals), time.Since(start).Round(time.Millisecond))
	if len(refusals) == 0 {
		return nil
	}
	sortRefusals := refusals
	for i := 1; i < len(sortRefusals); i++ { // insertion sort: hashers report out of order
		for j := i; j > 0 && sortRefusals[j].n < sortRefusals[j-1].n; j-- {
			sortRefusals[j], sortRefusals[j-1] = sortRefusals[j-1], sortRefusals[j]
		}
	}
	for _, r := range sortRefusals {
		fmt.Fprintf(stdout, "line %d refused: %s\n", r.n, r.reason)
	}
	return fmt.Errorf("members import: %d line(s) refused", len(refusals))
}

// importProgress returns the bar of an import of the JSON Lines file f. It
// writes to w, and only when show is set: a log or a pipe gets no bar. For
// a regular file it counts the lines first (one quick read, then f is
// rewound), so that the bar shows lines done of all lines, a rate and the
// time left; otherwise a spinner shows lines done and the rate.
func importProgress(f *os.File, show bool, w io.Writer) (*progressbar.ProgressBar, error) {
	lines := int64(-1) // unknown: a spinner
	if fi, err := f.Stat(); show && err == nil && fi.Mode().IsRegular() {
		n, err := countLines(f)
		if err != nil {
			return nil, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if n > 0 {
			lines = n
		}
	}
	return progressbar.NewOptions64(lines,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetVisibility(show),
		progressbar.OptionSetDescription("importing members"),
		progressbar.OptionSetItsString("lines"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	), nil
}

// countLines counts the lines of r as bufio.ScanLines splits them: a last
// line without its newline counts too.
func countLines(r io.Reader) (int64, error) {
	var n int64
	buf, last := make([]byte, 64<<10), byte('\n')
	for {
		k, err := r.Read(buf)
		if k > 0 {
			n += int64(bytes.Count(buf[:k], []byte{'\n'}))
			last = buf[k-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if last != '\n' {
		n++
	}
	return n, nil
}

// parseMemberLine checks one member with the API's own body rules and the
// PIN policy. The member's PINHash holds the PIN in clear until it is
// hashed. reason names the field at fault, never its value.
func parseMemberLine(b []byte) (m pinreset.Member, reason string) {
	var l importLine
	if err := json.Unmarshal(b, &l); err != nil {
		return m, "not a JSON object of aspId, loginId, ci, pin"
	}
	if len(l.ASPID) != 15 {
		return m, "aspId: must be 15 characters"
	}
	body, _ := json.Marshal(map[string]any{"loginId": l.LoginID, "newPassword": l.PIN, "isResetPassword": true, "ci": nilIfEmpty(l.CI)})
	req, err := pinreset.ParseRequest(body)
	if err == nil {
		err = pinreset.PINPolicy{Enabled: true}.Check(req.NewPIN)
	}
	if err != nil {
		return m, pinreset.ErrorMessage(err)
	}
	return pinreset.Member{ID: loadgen.MemberID(l.ASPID, req.LoginID), ASPID: l.ASPID, LoginID: req.LoginID, CI: req.CI, PINHash: req.NewPIN}, ""
}

// memberFlags parses the flags of one member (-asp, -login, -pin or
// PWCTL_PIN, -ci) for the command name, checks them as an import line is
// checked, and opens the store as the worker does. The member's PINHash is
// its PIN hashed.
func memberFlags(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer, pinHelp, ciHelp string, more func(*flag.FlagSet)) (pinreset.Member, *mongostore.Store, error) {
	fs := flag.NewFlagSet("pwctl members "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if more != nil {
		more(fs)
	}
	aspID := fs.String("asp", "KMSANDBOXASP001", "ASP id")
	login := fs.String("login", "", "the member's loginId (an email address)")
	pin := fs.String("pin", "", pinHelp+", 6 digits (read from PWCTL_PIN if empty, to keep it out of the shell history)")
	ci := fs.String("ci", "", ciHelp)
	if err := fs.Parse(args); err != nil {
		return pinreset.Member{}, nil, err
	}
	if *pin == "" {
		*pin = getenv("PWCTL_PIN")
	}
	line, _ := json.Marshal(importLine{ASPID: *aspID, LoginID: *login, CI: *ci, PIN: *pin})
	m, reason := parseMemberLine(line)
	if reason != "" {
		return pinreset.Member{}, nil, fmt.Errorf("members %s: %s", name, reason)
	}
	hasher, store, err := openAsWorker(ctx, getenv, "", "")
	if err != nil {
		return pinreset.Member{}, nil, err
	}
	if m.PINHash, err = hasher.Hash(m.PINHash); err != nil {
		store.Close(context.WithoutCancel(ctx))
		return pinreset.Member{}, nil, fmt.Errorf("hash the PIN: %w", err)
	}
	m.UpdatedAt = time.Now().UTC()
	return m, store, nil
}

// membersAdd adds one member, refusing one whose login exists.
func membersAdd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	m, store, err := memberFlags(ctx, "add", args, getenv, stderr, "the member's PIN", "the member's CI, 88 characters (optional)", nil)
	if err != nil {
		return err
	}
	defer store.Close(context.WithoutCancel(ctx))
	if _, err := store.FindMember(ctx, m.ASPID, m.LoginID); err == nil {
		return fmt.Errorf("members add: %s already has a member with that loginId", m.ASPID)
	}
	n, err := store.InsertMembers(ctx, []pinreset.Member{m})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("members add: the member exists already")
	}
	fmt.Fprintf(stdout, "member %s added to %s\n", m.ID, m.ASPID)
	return nil
}

// membersRepair puts a damaged member right (a malformed hash, a field of
// the wrong type or missing) through the decision path (decision.Service.Repair):
// one conditional update gives it a clean document with a new PIN (the
// same id, ASP and loginId, its CI when it was readable, no attempts, lock
// or history), then its password.changed event, an operator's audit record
// with the reason and its outcome record follow, like a command's.
func membersRepair(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var who actor
	var brokers *string
	m, store, err := memberFlags(ctx, "repair", args, getenv, stderr, "the member's new PIN",
		"the member's CI, 88 characters, when the stored one is damaged too (optional)", func(fs *flag.FlagSet) {
			fs.StringVar(&who.note, "reason", "", "why (required), for the audit trail; never member data")
			fs.StringVar(&who.operator, "operator", getenv("USER"), "who runs it, for the audit trail")
			def := getenv("PINRESET_KAFKA_BROKERS")
			if def == "" {
				def = "127.0.0.1:9092"
			}
			brokers = fs.String("brokers", def, "Kafka bootstrap brokers, comma-separated (TLS and SASL from PINRESET_KAFKA_*): the repair's event")
		})
	if err != nil {
		return err
	}
	defer store.Close(context.WithoutCancel(ctx))
	if err := checkActor(who); err != nil {
		return fmt.Errorf("members repair: %w", err)
	}
	if m.ID, err = store.MemberIDOf(ctx, m.ASPID, m.LoginID); err != nil {
		return fmt.Errorf("members repair: %s %s: %w", m.ASPID, m.LoginID, err)
	}
	cluster, err := kafkaCluster(*brokers)
	if err != nil {
		return err
	}
	producer := kafkabus.NewProducer(cluster, kafkabus.ProducerConfig{})
	defer producer.Close()
	svc := &decision.Service{Store: store, Trail: mongostore.NewAuditLog(store.Database()), Publisher: worker.KafkaPublisher{Publisher: producer}}
	o, err := svc.Repair(ctx, store, decision.Repair{MemberID: m.ID, ASPID: m.ASPID, LoginID: m.LoginID, CI: m.CI, PINHash: m.PINHash,
		Operator: who.operator, Reason: who.note})
	if err != nil {
		return fmt.Errorf("members repair: %w", err)
	}
	fmt.Fprintf(stdout, "member %s of %s repaired as transaction %s: new PIN set, attempts, lock and history cleared; event, audit record and outcome recorded\n",
		m.ID, m.ASPID, o.CorrelationID)
	return nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// membersShow prints a member's state, never its PIN hash.
func membersShow(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl members show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	aspID := fs.String("asp", "KMSANDBOXASP001", "ASP id")
	login := fs.String("login", "", "the member's loginId")
	mongoURI := fs.String("mongo-uri", envOr("PINRESET_MONGO_URI", "mongodb://127.0.0.1:27017/"), "MongoDB connection string")
	db := fs.String("db", envOr("PINRESET_MONGO_DATABASE", "pinreset"), "database name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *login == "" {
		return errors.New("members show: -login is required")
	}
	store, err := mongostore.Open(mongostore.Config{URI: *mongoURI, Database: *db})
	if err != nil {
		return err
	}
	defer store.Close(context.WithoutCancel(ctx))
	m, err := store.FindMember(ctx, *aspID, *login)
	if err != nil {
		return fmt.Errorf("members show: %w", err)
	}
	locked := "no"
	if time.Now().Before(m.LockedUntil) {
		locked = "until " + m.LockedUntil.Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "member %s\n  asp %s\n  loginId %s\n  version %d\n  updated %s\n  failed attempts %d\n  locked %s\n  ci %s\n  recent commands:\n",
		m.ID, m.ASPID, m.LoginID, m.Version, m.UpdatedAt.Format(time.RFC3339), m.FailedAttempts, locked, map[bool]string{true: "set", false: "none"}[m.CI != ""])
	for _, a := range m.Recent {
		fmt.Fprintf(stdout, "    %s  %s  %s\n", a.At.Format(time.RFC3339), a.CorrelationID, a.Code)
	}
	return nil
}
