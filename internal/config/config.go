// Package config loads the settings of the ingress and the worker from
// environment variables, once, at start, with defaults and with errors that
// name the setting. Secrets can be given inline or as a path (NAME_FILE), so
// that they come from a mounted Kubernetes Secret rather than the process
// environment; no secret value ever appears in an error. Each field of the
// settings structs names its variable; what it means, its unit and its
// default are said once, in Settings (settings.go).
package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The defaults other packages use, each read from Settings (the one place
// a default is written) when the program starts.
var (
	DefaultKafkaBrokers     = defaultOf("PINRESET_KAFKA_BROKERS")
	DefaultTopicPartitions  = defaultInt("PINRESET_TOPIC_PARTITIONS")
	DefaultIngressAdminAddr = adminDefault("ingress")
	DefaultWorkerAdminAddr  = adminDefault("worker")
	DefaultHTTPAddr         = defaultOf("PINRESET_HTTP_ADDR")
	DefaultTranWindow       = defaultDuration("PINRESET_TRAN_WINDOW")
	DefaultMongoURI         = defaultOf("PINRESET_MONGO_URI")
	DefaultMongoDatabase    = defaultOf("PINRESET_MONGO_DATABASE")
	DefaultMongoTimeout     = defaultDuration("PINRESET_MONGO_TIMEOUT")
	DefaultSessionTimeout   = defaultDuration("PINRESET_KAFKA_SESSION_TIMEOUT")
	DefaultCommandTimeout   = defaultDuration("PINRESET_COMMAND_TIMEOUT")
	DefaultRetryBudget      = defaultDuration("PINRESET_RETRY_BUDGET")
	DefaultMemberRate       = defaultRate("PINRESET_MEMBER_RATE")
	DefaultASPRate          = defaultRate("PINRESET_ASP_RATE")
)

// DefaultConcurrency is PINRESET_WORKER_CONCURRENCY's default, 4 × the
// usable cores (GOMAXPROCS); DefaultHashConcurrency is
// PINRESET_HASH_CONCURRENCY's, the usable cores.
func DefaultConcurrency() int     { return 4 * runtime.GOMAXPROCS(0) }
func DefaultHashConcurrency() int { return runtime.GOMAXPROCS(0) }

// defaultOf's typed forms parse a default of Settings as the loader does.
// A default that does not parse is a bug of the table, found at start (and
// by TestHelpShowsTheDefaults).
func defaultDuration(name string) time.Duration {
	return parsedDefault(name, func(e *env) time.Duration { return e.duration(name) })
}
func defaultInt(name string) int {
	return parsedDefault(name, func(e *env) int { return e.integer(name, 0, math.MaxInt) })
}
func defaultRate(name string) Rate {
	return parsedDefault(name, func(e *env) Rate { return e.rate(name) })
}

func parsedDefault[T any](name string, parse func(*env) T) T {
	e := &env{get: func(string) string { return "" }}
	v := parse(e)
	if len(e.errs) > 0 {
		panic(fmt.Sprintf("config: the default of %s in Settings: %v", name, errors.Join(e.errs...)))
	}
	return v
}

// adminDefault is binary's listen address in PINRESET_ADMIN_ADDR's default
// ("ingress <addr>, worker <addr>").
func adminDefault(binary string) string {
	for _, part := range strings.Split(lookup("PINRESET_ADMIN_ADDR").Default, ",") {
		if b, addr, ok := strings.Cut(strings.TrimSpace(part), " "); ok && b == binary {
			return addr
		}
	}
	panic("config: PINRESET_ADMIN_ADDR has no default for " + binary)
}

// Kafka says how to reach the brokers (both binaries and pwctl).
type Kafka struct {
	// KafkaBrokers: PINRESET_KAFKA_BROKERS.
	KafkaBrokers []string
	// KafkaTLS: PINRESET_KAFKA_TLS.
	KafkaTLS bool
	// KafkaTLSCAFile: PINRESET_KAFKA_TLS_CA_FILE.
	KafkaTLSCAFile string
	// KafkaSASLMechanism: PINRESET_KAFKA_SASL_MECHANISM.
	KafkaSASLMechanism string
	// KafkaSASLUsername: PINRESET_KAFKA_SASL_USERNAME.
	KafkaSASLUsername string
	// KafkaSASLPassword: PINRESET_KAFKA_SASL_PASSWORD.
	KafkaSASLPassword string
}

// Common are the settings both binaries share.
type Common struct {
	Kafka
	// SealKeys: PINRESET_SEAL_KEYS.
	SealKeys []string
	// LogLevel: PINRESET_LOG_LEVEL.
	LogLevel string
	// TopicPartitions: PINRESET_TOPIC_PARTITIONS.
	TopicPartitions int
	// TopicReplication: PINRESET_TOPIC_REPLICATION.
	TopicReplication int
	// TopicMinInSync: PINRESET_TOPIC_MIN_INSYNC_REPLICAS.
	TopicMinInSync int
	// CreateTopics: PINRESET_CREATE_TOPICS.
	CreateTopics bool
	// AdminAddr: PINRESET_ADMIN_ADDR.
	AdminAddr string
	// AdminPprof: PINRESET_ADMIN_PPROF.
	AdminPprof bool
	// TracesExporter: PINRESET_TRACES_EXPORTER.
	TracesExporter string
	// TracesFile: PINRESET_TRACES_FILE.
	TracesFile string
	// CommandTTL: PINRESET_COMMAND_TTL.
	CommandTTL time.Duration
}

// Ingress are the ingress settings.
type Ingress struct {
	Common
	// HTTPAddr: PINRESET_HTTP_ADDR.
	HTTPAddr string
	// ASPFile: PINRESET_ASP_FILE.
	ASPFile string
	// TranWindow: PINRESET_TRAN_WINDOW.
	TranWindow time.Duration
	// ResultWait: PINRESET_RESULT_WAIT.
	ResultWait time.Duration
	// MaxBodyBytes: PINRESET_MAX_BODY_BYTES.
	MaxBodyBytes int64
	// PINPolicy: PINRESET_PIN_POLICY.
	PINPolicy bool
	// MaxInFlight: PINRESET_MAX_IN_FLIGHT.
	MaxInFlight int
	// JWEKeysDir: PINRESET_JWE_KEYS_DIR.
	JWEKeysDir string
	// ShutdownTimeout: PINRESET_SHUTDOWN_TIMEOUT.
	ShutdownTimeout time.Duration
	// MemberRate: PINRESET_MEMBER_RATE.
	MemberRate Rate
	// ASPRate: PINRESET_ASP_RATE.
	ASPRate Rate
	// IngressID: PINRESET_INGRESS_ID.
	IngressID string
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
	// MongoURI: PINRESET_MONGO_URI.
	MongoURI string
	// MongoDatabase: PINRESET_MONGO_DATABASE.
	MongoDatabase string
	// MongoTimeout: PINRESET_MONGO_TIMEOUT.
	MongoTimeout time.Duration
	// Peppers: PINRESET_PEPPERS.
	Peppers []string
	// FingerprintKeys: PINRESET_FINGERPRINT_KEYS.
	FingerprintKeys []string
	// Argon2MemoryKiB: PINRESET_ARGON2_MEMORY_KIB.
	Argon2MemoryKiB uint32
	// Argon2Time: PINRESET_ARGON2_TIME.
	Argon2Time uint32
	// Argon2Threads: PINRESET_ARGON2_THREADS.
	Argon2Threads uint8
	// Concurrency: PINRESET_WORKER_CONCURRENCY.
	Concurrency int
	// HashConcurrency: PINRESET_HASH_CONCURRENCY.
	HashConcurrency int
	// ConsumerGroup: PINRESET_CONSUMER_GROUP.
	ConsumerGroup string
	// LockAfter: PINRESET_LOCK_AFTER.
	LockAfter int
	// LockFor: PINRESET_LOCK_FOR.
	LockFor time.Duration
	// WorkerID: PINRESET_WORKER_ID.
	WorkerID string
	// OutcomeRetention: PINRESET_OUTCOME_RETENTION.
	OutcomeRetention time.Duration
	// ReplayWindow: PINRESET_REPLAY_WINDOW.
	ReplayWindow time.Duration
	// SessionTimeout: PINRESET_KAFKA_SESSION_TIMEOUT.
	SessionTimeout time.Duration
	// CommandTimeout: PINRESET_COMMAND_TIMEOUT.
	CommandTimeout time.Duration
	// RetryBudget: PINRESET_RETRY_BUDGET.
	RetryBudget time.Duration
}

// env reads variables and collects errors that name the variable.
type env struct {
	get  func(string) string
	errs []error
}

// str reads name, or its default from Settings.
func (e *env) str(name string) string { return e.strOr(name, defaultOf(name)) }

// strOr reads name, or def: for a default the loader computes.
func (e *env) strOr(name, def string) string {
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

// list reads a comma-separated name (a secret's from NAME_FILE too).
func (e *env) list(name string) []string {
	v := defaultOf(name)
	if lookup(name).File {
		if s := e.secret(name); s != "" {
			v = s
		}
	} else {
		v = e.str(name)
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (e *env) duration(name string) time.Duration {
	v := e.str(name)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not a positive duration such as 5s or 2m", name, v))
		return 0
	}
	return d
}

// rate reads "<n>/<duration>" (n from 1 to 1,000,000) or "off".
func (e *env) rate(name string) Rate {
	v := e.str(name)
	if v == "" {
		return Rate{}
	}
	if v == "off" {
		return Rate{}
	}
	ns, ds, ok := strings.Cut(v, "/")
	n, err := strconv.Atoi(ns)
	d, derr := time.ParseDuration(ds)
	if !ok || err != nil || derr != nil || n < 1 || n > 1_000_000 || d <= 0 {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not off or <n>/<duration> such as 10/1m", name, v))
		return Rate{}
	}
	return Rate{N: n, Per: d}
}

func (e *env) integer(name string, lo, hi int) int {
	d, _ := strconv.Atoi(defaultOf(name))
	return e.integerOr(name, d, lo, hi)
}

// integerOr reads name, or def: for a default the loader computes.
func (e *env) integerOr(name string, def, lo, hi int) int {
	v := e.strOr(name, "")
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

func (e *env) boolean(name string) bool {
	v := e.str(name)
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not true or false", name, v))
		return false
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
		SealKeys:         e.list("PINRESET_SEAL_KEYS"),
		LogLevel:         e.str("PINRESET_LOG_LEVEL"),
		TopicPartitions:  e.integer("PINRESET_TOPIC_PARTITIONS", 1, 10000),
		TopicReplication: e.integer("PINRESET_TOPIC_REPLICATION", 1, 100),
		TopicMinInSync:   e.integer("PINRESET_TOPIC_MIN_INSYNC_REPLICAS", 1, 100),
		CreateTopics:     e.boolean("PINRESET_CREATE_TOPICS"),
		AdminAddr:        e.strOr("PINRESET_ADMIN_ADDR", adminAddr),
		AdminPprof:       e.boolean("PINRESET_ADMIN_PPROF"),
		TracesExporter:   e.strOr("PINRESET_TRACES_EXPORTER", "none"),
		TracesFile:       e.str("PINRESET_TRACES_FILE"),
		CommandTTL:       e.duration("PINRESET_COMMAND_TTL"),
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
		KafkaBrokers:       e.list("PINRESET_KAFKA_BROKERS"),
		KafkaTLS:           e.boolean("PINRESET_KAFKA_TLS"),
		KafkaTLSCAFile:     e.str("PINRESET_KAFKA_TLS_CA_FILE"),
		KafkaSASLMechanism: e.str("PINRESET_KAFKA_SASL_MECHANISM"),
		KafkaSASLUsername:  e.str("PINRESET_KAFKA_SASL_USERNAME"),
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
	host, _ := os.Hostname()
	c := Ingress{
		Common:          loadCommon(e, DefaultIngressAdminAddr),
		HTTPAddr:        e.str("PINRESET_HTTP_ADDR"),
		ASPFile:         e.str("PINRESET_ASP_FILE"),
		TranWindow:      e.duration("PINRESET_TRAN_WINDOW"),
		ResultWait:      e.duration("PINRESET_RESULT_WAIT"),
		MaxBodyBytes:    int64(e.integer("PINRESET_MAX_BODY_BYTES", 256, 1<<20)),
		PINPolicy:       e.boolean("PINRESET_PIN_POLICY"),
		ShutdownTimeout: e.duration("PINRESET_SHUTDOWN_TIMEOUT"),
		JWEKeysDir:      e.str("PINRESET_JWE_KEYS_DIR"),
		MaxInFlight:     e.integer("PINRESET_MAX_IN_FLIGHT", 1, 1_000_000),
		MemberRate:      e.rate("PINRESET_MEMBER_RATE"),
		ASPRate:         e.rate("PINRESET_ASP_RATE"),
		IngressID:       e.strOr("PINRESET_INGRESS_ID", host),
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
	c := Worker{
		Common:           loadCommon(e, DefaultWorkerAdminAddr),
		MongoURI:         e.secret("PINRESET_MONGO_URI"),
		MongoDatabase:    e.str("PINRESET_MONGO_DATABASE"),
		MongoTimeout:     e.duration("PINRESET_MONGO_TIMEOUT"),
		Peppers:          e.list("PINRESET_PEPPERS"),
		FingerprintKeys:  e.list("PINRESET_FINGERPRINT_KEYS"),
		Argon2MemoryKiB:  uint32(e.integer("PINRESET_ARGON2_MEMORY_KIB", 8, 4<<20)),
		Argon2Time:       uint32(e.integer("PINRESET_ARGON2_TIME", 1, 100)),
		Argon2Threads:    uint8(e.integer("PINRESET_ARGON2_THREADS", 1, 255)),
		Concurrency:      e.integerOr("PINRESET_WORKER_CONCURRENCY", DefaultConcurrency(), 1, 1024),
		HashConcurrency:  e.integerOr("PINRESET_HASH_CONCURRENCY", DefaultHashConcurrency(), 1, 1024),
		ConsumerGroup:    e.str("PINRESET_CONSUMER_GROUP"),
		LockAfter:        e.integer("PINRESET_LOCK_AFTER", 0, 1000),
		LockFor:          e.duration("PINRESET_LOCK_FOR"),
		WorkerID:         e.strOr("PINRESET_WORKER_ID", host),
		OutcomeRetention: e.duration("PINRESET_OUTCOME_RETENTION"),
		SessionTimeout:   e.duration("PINRESET_KAFKA_SESSION_TIMEOUT"),
		ReplayWindow:     e.duration("PINRESET_REPLAY_WINDOW"),
		CommandTimeout:   e.duration("PINRESET_COMMAND_TIMEOUT"),
		RetryBudget:      e.duration("PINRESET_RETRY_BUDGET"),
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
// copy, a client's retry within the command
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
