package config

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Setting documents one environment variable. The list is what --help
// prints; a test checks it against the variables this package reads and
// against the README's table.
type Setting struct {
	Name    string
	Binary  string // ingress, worker or both
	File    bool   // may also be given as NAME_FILE (a secret)
	Default string
	Help    string
}

// Settings are every variable of the ingress and the worker.
var Settings = []Setting{
	{"PINRESET_KAFKA_BROKERS", "both", false, "127.0.0.1:9092", "comma-separated bootstrap brokers"},
	{"PINRESET_KAFKA_TLS", "both", false, "false", "connect to the brokers over TLS (1.2 or later, certificates verified)"},
	{"PINRESET_KAFKA_TLS_CA_FILE", "both", false, "system roots", "PEM certificates the brokers' certificates must chain to"},
	{"PINRESET_KAFKA_SASL_MECHANISM", "both", false, "none", "PLAIN (only with TLS), SCRAM-SHA-256 or SCRAM-SHA-512"},
	{"PINRESET_KAFKA_SASL_USERNAME", "both", false, "none", "the SASL user"},
	{"PINRESET_KAFKA_SASL_PASSWORD", "both", true, "none", "the SASL password"},
	{"PINRESET_SEAL_KEYS", "both", true, "required", "comma-separated id:base64(32 bytes); the first seals the PIN fields of new commands (XChaCha20-Poly1305), all open"},
	{"PINRESET_LOG_LEVEL", "both", false, "info", "debug, info, warn, error"},
	{"PINRESET_CREATE_TOPICS", "both", false, "true", "create missing topics at start"},
	{"PINRESET_TOPIC_PARTITIONS", "both", false, "12", "partitions of each topic it creates (the DLQ gets 1)"},
	{"PINRESET_TOPIC_REPLICATION", "both", false, "1", "replication factor of topics it creates (3 in production)"},
	{"PINRESET_TOPIC_MIN_INSYNC_REPLICAS", "both", false, "1", "min.insync.replicas of topics it creates (2 in production): with acks=all a write needs that many replicas"},
	{"PINRESET_TRACES_EXPORTER", "both", false, "none", "none, otlp (OTLP over HTTP, endpoint from the standard OTEL_EXPORTER_OTLP_* variables) or file"},
	{"PINRESET_TRACES_FILE", "both", false, "none", "with the file exporter: where spans are appended as JSON lines"},
	{"PINRESET_ADMIN_ADDR", "both", false, "ingress 127.0.0.1:9090, worker 127.0.0.1:9091", "admin listener: /healthz, /readyz, /metrics; off disables it"},
	{"PINRESET_ADMIN_PPROF", "both", false, "false", "also serve Go's profiles (/debug/pprof/) on the admin listener, for profiling under load"},
	{"PINRESET_HTTP_ADDR", "ingress", false, "127.0.0.1:8080", "listen address"},
	{"PINRESET_ASP_FILE", "ingress", false, "required", "the ASP registry (JSON, as deployments/sandbox/asps.json)"},
	{"PINRESET_TRAN_WINDOW", "ingress", false, "5m", "how far X-KM-Tran-Time and the token time may be from the server clock"},
	{"PINRESET_RESULT_WAIT", "ingress", false, "5s", "how long a request waits for its result before answering 202"},
	{"PINRESET_COMMAND_TTL", "both", false, "2m", "how long after acceptance a command may still be applied; the worker refuses to start with an outcome retention under 10 × this"},
	{"PINRESET_MAX_BODY_BYTES", "ingress", false, "8192", "request body limit (413 above it)"},
	{"PINRESET_MAX_IN_FLIGHT", "ingress", false, "2000", "commands one ingress publishes and waits for at once; past it 503 000_503 (retry with the same correlation id)"},
	{"PINRESET_PIN_POLICY", "ingress", false, "true", "refuse PINs with three identical or consecutive digits (001_044)"},
	{"PINRESET_SHUTDOWN_TIMEOUT", "ingress", false, "15s", "how long in-flight requests may finish on SIGTERM"},
	{"PINRESET_JWE_KEYS_DIR", "ingress", false, "none", "directory of PEM RSA private keys named <kid>.pem (32-character kid) that open encrypted bodies; their public halves are served at /.well-known/jwks.json; without it encrypted requests get 000_030"},
	{"PINRESET_MEMBER_RATE", "ingress", false, "10/1m", "token bucket per member (ASP and loginId) on each ingress: <n>/<duration> holds n commands, refilled at n per duration; past it 429 000_429 with Retry-After, before publishing; only published new commands take a token, not refused ones nor retries of a transaction within the duration; off disables it"},
	{"PINRESET_ASP_RATE", "ingress", false, "1000/10s", "token bucket per ASP on each ingress, same form; N ingresses admit N × this"},
	{"PINRESET_MONGO_URI", "worker", true, "mongodb://127.0.0.1:27017/", "MongoDB connection string (a replica set in production)"},
	{"PINRESET_MONGO_DATABASE", "worker", false, "pinreset", "database name"},
	{"PINRESET_MONGO_TIMEOUT", "worker", false, "10s", "how long one database operation may take in all (server selection, retries, every round trip; also ends a read from a half-open connection); then it fails and the command is retried"},
	{"PINRESET_PEPPERS", "worker", true, "required", "comma-separated id:base64(>=16 bytes); the first peppers new hashes, all verify"},
	{"PINRESET_FINGERPRINT_KEYS", "worker", true, "required", "comma-separated id:base64(>=16 bytes, 32 recommended); the first keys new fingerprints of request content (outcome, replay claim, wrong attempts, audit login hash), all verify"},
	{"PINRESET_ARGON2_MEMORY_KIB", "worker", false, "19456", "argon2id memory (19 MiB, OWASP)"},
	{"PINRESET_ARGON2_TIME", "worker", false, "2", "argon2id iterations"},
	{"PINRESET_ARGON2_THREADS", "worker", false, "1", "argon2id lanes"},
	{"PINRESET_WORKER_CONCURRENCY", "worker", false, "4 × cores", "commands processed at once (in order per correlation id); above the cores because a command mostly waits for the database"},
	{"PINRESET_HASH_CONCURRENCY", "worker", false, "cores", "argon2id computations at once: the admission limit that bounds CPU and memory (this × the argon2 memory) under any load; a slot left free is used to hash a new PIN while the current one is checked"},
	{"PINRESET_CONSUMER_GROUP", "worker", false, "pinreset-worker", "Kafka consumer group"},
	{"PINRESET_LOCK_AFTER", "worker", false, "5", "wrong currentPassword attempts that lock the PIN (0: never)"},
	{"PINRESET_LOCK_FOR", "worker", false, "15m", "how long a locked PIN stays locked"},
	{"PINRESET_WORKER_ID", "worker", false, "host name", "names the instance in logs and DLQ headers"},
	{"PINRESET_OUTCOME_RETENTION", "worker", false, "168h", "how long a command's outcome is kept for retries and status queries; at least 10 × the command TTL, the retry budget and the 2 min settle lease"},
	{"PINRESET_REPLAY_WINDOW", "worker", false, "24h", "how long the content of a request that set a PIN is refused under another correlation id (001_409); at least the command TTL, at most the retention"},
	{"PINRESET_KAFKA_SESSION_TIMEOUT", "worker", false, "10s", "how long the group waits for a silent (killed) worker before handing its partitions over"},
	{"PINRESET_COMMAND_TIMEOUT", "worker", false, "30s", "the deadline of one attempt at one command; an attempt stuck on a dead connection is cancelled and retried"},
	{"PINRESET_RETRY_BUDGET", "worker", false, "30s", "how long a command that keeps failing is retried in its lane before it is parked on `password.commands.retry`"},
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
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, s.Default, strings.TrimSpace(s.Help))
	}
	tw.Flush()
}
