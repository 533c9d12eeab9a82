package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/kmwallet/pinreset/internal/audit"
	"github.com/kmwallet/pinreset/internal/mongostore"
)

const auditUsage = `usage: pwctl audit <command> [flags]

commands:
  verify   check every hash chain of the audit trail; fails if any is broken
  show     print the audit history of a correlation id or a member

Run 'pwctl audit <command> -h' for its flags.
`

// auditCmd runs 'pwctl audit verify|show'.
func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, auditUsage)
		if len(args) == 0 {
			return errors.New("audit: no command")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr)
	case "show":
		return auditShow(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("audit: unknown command %q", args[0])
	}
}

// auditFlags are the database flags of every audit subcommand.
type auditFlags struct{ uri, db *string }

func addAuditFlags(fs *flag.FlagSet) auditFlags {
	return auditFlags{
		// The default is resolved after parsing, so that -h never prints a
		// URI from the environment (it may hold a password).
		uri: fs.String("mongo-uri", "", "MongoDB connection string (default $PINRESET_MONGO_URI, else mongodb://127.0.0.1:27017/)"),
		db:  fs.String("db", "pinreset", "database name"),
	}
}

// open connects and checks that the database answers, within 10 s.
func (f auditFlags) open(ctx context.Context) (*mongostore.AuditLog, func(), error) {
	const timeout = 10 * time.Second
	uri := *f.uri
	if uri == "" {
		uri = os.Getenv("PINRESET_MONGO_URI")
	}
	if uri == "" {
		uri = "mongodb://127.0.0.1:27017/"
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(timeout).SetConnectTimeout(timeout))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to -mongo-uri: %w", err)
	}
	closeFn := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		_ = client.Disconnect(dctx)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.Ping(pctx, readpref.Primary()); err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("connect to -mongo-uri: %w", err)
	}
	return mongostore.NewAuditLog(client.Database(*f.db)), closeFn, nil
}

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := addAuditFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("audit verify: unexpected argument %q", fs.Arg(0))
	}
	trail, closeFn, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	rep, err := trail.Verify(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	fmt.Fprintf(stdout, "checked %d chains, %d records\n", rep.Chains, rep.Records)
	if rep.Records == 0 {
		// Most likely a wrong -db or -mongo-uri: say so rather than look reassuring.
		fmt.Fprintf(stderr, "warning: no audit records in database %q\n", *db.db)
	}
	for _, b := range rep.Broken {
		fmt.Fprintf(stdout, "BROKEN %s\n", b)
	}
	if len(rep.Broken) > 0 {
		return fmt.Errorf("audit trail broken: %d chain(s)", len(rep.Broken))
	}
	fmt.Fprintln(stdout, "ok: every chain verifies")
	return nil
}

func auditShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl audit show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := addAuditFlags(fs)
	cid := fs.String("correlation-id", "", "show the records of this correlation id")
	member := fs.String("member", "", "show the records of this member id (with -correlation-id: those of both)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("audit show: unexpected argument %q", fs.Arg(0))
	}
	if *cid == "" && *member == "" {
		fs.Usage()
		return errors.New("audit show: -correlation-id or -member is required")
	}
	trail, closeFn, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	recs, err := trail.Find(ctx, *cid, *member)
	if err != nil {
		return fmt.Errorf("audit show: %w", err)
	}
	if len(recs) == 0 {
		fmt.Fprintln(stdout, "no audit records")
		return nil
	}
	printAuditTable(stdout, recs)
	return nil
}

func printAuditTable(w io.Writer, recs []audit.Record) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCHAIN:SEQ\tASP\tKIND\tMEMBER\tCORRELATION ID\tCODE\tWORKER")
	for _, r := range recs {
		member := r.MemberID
		if member == "" {
			member = "-"
		}
		fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.At.UTC().Format("2006-01-02T15:04:05.000Z"), r.Chain, r.Seq, dash(r.ASPID), r.Kind, member,
			dash(r.CorrelationID), r.Code, dash(r.WorkerID))
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
