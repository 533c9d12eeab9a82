// Command pwctl is the operator's tool of the PIN reset service: sign (the
// X-KM headers, or a curl command, of a request signed KMV1 or KMV2),
// events (an example consumer of password.events), audit verify|show, members
// seed|import|add|show, asp add|rotate|retire|schemes, bootstrap (topics and
// indexes), dlq and parked list|show|redrive|purge (the queues a command is
// taken aside to), trace (one transaction's journey), load (a load
// generator), bench (make bench) and bench-scale (make bench-scale).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Exit codes: 0 done (or help asked for), 1 anything else.
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "pwctl:", err)
		os.Exit(1)
	}
}

const usage = `usage: pwctl <command> [flags]

commands:
  sign       print the X-KM headers, or a curl command, for a request body or a status GET
  events     follow password.events and print each event (the example consumer)
  audit      verify the audit trail's hash chains, or show a history
  members    seed members in bulk (benchmarks and load tests)
  load       a load generator: throughput, latency percentiles, codes
  bench      measure the service against its hashing limit (make bench)
  bench-scale  the pipeline at 1,000 and at 1,000,000 members, and the retention sweep under load (make bench-scale)
  bootstrap  create the topics and indexes (an explicit, idempotent deployment step)
  asp        register an ASP, rotate and retire its credentials (the registry file)
  dlq        list, show, redrive or purge dead-lettered commands (password.commands.dlq)
  parked     list, show, redrive or purge parked commands (password.commands.retry)
  trace      one transaction's journey: command, copies, outcome, results, events, audit

Run 'pwctl <command> -h' for its flags.
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return errors.New("no command")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "sign":
		return sign(args[1:], stdin, stdout, stderr, time.Now())
	case "events":
		return eventsCmd(ctx, args[1:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr)
	case "members":
		return membersCmd(ctx, args[1:], stdout, stderr)
	case "load":
		return loadCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "bench-scale":
		return benchScaleCmd(ctx, args[1:], stdout, stderr)
	case "bootstrap":
		return bootstrapCmd(ctx, args[1:], stdout, stderr)
	case "asp":
		return aspCmd(ctx, args[1:], stdout, stderr)
	case "dlq":
		return dlqCmd(ctx, args[1:], stdout, stderr)
	case "parked":
		return parkedCmd(ctx, args[1:], stdout, stderr)
	case "trace":
		return traceCmd(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func sign(args []string, stdin io.Reader, stdout, stderr io.Writer, now time.Time) error {
	fs := flag.NewFlagSet("pwctl sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	aspFile := fs.String("asp-file", "deployments/sandbox/asps.json", "ASP registry file holding the ASP's credentials")
	aspID := fs.String("asp", "", "ASP id (default: the only or first ASP of -asp-file)")
	bodyArg := fs.String("body", "", "request body of the POST: a file path, - for standard input, or inline JSON starting with {")
	method := fs.String("method", http.MethodPost, "POST (a reset or change, -body) or GET (the status of -correlation-id, no body)")
	cid := fs.String("correlation-id", "", "X-KM-Correlation-Id (default: a fresh one; required with -method GET)")
	zone := fs.String("zone", "UTC", "X-KM-Time-Zone, and the zone the times are written in")
	scheme := fs.String("scheme", "", "tran token scheme, KMV1 or KMV2 (default: KMV2 if the ASP is registered for it, else KMV1)")
	curl := fs.Bool("curl", false, "print a complete curl command instead of header lines")
	apiURL := fs.String("url", "http://127.0.0.1:8080"+kmheader.ResetPath, "API URL of the POST; a GET goes to it + /{correlation id}. Its path is signed (KMV2, and a KMV1 GET)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch *method {
	case http.MethodPost:
		if *bodyArg == "" {
			fs.Usage()
			return errors.New("-body is required")
		}
	case http.MethodGet:
		if *bodyArg != "" || *cid == "" {
			fs.Usage()
			return errors.New("-method GET asks for the status of -correlation-id and takes no -body")
		}
	default:
		return fmt.Errorf("-method %q: POST or GET", *method)
	}
	if _, ok := kmheader.Zone(*zone); !ok {
		return fmt.Errorf("-zone %q is not a known zone abbreviation", *zone)
	}
	creds, err := credentials(*aspFile, *aspID)
	if err != nil {
		return err
	}
	if *scheme != "" {
		if !pinreset.Scheme(*scheme).Known() {
			return fmt.Errorf("-scheme %q: KMV1 or KMV2", *scheme)
		}
		creds.Scheme = pinreset.Scheme(*scheme)
	}
	var body []byte
	var bodyFile string
	if *method == http.MethodPost {
		if body, bodyFile, err = readBody(*bodyArg, stdin); err != nil {
			return err
		}
	}
	target := *apiURL
	if *method == http.MethodGet {
		target = strings.TrimSuffix(target, "/") + "/" + *cid
	}
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	hd := kmheader.SignRequest(creds, *method, u.EscapedPath(), body, *cid, now, *zone)
	h := http.Header{}
	kmheader.Set(h, hd)
	if *method == http.MethodPost {
		h.Set("Content-Type", "application/json")
	}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	if !*curl {
		for _, k := range names {
			fmt.Fprintf(stdout, "%s: %s\n", k, h.Get(k))
		}
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "curl -sS -i -X %s %s", *method, shellQuote(target))
	for _, k := range names {
		fmt.Fprintf(&b, " \\\n  -H %s", shellQuote(k+": "+h.Get(k)))
	}
	// The MAC covers the exact bytes, so curl must send them unchanged.
	switch {
	case *method == http.MethodGet:
	case bodyFile != "":
		fmt.Fprintf(&b, " \\\n  --data-binary %s", shellQuote("@"+bodyFile))
	default:
		fmt.Fprintf(&b, " \\\n  --data-binary %s", shellQuote(string(body)))
	}
	fmt.Fprintln(stdout, b.String())
	return nil
}

func credentials(path, id string) (kmheader.Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return kmheader.Credentials{}, fmt.Errorf("-asp-file: %w", err)
	}
	reg, err := asp.Parse(b)
	if err != nil {
		return kmheader.Credentials{}, fmt.Errorf("-asp-file %s: %w", path, err)
	}
	if _, err := asp.New(reg.ASPs); err != nil {
		return kmheader.Credentials{}, fmt.Errorf("-asp-file %s: %w", path, err)
	}
	if len(reg.ASPs) == 0 {
		return kmheader.Credentials{}, fmt.Errorf("-asp-file %s: no ASP", path)
	}
	a := reg.ASPs[0]
	if id != "" {
		found := false
		for _, x := range reg.ASPs {
			if x.ID == id {
				a, found = x, true
			}
		}
		if !found {
			return kmheader.Credentials{}, fmt.Errorf("-asp %s: not in %s", id, path)
		}
	}
	// The newest credential is the last one: during a rotation, sign with
	// it; and with the ASP's strongest registered scheme.
	c := a.Credentials[len(a.Credentials)-1]
	return kmheader.Credentials{ASPID: a.ID, AccessKey: c.AccessKey, SecretKey: []byte(c.SecretKey), Scheme: a.Preferred()}, nil
}

func readBody(arg string, stdin io.Reader) (body []byte, file string, err error) {
	switch {
	case arg == "-":
		body, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	case strings.HasPrefix(strings.TrimSpace(arg), "{"):
		body = []byte(arg)
	default:
		body, err = os.ReadFile(arg)
		file = arg
	}
	if err != nil {
		return nil, "", fmt.Errorf("-body: %w", err)
	}
	return body, file, nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
