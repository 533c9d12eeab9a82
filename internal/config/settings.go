package config

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
)

// Setting is one environment variable of the ingress or the worker, said
// once: the loader takes its default from here, --help prints this table,
// and README.md's configuration table is generated from it
// (TestREADMEConfigurationIsCurrent; `make docs` rewrites it).
type Setting struct {
	Name   string
	Binary string // ingress, worker or both
	File   bool   // a secret: may be given as NAME_FILE instead, never printed
	// Default is the value as it is written in the variable, or a word
	// when there is none to write (see defaultWords) or it depends on the
	// machine or the binary.
	Default string
	// Help says what it is, with its unit and bounds, in Markdown (code in
	// backticks, stripped for --help).
	Help string
}

// defaultWords are the Defaults that are not values: no value (unset, or
// refused at start), or one the loader computes.
var defaultWords = map[string]bool{"required": true, "none": true, "system roots": true, "4 × cores": true, "cores": true, "host name": true}

// Settings are every variable of the ingress and the worker.
var Settings = []Setting{
	{Name: "PINRESET_KAFKA_BROKERS", Binary: "both", Default: "127.0.0.1:9092",
		Help: "comma-separated bootstrap brokers"},
	{Name: "PINRESET_KAFKA_TLS", Binary: "both", Default: "false",
		Help: "connect to the brokers over TLS (1.2 or later, certificates verified)"},
	{Name: "PINRESET_KAFKA_TLS_CA_FILE", Binary: "both", Default: "system roots",
		Help: "PEM certificates the brokers' certificates must chain to"},
	{Name: "PINRESET_KAFKA_SASL_MECHANISM", Binary: "both", Default: "none",
		Help: "`PLAIN` (only with TLS), `SCRAM-SHA-256` or `SCRAM-SHA-512`"},
	{Name: "PINRESET_KAFKA_SASL_USERNAME", Binary: "both", Default: "none",
		Help: "the SASL user"},
	{Name: "PINRESET_KAFKA_SASL_PASSWORD", Binary: "both", File: true, Default: "none",
		Help: "the SASL password"},
	{Name: "PINRESET_SEAL_KEYS", Binary: "both", File: true, Default: "required",
		Help: "comma-separated `id:base64(32 bytes)`; the first seals the PIN fields of new commands (XChaCha20-Poly1305), all open"},
	{Name: "PINRESET_LOG_LEVEL", Binary: "both", Default: "info",
		Help: "`debug`, `info`, `warn`, `error`"},
	{Name: "PINRESET_CREATE_TOPICS", Binary: "both", Default: "true",
		Help: "create missing topics at start"},
	{Name: "PINRESET_TOPIC_PARTITIONS", Binary: "both", Default: "12",
		Help: "partitions of each topic it creates (the DLQ gets 1)"},
	{Name: "PINRESET_TOPIC_REPLICATION", Binary: "both", Default: "1",
		Help: "replication factor of topics it creates (3 in production)"},
	{Name: "PINRESET_TOPIC_MIN_INSYNC_REPLICAS", Binary: "both", Default: "1",
		Help: "min.insync.replicas of topics it creates (2 in production): with acks=all a write needs that many replicas"},
	{Name: "PINRESET_TRACES_EXPORTER", Binary: "both", Default: "none",
		Help: "OpenTelemetry spans: `none`, `otlp` (OTLP over HTTP, endpoint from the standard `OTEL_EXPORTER_OTLP_*` variables) or `file`"},
	{Name: "PINRESET_TRACES_FILE", Binary: "both", Default: "none",
		Help: "with the `file` exporter: where spans are appended as JSON lines"},
	{Name: "PINRESET_ADMIN_ADDR", Binary: "both", Default: "ingress 127.0.0.1:9090, worker 127.0.0.1:9091",
		Help: "admin listener: `/healthz`, `/readyz`, `/metrics`; `off` disables it"},
	{Name: "PINRESET_ADMIN_PPROF", Binary: "both", Default: "false",
		Help: "also serve Go's profiles (`/debug/pprof/`: CPU, heap, goroutines, execution trace) on the admin listener, for profiling under load"},
	{Name: "PINRESET_HTTP_ADDR", Binary: "ingress", Default: "127.0.0.1:8080",
		Help: "listen address"},
	{Name: "PINRESET_ASP_FILE", Binary: "ingress", Default: "required",
		Help: "the ASP registry (JSON, as `deployments/sandbox/asps.json`)"},
	{Name: "PINRESET_TRAN_WINDOW", Binary: "ingress", Default: "5m",
		Help: "how far X-KM-Tran-Time and the token time may be from the server clock"},
	{Name: "PINRESET_RESULT_WAIT", Binary: "ingress", Default: "5s",
		Help: "how long a request waits for its result before answering 202"},
	{Name: "PINRESET_COMMAND_TTL", Binary: "both", Default: "2m",
		Help: "how long after acceptance a command may still be applied; the worker refuses to start with an outcome retention under 10 × this"},
	{Name: "PINRESET_MAX_BODY_BYTES", Binary: "ingress", Default: "8192",
		Help: "request body limit (413 above it)"},
	{Name: "PINRESET_MAX_IN_FLIGHT", Binary: "ingress", Default: "2000",
		Help: "commands one ingress publishes and waits for at once; past it 503 `000_503` (retry with the same correlation id)"},
	{Name: "PINRESET_MEMBER_RATE", Binary: "ingress", Default: "10/1m",
		Help: "token bucket per member (ASP and loginId) on each ingress: `<n>/<duration>` holds n commands, refilled at n per duration; past it 429 `000_429` with `Retry-After`, before publishing; only published new commands take a token, not refused ones nor retries of a transaction within the duration (docs/security.md, \"Admission\"); `off` disables it"},
	{Name: "PINRESET_ASP_RATE", Binary: "ingress", Default: "1000/10s",
		Help: "token bucket per ASP on each ingress, same form; N ingresses admit N × this (docs/security.md, \"Admission\")"},
	{Name: "PINRESET_PIN_POLICY", Binary: "ingress", Default: "true",
		Help: "refuse PINs with three identical or consecutive digits (001_044)"},
	{Name: "PINRESET_SHUTDOWN_TIMEOUT", Binary: "ingress", Default: "15s",
		Help: "how long in-flight requests may finish on SIGTERM"},
	{Name: "PINRESET_JWE_KEYS_DIR", Binary: "ingress", Default: "none",
		Help: "directory of PEM RSA private keys named `<kid>.pem` (32-character kid) that open encrypted bodies; their public halves are served at `/.well-known/jwks.json`; without it encrypted requests get 000_030"},
	{Name: "PINRESET_INGRESS_ID", Binary: "ingress", Default: "host name",
		Help: "names the instance in the `x-ingress-id` header of every command it publishes, which `pwctl trace` shows"},
	{Name: "PINRESET_MONGO_URI", Binary: "worker", File: true, Default: "mongodb://127.0.0.1:27017/",
		Help: "MongoDB connection string (a replica set in production)"},
	{Name: "PINRESET_MONGO_DATABASE", Binary: "worker", Default: "pinreset",
		Help: "database name"},
	{Name: "PINRESET_MONGO_TIMEOUT", Binary: "worker", Default: "10s",
		Help: "how long one database operation may take in all (server selection, retries, every round trip; also ends a read from a half-open connection); then it fails and the command is retried. Whatever the URI says, the worker reads from the primary with read concern majority and writes with w:majority, journaled"},
	{Name: "PINRESET_PEPPERS", Binary: "worker", File: true, Default: "required",
		Help: "comma-separated `id:base64(>=16 bytes)`; the first peppers new hashes, all verify"},
	{Name: "PINRESET_FINGERPRINT_KEYS", Binary: "worker", File: true, Default: "required",
		Help: "comma-separated `id:base64(>=16 bytes, 32 recommended)`; the first keys new fingerprints of request content (outcome, replay claim, wrong attempts, audit login hash), all verify; a key of its own, not a pepper (docs/security.md)"},
	{Name: "PINRESET_ARGON2_MEMORY_KIB", Binary: "worker", Default: "19456",
		Help: "argon2id memory (19 MiB, OWASP)"},
	{Name: "PINRESET_ARGON2_TIME", Binary: "worker", Default: "2",
		Help: "argon2id iterations"},
	{Name: "PINRESET_ARGON2_THREADS", Binary: "worker", Default: "1",
		Help: "argon2id lanes"},
	{Name: "PINRESET_WORKER_CONCURRENCY", Binary: "worker", Default: "4 × cores",
		Help: "commands processed at once (in order per correlation id); above the cores because a command mostly waits for the database"},
	{Name: "PINRESET_HASH_CONCURRENCY", Binary: "worker", Default: "cores",
		Help: "argon2id computations at once: the admission limit that bounds CPU and memory (this × the argon2 memory) under any load; a slot left free is used to hash a new PIN while the current one is checked"},
	{Name: "PINRESET_CONSUMER_GROUP", Binary: "worker", Default: "pinreset-worker",
		Help: "Kafka consumer group"},
	{Name: "PINRESET_LOCK_AFTER", Binary: "worker", Default: "5",
		Help: "wrong currentPassword attempts that lock the PIN (0: never)"},
	{Name: "PINRESET_LOCK_FOR", Binary: "worker", Default: "15m",
		Help: "how long a locked PIN stays locked"},
	{Name: "PINRESET_WORKER_ID", Binary: "worker", Default: "host name",
		Help: "names the instance in logs and DLQ headers"},
	{Name: "PINRESET_OUTCOME_RETENTION", Binary: "worker", Default: "168h",
		Help: "how long a command's outcome is kept for retries and status queries; at least 10 × the command TTL and the retry budget"},
	{Name: "PINRESET_REPLAY_WINDOW", Binary: "worker", Default: "24h",
		Help: "how long the content of a request that set a PIN is refused under another correlation id (001_409); at least the command TTL, at most the retention"},
	{Name: "PINRESET_KAFKA_SESSION_TIMEOUT", Binary: "worker", Default: "10s",
		Help: "how long the group waits for a silent (killed) worker before handing its partitions over"},
	{Name: "PINRESET_COMMAND_TIMEOUT", Binary: "worker", Default: "30s",
		Help: "the deadline of one attempt at one command; an attempt stuck on a dead connection is cancelled and retried"},
	{Name: "PINRESET_RETRY_BUDGET", Binary: "worker", Default: "30s",
		Help: "how long a command that keeps failing is retried in its lane before it is parked on `password.commands.retry` (3 s when its lane is full behind it; a key the worker lacks: parked at once)"},
}

// lookup returns the setting called name. Every name the loaders read is
// in Settings (TestHelpListsEveryVariable); one that is not is a bug.
func lookup(name string) Setting {
	for _, s := range Settings {
		if s.Name == name {
			return s
		}
	}
	panic("config: no setting " + name)
}

// defaultOf is name's default as the loader parses it: "" when it is a
// word, not a value.
func defaultOf(name string) string {
	d := lookup(name).Default
	if defaultWords[d] {
		return ""
	}
	return d
}

// PrintHelp writes the settings of binary ("ingress" or "worker") as a table.
func PrintHelp(w io.Writer, binary string) {
	fmt.Fprintf(w, "%s is configured by environment variables only:\n\n", binary)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, s := range Settings {
		if s.Binary != binary && s.Binary != "both" {
			continue
		}
		name := s.Name
		if s.File {
			name += " (or _FILE)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, s.Default, strings.ReplaceAll(s.Help, "`", ""))
	}
	tw.Flush()
}

var addrRe = regexp.MustCompile(`[0-9.]+:[0-9]+`)

// MarkdownTable is the README's configuration table.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| variable | used by | default | meaning |\n| --- | --- | --- | --- |\n")
	for _, s := range Settings {
		name := "`" + s.Name + "`"
		if s.File {
			name += " (`_FILE`)"
		}
		def := s.Default
		switch {
		case defaultWords[def]:
		case strings.HasPrefix(def, "ingress "):
			def = addrRe.ReplaceAllString(def, "`$0`")
		default:
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, s.Binary, def, strings.ReplaceAll(s.Help, "|", `\|`))
	}
	return b.String()
}
