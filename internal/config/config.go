// Package config loads the settings of the ingress and the worker from
// environment variables, once, at start, with defaults and with errors that
// name the setting. Secrets can be given inline or as a path (NAME_FILE), so
// that they come from a mounted Kubernetes Secret rather than the process
// environment; no secret value ever appears in an error.
package config

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// The defaults of the settings, each defined once. A knob owned by a
// package this one may import (the domain packages pinreset, pinhash and
// kmheader) has its default there and is only referred to here; a knob of a
// package that imports this one (ingress, kafkabus, worker) has its default
// here, and that package's zero-value defaulting uses the constant. Settings
// (help.go) shows the same values; TestHelpShowsTheDefaults checks it.
const (
	DefaultKafkaBrokers     = "127.0.0.1:9092"
	DefaultLogLevel         = "info"
	DefaultTopicPartitions  = 12
	DefaultTopicReplication = 1
	DefaultTopicMinInSync   = 1
	DefaultIngressAdminAddr = "127.0.0.1:9090"
	DefaultWorkerAdminAddr  = "127.0.0.1:9091"

	DefaultHTTPAddr        = "127.0.0.1:8080"
	DefaultTranWindow      = kmheader.DefaultWindow // 5m, SPEC section 2
	DefaultResultWait      = 5 * time.Second
	DefaultCommandTTL      = 2 * time.Minute
	DefaultMaxBodyBytes    = 8 << 10 // bytes
	DefaultMaxInFlight     = 2000
	DefaultShutdownTimeout = 15 * time.Second

	// mongostore takes its defaults from these (config cannot import
	// mongostore: that would link the MongoDB driver into the ingress).
	DefaultMongoURI         = "mongodb://127.0.0.1:27017/"
	DefaultMongoDatabase    = "pinreset"
	DefaultMongoTimeout     = 10 * time.Second
	DefaultConsumerGroup    = "pinreset-worker"
	DefaultOutcomeRetention = 7 * 24 * time.Hour
	DefaultReplayWindow     = pinreset.DefaultReplayWindow
	DefaultSessionTimeout   = 10 * time.Second // kafkabus.ConsumerConfig.SessionTimeout
	DefaultCommandTimeout   = 30 * time.Second // kafkabus.ConsumerConfig.HandleTimeout
	DefaultRetryBudget      = 30 * time.Second // kafkabus.ConsumerConfig.RetryBudget
)

// The default admission buckets of the ingress (PINRESET_MEMBER_RATE,
// PINRESET_ASP_RATE); the ingress's own zero Rate is off.
var (
	DefaultMemberRate = Rate{N: 10, Per: time.Minute}
	DefaultASPRate    = Rate{N: 1000, Per: 10 * time.Second}
)

// DefaultConcurrency is PINRESET_WORKER_CONCURRENCY's default, 4 × the
// usable cores (GOMAXPROCS); DefaultHashConcurrency is
// PINRESET_HASH_CONCURRENCY's, the usable cores.
func DefaultConcurrency() int     { return 4 * runtime.GOMAXPROCS(0) }
func DefaultHashConcurrency() int { return runtime.GOMAXPROCS(0) }

// Kafka says how to reach the brokers (both binaries and pwctl).
type Kafka struct {
	// KafkaBrokers: PINRESET_KAFKA_BROKERS, comma-separated host:port. Default 127.0.0.1:9092.
	KafkaBrokers []string
	// KafkaTLS: PINRESET_KAFKA_TLS, connect to the brokers over TLS (1.2 or
	// later, server certificate verified). Default false.
	KafkaTLS bool
	// KafkaTLSCAFile: PINRESET_KAFKA_TLS_CA_FILE, PEM certificates the
	// brokers' certificates must chain to. Default: the system's roots.
	KafkaTLSCAFile string
	// KafkaSASLMechanism: PINRESET_KAFKA_SASL_MECHANISM, PLAIN,
	// SCRAM-SHA-256 or SCRAM-SHA-512; PLAIN only over TLS. Default none.
	KafkaSASLMechanism string
	// KafkaSASLUsername: PINRESET_KAFKA_SASL_USERNAME.
	KafkaSASLUsername string
	// KafkaSASLPassword: PINRESET_KAFKA_SASL_PASSWORD (or _FILE), a secret.
	KafkaSASLPassword string
}

// Common are the settings both binaries share.
type Common struct {
	Kafka
	// SealKeys: PINRESET_SEAL_KEYS (or _FILE), comma-separated "id:base64(32 bytes)";
	// the first seals new commands, all open. Required.
	SealKeys []string
	// LogLevel: PINRESET_LOG_LEVEL, debug|info|warn|error. Default info.
	LogLevel string
	// TopicPartitions: PINRESET_TOPIC_PARTITIONS, partitions per topic when the
	// service creates its topics. Default 12.
	TopicPartitions int
	// TopicReplication: PINRESET_TOPIC_REPLICATION, replication factor when the
	// service creates its topics. Default 1 (3 in production).
	TopicReplication int
	// TopicMinInSync: PINRESET_TOPIC_MIN_INSYNC_REPLICAS, min.insync.replicas
	// of the topics the service creates: with acks=all a write is refused
	// unless this many replicas hold it. Default 1 (2 in production, with
	// replication 3: one broker may be down, no acknowledged write is lost).
	TopicMinInSync int
	// CreateTopics: PINRESET_CREATE_TOPICS, create missing topics at start. Default true.
	CreateTopics bool
	// AdminAddr: PINRESET_ADMIN_ADDR, the admin listener (/healthz, /readyz,
	// /metrics), apart from the API. Default 127.0.0.1:9090 for the ingress,
	// 127.0.0.1:9091 for the worker; empty string "off" disables it.
	AdminAddr string
	// AdminPprof: PINRESET_ADMIN_PPROF, serve Go's profiles
	// (/debug/pprof/) on the admin listener, for profiling a process under
	// load. Default false: a profile costs CPU and shows code paths.
	AdminPprof bool
	// TracesExporter: PINRESET_TRACES_EXPORTER, none, otlp (OTLP over HTTP,
	// configured by the standard OTEL_EXPORTER_OTLP_* variables) or file.
	// Default none.
	TracesExporter string
	// TracesFile: PINRESET_TRACES_FILE, where the file exporter appends spans
	// as JSON lines.
	TracesFile string
	// CommandTTL: PINRESET_COMMAND_TTL, how long after acceptance a command
	// may still be applied: the ingress stamps it on every command, and the
	// worker checks that its outcomes outlive it. Default 2m.
	CommandTTL time.Duration
}

// Ingress are the ingress settings.
type Ingress struct {
	Common
	// HTTPAddr: PINRESET_HTTP_ADDR. Default 127.0.0.1:8080.
	HTTPAddr string
	// ASPFile: PINRESET_ASP_FILE, the JSON registry of ASPs and their
	// credentials. Required.
	ASPFile string
	// TranWindow: PINRESET_TRAN_WINDOW, how far the tran time may be from the
	// server clock. Default 5m.
	TranWindow time.Duration
	// ResultWait: PINRESET_RESULT_WAIT, how long a request waits for its
	// result before answering 202. Default 5s.
	ResultWait time.Duration
	// MaxBodyBytes: PINRESET_MAX_BODY_BYTES, the request body limit. Default 8192.
	MaxBodyBytes int64
	// PINPolicy: PINRESET_PIN_POLICY, refuse easy PINs (three identical or
	// consecutive digits). Default true.
	PINPolicy bool
	// MaxInFlight: PINRESET_MAX_IN_FLIGHT, commands one ingress publishes and
	// waits for at once; past it requests get 503 000_503. Default 2000.
	MaxInFlight int
	// JWEKeysDir: PINRESET_JWE_KEYS_DIR, a directory of PEM RSA private keys,
	// each named <kid>.pem (32-character kid), that open encrypted request
	// bodies; their public halves are served at /.well-known/jwks.json.
	// Default none: encrypted requests are refused with 000_030.
	JWEKeysDir string
	// ShutdownTimeout: PINRESET_SHUTDOWN_TIMEOUT, how long in-flight requests
	// may take to finish on SIGTERM. Default 15s.
	ShutdownTimeout time.Duration
	// MemberRate: PINRESET_MEMBER_RATE, the token bucket of one member
	// (ASP and loginId) on one ingress: "<n>/<duration>" holds n commands
	// and refills at n per duration; past it 429 000_429 with Retry-After,
	// before anything is published. Only a new command that is published
	// takes a token: not one the ingress refuses or fails to publish, nor a
	// retry of a transaction (same correlation id and body) within the
	// duration. "off" disables it. Default 10/1m: a
	// member retrying by hand never meets it, a script hammering one member
	// (guessing, or replaying captures) does.
	MemberRate Rate
	// ASPRate: PINRESET_ASP_RATE, the token bucket of one ASP on one
	// ingress, the same form. Default 1000/10s (100 commands a second,
	// bursts of 1000): above what the default workers hash, so it bounds an
	// ASP gone wild rather than normal peaks; set it to the ASP's share of
	// the workers' capacity divided by the number of ingresses.
	ASPRate Rate
}

// Rate is a token bucket: N requests at once, refilled at N per Per. The
// zero Rate is off (no limit).
type Rate struct {
	N   int
	Per time.Duration
}

// Off reports whether r limits nothing.
func (r Rate) Off() bool { return r.N <= 0 || r.Per <= 0 }

// String is r in its setting's form.
func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.N, r.Per)
}

// Worker are the worker settings.
type Worker struct {
	Common
	// MongoURI: PINRESET_MONGO_URI (or _FILE, as it may hold a password).
	// Default mongodb://127.0.0.1:27017/.
	MongoURI string
	// MongoDatabase: PINRESET_MONGO_DATABASE. Default pinreset.
	MongoDatabase string
	// MongoTimeout: PINRESET_MONGO_TIMEOUT, how long one database operation
	// may take in all (server selection, retries and every round trip): the
	// driver's client-wide timeout, which is also what ends a read from a
	// half-open connection. A command whose operation times out is retried
	// with backoff like any database error. Default 10s.
	MongoTimeout time.Duration
	// Peppers: PINRESET_PEPPERS (or _FILE), comma-separated "id:base64(>=16
	// bytes)"; the first hashes new PINs, all verify. Required.
	Peppers []string
	// FingerprintKeys: PINRESET_FINGERPRINT_KEYS (or _FILE), comma-separated
	// "id:base64(>=16 bytes, 32 recommended)"; the first makes new
	// fingerprints of request content (outcome, replay claim, wrong
	// attempts, audit login hash), all verify. Apart from the peppers so
	// that the two rotate apart and a leak of one does not give the other's
	// secrets. Required.
	FingerprintKeys []string
	// Argon2MemoryKiB: PINRESET_ARGON2_MEMORY_KIB. Default 19456 (19 MiB, OWASP).
	Argon2MemoryKiB uint32
	// Argon2Time: PINRESET_ARGON2_TIME, iterations. Default 2.
	Argon2Time uint32
	// Argon2Threads: PINRESET_ARGON2_THREADS. Default 1.
	Argon2Threads uint8
	// Concurrency: PINRESET_WORKER_CONCURRENCY, commands processed at once.
	// A command spends most of its time waiting for the database, so this is
	// above the core count. Default: 4 × the usable cores (GOMAXPROCS).
	Concurrency int
	// HashConcurrency: PINRESET_HASH_CONCURRENCY, argon2id hashes computed at
	// once: the admission limit that keeps the CPU at its cores and memory at
	// this × PINRESET_ARGON2_MEMORY_KIB, whatever the load. Default: the
	// usable cores.
	HashConcurrency int
	// ConsumerGroup: PINRESET_CONSUMER_GROUP. Default pinreset-worker.
	ConsumerGroup string
	// LockAfter: PINRESET_LOCK_AFTER, wrong currentPassword attempts before
	// the PIN locks; 0 disables. Default 5.
	LockAfter int
	// LockFor: PINRESET_LOCK_FOR, how long a PIN stays locked. Default 15m.
	LockFor time.Duration
	// WorkerID: PINRESET_WORKER_ID, names this instance in logs. Default the host name.
	WorkerID string
	// OutcomeRetention: PINRESET_OUTCOME_RETENTION, how long a command's
	// outcome is kept for retries with the same correlation id and for status
	// queries. Default 168h (7 days).
	OutcomeRetention time.Duration
	// ReplayWindow: PINRESET_REPLAY_WINDOW, how long the content of a decided
	// request stays tied to its correlation id: the same content under
	// another id within it is a replay (001_409). At most the outcome
	// retention. Default 24h.
	ReplayWindow time.Duration
	// SessionTimeout: PINRESET_KAFKA_SESSION_TIMEOUT, how long the consumer
	// group waits for a silent worker (one that was killed) before giving its
	// partitions to the others: the worst-case pause after a crash. Default 10s.
	SessionTimeout time.Duration
	// CommandTimeout: PINRESET_COMMAND_TIMEOUT, the deadline of one attempt
	// at one command (its reads, hashing, writes and publishes): an attempt
	// stuck on a dead connection is cancelled and retried. Default 30s.
	CommandTimeout time.Duration
	// RetryBudget: PINRESET_RETRY_BUDGET, how long a command that keeps
	// failing (while the database and broker answer) is retried in its lane
	// before it is parked on password.commands.retry, so that the commands
	// behind it go on. Default 30s.
	RetryBudget time.Duration
}

// env reads variables and collects errors that name the variable.
type env struct {
	get  func(string) string
	errs []error
}

func (e *env) str(name, def string) string {
	if v := strings.TrimSpace(e.get(name)); v != "" {
		return v
	}
	return def
}

// secret reads NAME, or the file named by NAME_FILE; never both.
func (e *env) secret(name string) string {
	v, file := e.get(name), e.get(name+"_FILE")
	if v != "" && file != "" {
		e.errs = append(e.errs, fmt.Errorf("%s and %s_FILE are both set; set one", name, name))
		return ""
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s_FILE: %w", name, err))
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return strings.TrimSpace(v)
}

func (e *env) list(name string, secret bool, def string) []string {
	v := def
	if secret {
		if s := e.secret(name); s != "" {
			v = s
		}
	} else {
		v = e.str(name, def)
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (e *env) duration(name string, def time.Duration) time.Duration {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not a positive duration such as 5s or 2m", name, v))
		return def
	}
	return d
}

// rate reads "<n>/<duration>" (n from 1 to 1,000,000) or "off".
func (e *env) rate(name string, def Rate) Rate {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	if v == "off" {
		return Rate{}
	}
	ns, ds, ok := strings.Cut(v, "/")
	n, err := strconv.Atoi(ns)
	d, derr := time.ParseDuration(ds)
	if !ok || err != nil || derr != nil || n < 1 || n > 1_000_000 || d <= 0 {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not off or <n>/<duration> such as 10/1m", name, v))
		return def
	}
	return Rate{N: n, Per: d}
}

func (e *env) integer(name string, def, lo, hi int) int {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not a whole number from %d to %d", name, v, lo, hi))
		return def
	}
	return n
}

func (e *env) boolean(name string, def bool) bool {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not true or false", name, v))
		return def
	}
	return b
}

func (e *env) required(name string, v []string) {
	if len(v) == 0 {
		e.errs = append(e.errs, fmt.Errorf("%s (or %s_FILE) is required", name, name))
	}
}

func loadCommon(e *env, adminAddr string) Common {
	c := Common{
		Kafka:            loadKafka(e),
		SealKeys:         e.list("PINRESET_SEAL_KEYS", true, ""),
		LogLevel:         e.str("PINRESET_LOG_LEVEL", DefaultLogLevel),
		TopicPartitions:  e.integer("PINRESET_TOPIC_PARTITIONS", DefaultTopicPartitions, 1, 10000),
		TopicReplication: e.integer("PINRESET_TOPIC_REPLICATION", DefaultTopicReplication, 1, 100),
		TopicMinInSync:   e.integer("PINRESET_TOPIC_MIN_INSYNC_REPLICAS", DefaultTopicMinInSync, 1, 100),
		CreateTopics:     e.boolean("PINRESET_CREATE_TOPICS", true),
		AdminAddr:        e.str("PINRESET_ADMIN_ADDR", adminAddr),
		AdminPprof:       e.boolean("PINRESET_ADMIN_PPROF", false),
		TracesExporter:   e.str("PINRESET_TRACES_EXPORTER", "none"),
		TracesFile:       e.str("PINRESET_TRACES_FILE", ""),
		CommandTTL:       e.duration("PINRESET_COMMAND_TTL", DefaultCommandTTL),
	}
	switch c.TracesExporter {
	case "none", "otlp":
	case "file":
		if c.TracesFile == "" {
			e.errs = append(e.errs, errors.New("PINRESET_TRACES_FILE is required with PINRESET_TRACES_EXPORTER=file"))
		}
	default:
		e.errs = append(e.errs, fmt.Errorf("PINRESET_TRACES_EXPORTER: %q is not none, otlp or file", c.TracesExporter))
	}
	if c.AdminAddr == "off" {
		c.AdminAddr = ""
	}
	e.required("PINRESET_SEAL_KEYS", c.SealKeys)
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		e.errs = append(e.errs, fmt.Errorf("PINRESET_LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel))
	}
	return c
}

func loadKafka(e *env) Kafka {
	c := Kafka{
		KafkaBrokers:       e.list("PINRESET_KAFKA_BROKERS", false, DefaultKafkaBrokers),
		KafkaTLS:           e.boolean("PINRESET_KAFKA_TLS", false),
		KafkaTLSCAFile:     e.str("PINRESET_KAFKA_TLS_CA_FILE", ""),
		KafkaSASLMechanism: e.str("PINRESET_KAFKA_SASL_MECHANISM", ""),
		KafkaSASLUsername:  e.str("PINRESET_KAFKA_SASL_USERNAME", ""),
		KafkaSASLPassword:  e.secret("PINRESET_KAFKA_SASL_PASSWORD"),
	}
	switch c.KafkaSASLMechanism {
	case "":
		if c.KafkaSASLUsername != "" || c.KafkaSASLPassword != "" {
			e.errs = append(e.errs, errors.New("PINRESET_KAFKA_SASL_USERNAME and _PASSWORD need PINRESET_KAFKA_SASL_MECHANISM"))
		}
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.KafkaSASLUsername == "" || c.KafkaSASLPassword == "" {
			e.errs = append(e.errs, errors.New("PINRESET_KAFKA_SASL_MECHANISM needs PINRESET_KAFKA_SASL_USERNAME and PINRESET_KAFKA_SASL_PASSWORD (or _FILE)"))
		}
		if c.KafkaSASLMechanism == "PLAIN" && !c.KafkaTLS {
			// PLAIN sends the password as it is: only inside TLS.
			e.errs = append(e.errs, errors.New("PINRESET_KAFKA_SASL_MECHANISM=PLAIN needs PINRESET_KAFKA_TLS=true (it sends the password in clear)"))
		}
	default:
		e.errs = append(e.errs, fmt.Errorf("PINRESET_KAFKA_SASL_MECHANISM: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.KafkaSASLMechanism))
	}
	if c.KafkaTLSCAFile != "" && !c.KafkaTLS {
		e.errs = append(e.errs, errors.New("PINRESET_KAFKA_TLS_CA_FILE needs PINRESET_KAFKA_TLS=true"))
	}
	return c
}

// LoadKafka reads only the Kafka settings through getenv (pwctl's tools).
func LoadKafka(getenv func(string) string) (Kafka, error) {
	e := &env{get: getenv}
	k := loadKafka(e)
	return k, errors.Join(e.errs...)
}

// LoadIngress reads the ingress settings through getenv.
func LoadIngress(getenv func(string) string) (Ingress, error) {
	e := &env{get: getenv}
	c := Ingress{
		Common:          loadCommon(e, DefaultIngressAdminAddr),
		HTTPAddr:        e.str("PINRESET_HTTP_ADDR", DefaultHTTPAddr),
		ASPFile:         e.str("PINRESET_ASP_FILE", ""),
		TranWindow:      e.duration("PINRESET_TRAN_WINDOW", DefaultTranWindow),
		ResultWait:      e.duration("PINRESET_RESULT_WAIT", DefaultResultWait),
		MaxBodyBytes:    int64(e.integer("PINRESET_MAX_BODY_BYTES", DefaultMaxBodyBytes, 256, 1<<20)),
		PINPolicy:       e.boolean("PINRESET_PIN_POLICY", true),
		ShutdownTimeout: e.duration("PINRESET_SHUTDOWN_TIMEOUT", DefaultShutdownTimeout),
		JWEKeysDir:      e.str("PINRESET_JWE_KEYS_DIR", ""),
		MaxInFlight:     e.integer("PINRESET_MAX_IN_FLIGHT", DefaultMaxInFlight, 1, 1_000_000),
		MemberRate:      e.rate("PINRESET_MEMBER_RATE", DefaultMemberRate),
		ASPRate:         e.rate("PINRESET_ASP_RATE", DefaultASPRate),
	}
	if c.ASPFile == "" {
		e.errs = append(e.errs, errors.New("PINRESET_ASP_FILE is required"))
	}
	if c.ResultWait >= c.CommandTTL {
		e.errs = append(e.errs, errors.New("PINRESET_RESULT_WAIT must be shorter than PINRESET_COMMAND_TTL"))
	}
	return c, errors.Join(e.errs...)
}

// LoadWorker reads the worker settings through getenv.
func LoadWorker(getenv func(string) string) (Worker, error) {
	e := &env{get: getenv}
	host, _ := os.Hostname()
	argon2, rules := pinhash.DefaultParams(), pinreset.DefaultRules()
	c := Worker{
		Common:           loadCommon(e, DefaultWorkerAdminAddr),
		MongoURI:         e.secret("PINRESET_MONGO_URI"),
		MongoDatabase:    e.str("PINRESET_MONGO_DATABASE", DefaultMongoDatabase),
		MongoTimeout:     e.duration("PINRESET_MONGO_TIMEOUT", DefaultMongoTimeout),
		Peppers:          e.list("PINRESET_PEPPERS", true, ""),
		FingerprintKeys:  e.list("PINRESET_FINGERPRINT_KEYS", true, ""),
		Argon2MemoryKiB:  uint32(e.integer("PINRESET_ARGON2_MEMORY_KIB", int(argon2.Memory), 8, 4<<20)),
		Argon2Time:       uint32(e.integer("PINRESET_ARGON2_TIME", int(argon2.Time), 1, 100)),
		Argon2Threads:    uint8(e.integer("PINRESET_ARGON2_THREADS", int(argon2.Threads), 1, 255)),
		Concurrency:      e.integer("PINRESET_WORKER_CONCURRENCY", DefaultConcurrency(), 1, 1024),
		HashConcurrency:  e.integer("PINRESET_HASH_CONCURRENCY", DefaultHashConcurrency(), 1, 1024),
		ConsumerGroup:    e.str("PINRESET_CONSUMER_GROUP", DefaultConsumerGroup),
		LockAfter:        e.integer("PINRESET_LOCK_AFTER", rules.LockAfter, 0, 1000),
		LockFor:          e.duration("PINRESET_LOCK_FOR", rules.LockFor),
		WorkerID:         e.str("PINRESET_WORKER_ID", host),
		OutcomeRetention: e.duration("PINRESET_OUTCOME_RETENTION", DefaultOutcomeRetention),
		SessionTimeout:   e.duration("PINRESET_KAFKA_SESSION_TIMEOUT", DefaultSessionTimeout),
		ReplayWindow:     e.duration("PINRESET_REPLAY_WINDOW", DefaultReplayWindow),
		CommandTimeout:   e.duration("PINRESET_COMMAND_TIMEOUT", DefaultCommandTimeout),
		RetryBudget:      e.duration("PINRESET_RETRY_BUDGET", DefaultRetryBudget),
	}
	e.errs = append(e.errs, c.coherent()...)
	if c.MongoURI == "" {
		c.MongoURI = DefaultMongoURI
	}
	e.required("PINRESET_PEPPERS", c.Peppers)
	e.required("PINRESET_FINGERPRINT_KEYS", c.FingerprintKeys)
	return c, errors.Join(e.errs...)
}

// minRetentionFactor: a command's outcome must outlive by this factor
// everything that can bring the command back (a redelivery, a parked
// copy, an unsettled decision's lease, a client's retry within the command
// TTL). Exactly-once rests on that outcome being found; one found only just
// in time is a race with the sweep.
const minRetentionFactor = 10

// coherent checks the worker settings whose guarantees depend on an order
// between them, naming both variables of each pair that breaks it.
func (c Worker) coherent() []error {
	var errs []error
	need := func(longer string, l time.Duration, than string, d time.Duration, why string) {
		if l < minRetentionFactor*d {
			errs = append(errs, fmt.Errorf("%s (%v) must be at least %d × %s (%v): %s", longer, l, minRetentionFactor, than, d, why))
		}
	}
	need("PINRESET_OUTCOME_RETENTION", c.OutcomeRetention, "the settle lease", pinreset.SettleLease,
		"a decision must outlive the lease after which another worker settles it")
	need("PINRESET_OUTCOME_RETENTION", c.OutcomeRetention, "PINRESET_COMMAND_TTL", c.CommandTTL,
		"a retried or redelivered command must find its outcome instead of being decided again")
	need("PINRESET_OUTCOME_RETENTION", c.OutcomeRetention, "PINRESET_RETRY_BUDGET", c.RetryBudget,
		"a parked command must find its outcome when it comes back")
	if c.ReplayWindow > c.OutcomeRetention {
		errs = append(errs, fmt.Errorf("PINRESET_REPLAY_WINDOW (%v) must not be longer than PINRESET_OUTCOME_RETENTION (%v)", c.ReplayWindow, c.OutcomeRetention))
	}
	if c.ReplayWindow < c.CommandTTL {
		errs = append(errs, fmt.Errorf("PINRESET_REPLAY_WINDOW (%v) must not be shorter than PINRESET_COMMAND_TTL (%v): a captured request would be replayable while it is still valid", c.ReplayWindow, c.CommandTTL))
	}
	return errs
}

// ReadEnvFile reads a file of KEY=VALUE lines (blank lines and lines
// starting with # are skipped), such as deployments/sandbox/sandbox.env.
func ReadEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read settings file: %w", err)
	}
	out := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s line %d: want KEY=VALUE", path, n+1)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}
