package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/config"
)

// Recognisable secret values: no error may contain them.
const (
	sealKeysValue = "k1:U0VBTFNFQ1JFVC1zZWFsc2VjcmV0LXNlYWxzZWNyZXQ="
	peppersValue  = "p1:UEVQUEVSU0VDUkVULXBlcHBlcnNlY3JldA=="
	fpKeysValue   = "f1:RklOR0VSUFJJTlRTRUNSRVQtZmluZ2VycHJpbnRzZWNyZXQ="
	mongoURIValue = "mongodb://svc:MongoPassw0rdSecret@db.internal:27017/"
)

func getenv(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

// ingressEnv is the least a valid ingress needs, with edits applied (an
// empty value deletes the variable).
func ingressEnv(edits map[string]string) map[string]string {
	return with(map[string]string{
		"PINRESET_SEAL_KEYS": sealKeysValue,
		"PINRESET_ASP_FILE":  "/etc/pinreset/asps.json",
	}, edits)
}

// workerEnv is the least a valid worker needs, with edits applied.
func workerEnv(edits map[string]string) map[string]string {
	return with(map[string]string{
		"PINRESET_SEAL_KEYS":        sealKeysValue,
		"PINRESET_PEPPERS":          peppersValue,
		"PINRESET_FINGERPRINT_KEYS": fpKeysValue,
	}, edits)
}

func with(m, edits map[string]string) map[string]string {
	for k, v := range edits {
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

func loadIngress(t *testing.T, env map[string]string) config.Ingress {
	t.Helper()
	c, err := config.LoadIngress(getenv(env))
	if err != nil {
		t.Fatalf("LoadIngress: %v", err)
	}
	return c
}

func loadWorker(t *testing.T, env map[string]string) config.Worker {
	t.Helper()
	c, err := config.LoadWorker(getenv(env))
	if err != nil {
		t.Fatalf("LoadWorker: %v", err)
	}
	return c
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func defaultCommon() config.Common {
	return config.Common{
		Kafka:            config.Kafka{KafkaBrokers: []string{"127.0.0.1:9092"}},
		SealKeys:         []string{sealKeysValue},
		LogLevel:         "info",
		TopicPartitions:  12,
		TopicReplication: 1,
		TopicMinInSync:   1,
		CreateTopics:     true,
		TracesExporter:   "none",
		CommandTTL:       2 * time.Minute,
	}
}

// The admin listener's default differs per binary.
func withAdmin(c config.Common, addr string) config.Common { c.AdminAddr = addr; return c }

func TestDefaults(t *testing.T) {
	t.Parallel()
	t.Run("the ingress defaults are the documented ones", func(t *testing.T) {
		t.Parallel()
		host, _ := os.Hostname()
		want := config.Ingress{
			Common:          withAdmin(defaultCommon(), "127.0.0.1:9090"),
			HTTPAddr:        "127.0.0.1:8080",
			ASPFile:         "/etc/pinreset/asps.json",
			TranWindow:      5 * time.Minute,
			ResultWait:      5 * time.Second,
			MaxBodyBytes:    8192,
			MaxInFlight:     2000,
			PINPolicy:       true,
			ShutdownTimeout: 15 * time.Second,
			MemberRate:      config.Rate{N: 10, Per: time.Minute},
			ASPRate:         config.Rate{N: 1000, Per: 10 * time.Second},
			IngressID:       host,
		}
		if got := loadIngress(t, ingressEnv(nil)); !reflect.DeepEqual(got, want) {
			t.Errorf("LoadIngress =\n%+v\nwant\n%+v", got, want)
		}
	})
	t.Run("the worker defaults are the documented ones", func(t *testing.T) {
		t.Parallel()
		host, _ := os.Hostname()
		want := config.Worker{
			Common:           withAdmin(defaultCommon(), "127.0.0.1:9091"),
			MongoURI:         "mongodb://127.0.0.1:27017/",
			MongoDatabase:    "pinreset",
			MongoTimeout:     10 * time.Second,
			Peppers:          []string{peppersValue},
			FingerprintKeys:  []string{fpKeysValue},
			Argon2MemoryKiB:  19456,
			Argon2Time:       2,
			Argon2Threads:    1,
			Concurrency:      4 * runtime.GOMAXPROCS(0),
			HashConcurrency:  runtime.GOMAXPROCS(0),
			ConsumerGroup:    "pinreset-worker",
			LockAfter:        5,
			LockFor:          15 * time.Minute,
			WorkerID:         host,
			OutcomeRetention: 7 * 24 * time.Hour,
			SessionTimeout:   10 * time.Second,
			ReplayWindow:     24 * time.Hour,
			CommandTimeout:   30 * time.Second,
			RetryBudget:      30 * time.Second,
		}
		if got := loadWorker(t, workerEnv(nil)); !reflect.DeepEqual(got, want) {
			t.Errorf("LoadWorker =\n%+v\nwant\n%+v", got, want)
		}
	})
}

// TestEverySettingIsRead sets every variable to a non-default value, so a
// misspelt variable name keeps the default and fails.
func TestEverySettingIsRead(t *testing.T) {
	t.Parallel()
	common := map[string]string{
		"PINRESET_KAFKA_BROKERS":             " k1:9092, k2:9092 ,,k3:9092 ",
		"PINRESET_SEAL_KEYS":                 "a:AAAA, b:BBBB",
		"PINRESET_LOG_LEVEL":                 "debug",
		"PINRESET_TOPIC_PARTITIONS":          "24",
		"PINRESET_TOPIC_REPLICATION":         "3",
		"PINRESET_TOPIC_MIN_INSYNC_REPLICAS": "2",
		"PINRESET_CREATE_TOPICS":             "false",
		"PINRESET_ADMIN_ADDR":                ":9999",
		"PINRESET_TRACES_EXPORTER":           "file",
		"PINRESET_TRACES_FILE":               "/tmp/spans.jsonl",
		"PINRESET_COMMAND_TTL":               "10m",
		"PINRESET_KAFKA_TLS":                 "true",
		"PINRESET_KAFKA_TLS_CA_FILE":         "/etc/kafka/ca.pem",
		"PINRESET_KAFKA_SASL_MECHANISM":      "SCRAM-SHA-512",
		"PINRESET_KAFKA_SASL_USERNAME":       "pinreset",
		"PINRESET_KAFKA_SASL_PASSWORD":       "KafkaPassw0rdSecret",
	}
	wantCommon := config.Common{
		Kafka: config.Kafka{KafkaBrokers: []string{"k1:9092", "k2:9092", "k3:9092"}, KafkaTLS: true, KafkaTLSCAFile: "/etc/kafka/ca.pem",
			KafkaSASLMechanism: "SCRAM-SHA-512", KafkaSASLUsername: "pinreset", KafkaSASLPassword: "KafkaPassw0rdSecret"},
		SealKeys: []string{"a:AAAA", "b:BBBB"},
		LogLevel: "debug", TopicPartitions: 24, TopicReplication: 3, TopicMinInSync: 2, CreateTopics: false, AdminAddr: ":9999",
		TracesExporter: "file", TracesFile: "/tmp/spans.jsonl", CommandTTL: 10 * time.Minute,
	}
	t.Run("every ingress variable is read", func(t *testing.T) {
		t.Parallel()
		env := with(map[string]string{
			"PINRESET_HTTP_ADDR":        ":9000",
			"PINRESET_ASP_FILE":         "/x/asps.json",
			"PINRESET_TRAN_WINDOW":      "90s",
			"PINRESET_RESULT_WAIT":      "1500ms",
			"PINRESET_MAX_BODY_BYTES":   "4096",
			"PINRESET_MAX_IN_FLIGHT":    "50",
			"PINRESET_PIN_POLICY":       "false",
			"PINRESET_SHUTDOWN_TIMEOUT": "1m",
			"PINRESET_JWE_KEYS_DIR":     "/keys",
			"PINRESET_MEMBER_RATE":      "3/30s",
			"PINRESET_ASP_RATE":         "off",
			"PINRESET_INGRESS_ID":       "ingress-3",
		}, common)
		want := config.Ingress{
			Common: wantCommon, HTTPAddr: ":9000", ASPFile: "/x/asps.json", TranWindow: 90 * time.Second,
			ResultWait: 1500 * time.Millisecond, MaxBodyBytes: 4096, MaxInFlight: 50,
			PINPolicy: false, ShutdownTimeout: time.Minute, JWEKeysDir: "/keys",
			MemberRate: config.Rate{N: 3, Per: 30 * time.Second}, ASPRate: config.Rate{}, IngressID: "ingress-3",
		}
		if got := loadIngress(t, env); !reflect.DeepEqual(got, want) {
			t.Errorf("LoadIngress =\n%+v\nwant\n%+v", got, want)
		}
	})
	t.Run("every worker variable is read", func(t *testing.T) {
		t.Parallel()
		env := with(map[string]string{
			"PINRESET_MONGO_URI":             "mongodb://m1,m2/?replicaSet=rs0",
			"PINRESET_MONGO_DATABASE":        "pins",
			"PINRESET_MONGO_TIMEOUT":         "3s",
			"PINRESET_PEPPERS":               "p1:AAAA,p0:BBBB",
			"PINRESET_FINGERPRINT_KEYS":      "f2:CCCC, f1:DDDD",
			"PINRESET_ARGON2_MEMORY_KIB":     "65536",
			"PINRESET_ARGON2_TIME":           "3",
			"PINRESET_ARGON2_THREADS":        "4",
			"PINRESET_WORKER_CONCURRENCY":    "17",
			"PINRESET_HASH_CONCURRENCY":      "3",
			"PINRESET_CONSUMER_GROUP":        "g2",
			"PINRESET_LOCK_AFTER":            "0",
			"PINRESET_LOCK_FOR":              "1h",
			"PINRESET_WORKER_ID":             "worker-7",
			"PINRESET_OUTCOME_RETENTION":     "48h",
			"PINRESET_REPLAY_WINDOW":         "12h",
			"PINRESET_KAFKA_SESSION_TIMEOUT": "30s",
			"PINRESET_COMMAND_TIMEOUT":       "20s",
			"PINRESET_RETRY_BUDGET":          "1m",
		}, common)
		want := config.Worker{
			Common: wantCommon, MongoURI: "mongodb://m1,m2/?replicaSet=rs0", MongoDatabase: "pins", MongoTimeout: 3 * time.Second,
			Peppers: []string{"p1:AAAA", "p0:BBBB"}, FingerprintKeys: []string{"f2:CCCC", "f1:DDDD"}, Argon2MemoryKiB: 65536, Argon2Time: 3, Argon2Threads: 4,
			Concurrency: 17, HashConcurrency: 3, ConsumerGroup: "g2", LockAfter: 0, LockFor: time.Hour, WorkerID: "worker-7",
			OutcomeRetention: 48 * time.Hour, SessionTimeout: 30 * time.Second, ReplayWindow: 12 * time.Hour,
			CommandTimeout: 20 * time.Second, RetryBudget: time.Minute,
		}
		if got := loadWorker(t, env); !reflect.DeepEqual(got, want) {
			t.Errorf("LoadWorker =\n%+v\nwant\n%+v", got, want)
		}
	})
}

func TestRangeBoundsAreAccepted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rule    string
		ingress bool
		name    string
		val     string
	}{
		{"a body limit of 256 bytes is accepted", true, "PINRESET_MAX_BODY_BYTES", "256"},
		{"a body limit of 1 MiB is accepted", true, "PINRESET_MAX_BODY_BYTES", "1048576"},
		{"a result wait just under the command ttl is accepted", true, "PINRESET_RESULT_WAIT", "119999ms"},
		{"one partition is accepted", false, "PINRESET_TOPIC_PARTITIONS", "1"},
		{"10000 partitions are accepted", false, "PINRESET_TOPIC_PARTITIONS", "10000"},
		{"a lock after 0 attempts (never) is accepted", false, "PINRESET_LOCK_AFTER", "0"},
		{"a lock after 1000 attempts is accepted", false, "PINRESET_LOCK_AFTER", "1000"},
		{"255 argon2 threads are accepted", false, "PINRESET_ARGON2_THREADS", "255"},
		{"8 KiB of argon2 memory is accepted", false, "PINRESET_ARGON2_MEMORY_KIB", "8"},
		{"a value with surrounding spaces is accepted", false, "PINRESET_LOCK_AFTER", " 7 "},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			if tc.ingress {
				loadIngress(t, ingressEnv(map[string]string{tc.name: tc.val}))
				return
			}
			loadWorker(t, workerEnv(map[string]string{tc.name: tc.val}))
		})
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	missingFile := filepath.Join(t.TempDir(), "does-not-exist")
	for _, tc := range []struct {
		rule   string
		worker bool
		edits  map[string]string
		want   []string // every one must appear in the error
	}{
		{rule: "a duration that does not parse names its variable", edits: map[string]string{"PINRESET_TRAN_WINDOW": "5 minutes"}, want: []string{"PINRESET_TRAN_WINDOW"}},
		{rule: "a duration without a unit names its variable", edits: map[string]string{"PINRESET_SHUTDOWN_TIMEOUT": "15"}, want: []string{"PINRESET_SHUTDOWN_TIMEOUT"}},
		{rule: "a zero duration names its variable", edits: map[string]string{"PINRESET_TRAN_WINDOW": "0s"}, want: []string{"PINRESET_TRAN_WINDOW"}},
		{rule: "a zero lock time names its variable", worker: true, edits: map[string]string{"PINRESET_LOCK_FOR": "0s"}, want: []string{"PINRESET_LOCK_FOR"}},
		{rule: "a negative duration names its variable", edits: map[string]string{"PINRESET_RESULT_WAIT": "-5s"}, want: []string{"PINRESET_RESULT_WAIT"}},
		{rule: "a negative worker duration names its variable", worker: true, edits: map[string]string{"PINRESET_LOCK_FOR": "-15m"}, want: []string{"PINRESET_LOCK_FOR"}},
		{rule: "a bad retention names its variable", worker: true, edits: map[string]string{"PINRESET_OUTCOME_RETENTION": "7d"}, want: []string{"PINRESET_OUTCOME_RETENTION"}},
		{rule: "a replay window longer than the retention is refused", worker: true, edits: map[string]string{"PINRESET_OUTCOME_RETENTION": "1h", "PINRESET_REPLAY_WINDOW": "2h"}, want: []string{"PINRESET_REPLAY_WINDOW"}},
		{rule: "a bad session timeout names its variable", worker: true, edits: map[string]string{"PINRESET_KAFKA_SESSION_TIMEOUT": "ten"}, want: []string{"PINRESET_KAFKA_SESSION_TIMEOUT"}},
		{rule: "an integer that does not parse names its variable", edits: map[string]string{"PINRESET_MAX_BODY_BYTES": "8k"}, want: []string{"PINRESET_MAX_BODY_BYTES"}},
		{rule: "an integer below its range names its variable", edits: map[string]string{"PINRESET_MAX_BODY_BYTES": "255"}, want: []string{"PINRESET_MAX_BODY_BYTES"}},
		{rule: "an integer above its range names its variable", edits: map[string]string{"PINRESET_MAX_BODY_BYTES": "1048577"}, want: []string{"PINRESET_MAX_BODY_BYTES"}},
		{rule: "a negative lock count names its variable", worker: true, edits: map[string]string{"PINRESET_LOCK_AFTER": "-1"}, want: []string{"PINRESET_LOCK_AFTER"}},
		{rule: "zero partitions names its variable", edits: map[string]string{"PINRESET_TOPIC_PARTITIONS": "0"}, want: []string{"PINRESET_TOPIC_PARTITIONS"}},
		{rule: "a replication over 100 names its variable", edits: map[string]string{"PINRESET_TOPIC_REPLICATION": "101"}, want: []string{"PINRESET_TOPIC_REPLICATION"}},
		{rule: "argon2 memory under 8 KiB names its variable", worker: true, edits: map[string]string{"PINRESET_ARGON2_MEMORY_KIB": "7"}, want: []string{"PINRESET_ARGON2_MEMORY_KIB"}},
		{rule: "zero argon2 iterations names its variable", worker: true, edits: map[string]string{"PINRESET_ARGON2_TIME": "0"}, want: []string{"PINRESET_ARGON2_TIME"}},
		{rule: "256 argon2 threads (over a byte) names its variable", worker: true, edits: map[string]string{"PINRESET_ARGON2_THREADS": "256"}, want: []string{"PINRESET_ARGON2_THREADS"}},
		{rule: "zero worker concurrency names its variable", worker: true, edits: map[string]string{"PINRESET_WORKER_CONCURRENCY": "0"}, want: []string{"PINRESET_WORKER_CONCURRENCY"}},
		{rule: "a fractional integer names its variable", worker: true, edits: map[string]string{"PINRESET_LOCK_AFTER": "2.5"}, want: []string{"PINRESET_LOCK_AFTER"}},
		{rule: "a bad boolean names its variable", edits: map[string]string{"PINRESET_PIN_POLICY": "yes"}, want: []string{"PINRESET_PIN_POLICY"}},
		{rule: "a bad common boolean names its variable", worker: true, edits: map[string]string{"PINRESET_CREATE_TOPICS": "maybe"}, want: []string{"PINRESET_CREATE_TOPICS"}},
		{rule: "a bad log level names its variable", edits: map[string]string{"PINRESET_LOG_LEVEL": "verbose"}, want: []string{"PINRESET_LOG_LEVEL"}},
		{rule: "a bad log level names its variable for the worker", worker: true, edits: map[string]string{"PINRESET_LOG_LEVEL": "trace"}, want: []string{"PINRESET_LOG_LEVEL"}},
		{rule: "missing seal keys name the variable", edits: map[string]string{"PINRESET_SEAL_KEYS": ""}, want: []string{"PINRESET_SEAL_KEYS"}},
		{rule: "missing seal keys name the variable for the worker", worker: true, edits: map[string]string{"PINRESET_SEAL_KEYS": ""}, want: []string{"PINRESET_SEAL_KEYS"}},
		{rule: "seal keys of only separators are missing", edits: map[string]string{"PINRESET_SEAL_KEYS": " , ,"}, want: []string{"PINRESET_SEAL_KEYS"}},
		{rule: "missing peppers name the variable", worker: true, edits: map[string]string{"PINRESET_PEPPERS": ""}, want: []string{"PINRESET_PEPPERS"}},
		{rule: "a member rate without a duration names the variable", edits: map[string]string{"PINRESET_MEMBER_RATE": "10"}, want: []string{"PINRESET_MEMBER_RATE"}},
		{rule: "a member rate of zero names the variable (off disables it)", edits: map[string]string{"PINRESET_MEMBER_RATE": "0/1m"}, want: []string{"PINRESET_MEMBER_RATE"}},
		{rule: "an ASP rate with a bad duration names the variable", edits: map[string]string{"PINRESET_ASP_RATE": "100/soon"}, want: []string{"PINRESET_ASP_RATE"}},
		{rule: "missing fingerprint keys name the variable", worker: true, edits: map[string]string{"PINRESET_FINGERPRINT_KEYS": ""}, want: []string{"PINRESET_FINGERPRINT_KEYS"}},
		{rule: "setting both fingerprint keys and their file is refused", worker: true, edits: map[string]string{"PINRESET_FINGERPRINT_KEYS_FILE": writeFile(t, "f9:AAAA")}, want: []string{"PINRESET_FINGERPRINT_KEYS", "PINRESET_FINGERPRINT_KEYS_FILE"}},
		{rule: "a missing ASP file names the variable", edits: map[string]string{"PINRESET_ASP_FILE": ""}, want: []string{"PINRESET_ASP_FILE"}},
		{rule: "a result wait equal to the command ttl is refused", edits: map[string]string{"PINRESET_RESULT_WAIT": "2m"}, want: []string{"PINRESET_RESULT_WAIT", "PINRESET_COMMAND_TTL"}},
		{rule: "a result wait longer than the command ttl is refused", edits: map[string]string{"PINRESET_RESULT_WAIT": "10s", "PINRESET_COMMAND_TTL": "5s"}, want: []string{"PINRESET_RESULT_WAIT", "PINRESET_COMMAND_TTL"}},
		{rule: "a retention shorter than ten command ttls is refused", worker: true, edits: map[string]string{"PINRESET_OUTCOME_RETENTION": "1h", "PINRESET_REPLAY_WINDOW": "1h", "PINRESET_COMMAND_TTL": "10m"}, want: []string{"PINRESET_OUTCOME_RETENTION", "PINRESET_COMMAND_TTL"}},
		{rule: "a retention shorter than ten retry budgets is refused", worker: true, edits: map[string]string{"PINRESET_OUTCOME_RETENTION": "1h", "PINRESET_REPLAY_WINDOW": "1h", "PINRESET_RETRY_BUDGET": "10m"}, want: []string{"PINRESET_OUTCOME_RETENTION", "PINRESET_RETRY_BUDGET"}},
		{rule: "a replay window longer than the retention is refused", worker: true, edits: map[string]string{"PINRESET_OUTCOME_RETENTION": "2h", "PINRESET_REPLAY_WINDOW": "3h"}, want: []string{"PINRESET_REPLAY_WINDOW", "PINRESET_OUTCOME_RETENTION"}},
		{rule: "a replay window shorter than the command ttl is refused", worker: true, edits: map[string]string{"PINRESET_REPLAY_WINDOW": "1m"}, want: []string{"PINRESET_REPLAY_WINDOW", "PINRESET_COMMAND_TTL"}},
		{rule: "setting both seal keys and their file is refused", edits: map[string]string{"PINRESET_SEAL_KEYS_FILE": writeFile(t, "k9:AAAA")}, want: []string{"PINRESET_SEAL_KEYS", "PINRESET_SEAL_KEYS_FILE"}},
		{rule: "setting both peppers and their file is refused", worker: true, edits: map[string]string{"PINRESET_PEPPERS_FILE": writeFile(t, "p9:AAAA")}, want: []string{"PINRESET_PEPPERS", "PINRESET_PEPPERS_FILE"}},
		{rule: "setting both the mongo uri and its file is refused", worker: true, edits: map[string]string{"PINRESET_MONGO_URI": mongoURIValue, "PINRESET_MONGO_URI_FILE": writeFile(t, mongoURIValue)}, want: []string{"PINRESET_MONGO_URI", "PINRESET_MONGO_URI_FILE"}},
		{rule: "an unreadable seal keys file names its variable", edits: map[string]string{"PINRESET_SEAL_KEYS": "", "PINRESET_SEAL_KEYS_FILE": missingFile}, want: []string{"PINRESET_SEAL_KEYS_FILE"}},
		{rule: "an unreadable peppers file names its variable", worker: true, edits: map[string]string{"PINRESET_PEPPERS": "", "PINRESET_PEPPERS_FILE": missingFile}, want: []string{"PINRESET_PEPPERS_FILE"}},
		{rule: "an unreadable mongo uri file names its variable", worker: true, edits: map[string]string{"PINRESET_MONGO_URI_FILE": missingFile}, want: []string{"PINRESET_MONGO_URI_FILE"}},
		{rule: "an empty seal keys file counts as missing", edits: map[string]string{"PINRESET_SEAL_KEYS": "", "PINRESET_SEAL_KEYS_FILE": writeFile(t, " \n")}, want: []string{"PINRESET_SEAL_KEYS"}},
		{rule: "an unknown SASL mechanism names its variable", edits: map[string]string{"PINRESET_KAFKA_SASL_MECHANISM": "GSSAPI"}, want: []string{"PINRESET_KAFKA_SASL_MECHANISM"}},
		{rule: "a SASL mechanism without credentials names them", worker: true, edits: map[string]string{"PINRESET_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}, want: []string{"PINRESET_KAFKA_SASL_USERNAME", "PINRESET_KAFKA_SASL_PASSWORD"}},
		{rule: "SASL PLAIN without TLS is refused", edits: map[string]string{"PINRESET_KAFKA_SASL_MECHANISM": "PLAIN", "PINRESET_KAFKA_SASL_USERNAME": "u", "PINRESET_KAFKA_SASL_PASSWORD": "KafkaPassw0rdSecret"}, want: []string{"PINRESET_KAFKA_SASL_MECHANISM", "PINRESET_KAFKA_TLS"}},
		{rule: "SASL credentials without a mechanism are refused", edits: map[string]string{"PINRESET_KAFKA_SASL_USERNAME": "u", "PINRESET_KAFKA_SASL_PASSWORD": "KafkaPassw0rdSecret"}, want: []string{"PINRESET_KAFKA_SASL_MECHANISM"}},
		{rule: "a CA file without TLS is refused", edits: map[string]string{"PINRESET_KAFKA_TLS_CA_FILE": "/ca.pem"}, want: []string{"PINRESET_KAFKA_TLS_CA_FILE", "PINRESET_KAFKA_TLS"}},
		{rule: "every error is reported, not just the first", worker: true, edits: map[string]string{"PINRESET_LOCK_FOR": "x", "PINRESET_ARGON2_TIME": "x", "PINRESET_PEPPERS": ""}, want: []string{"PINRESET_LOCK_FOR", "PINRESET_ARGON2_TIME", "PINRESET_PEPPERS"}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			var err error
			if tc.worker {
				_, err = config.LoadWorker(getenv(workerEnv(tc.edits)))
			} else {
				_, err = config.LoadIngress(getenv(ingressEnv(tc.edits)))
			}
			if err == nil {
				t.Fatal("loaded without an error")
			}
			for _, name := range tc.want {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
			for _, secret := range []string{sealKeysValue, peppersValue, mongoURIValue, "MongoPassw0rdSecret", "KafkaPassw0rdSecret", "U0VBTFNFQ1JFVC", "UEVQUEVSU0VDUkVU", "AAAA"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the secret %q", err, secret)
				}
			}
		})
	}
}

func TestSecretFiles(t *testing.T) {
	t.Parallel()
	t.Run("seal keys are read from their file, trimmed", func(t *testing.T) {
		t.Parallel()
		f := writeFile(t, "\n  k2:AAAA, k1:BBBB \n\n")
		c := loadIngress(t, ingressEnv(map[string]string{"PINRESET_SEAL_KEYS": "", "PINRESET_SEAL_KEYS_FILE": f}))
		if want := []string{"k2:AAAA", "k1:BBBB"}; !reflect.DeepEqual(c.SealKeys, want) {
			t.Errorf("SealKeys = %q, want %q", c.SealKeys, want)
		}
	})
	t.Run("peppers are read from their file, trimmed", func(t *testing.T) {
		t.Parallel()
		f := writeFile(t, "\tp1:CCCC\r\n")
		c := loadWorker(t, workerEnv(map[string]string{"PINRESET_PEPPERS": "", "PINRESET_PEPPERS_FILE": f}))
		if want := []string{"p1:CCCC"}; !reflect.DeepEqual(c.Peppers, want) {
			t.Errorf("Peppers = %q, want %q", c.Peppers, want)
		}
	})
	t.Run("fingerprint keys are read from their file, trimmed", func(t *testing.T) {
		t.Parallel()
		f := writeFile(t, " f2:EEEE,f1:FFFF\n")
		c := loadWorker(t, workerEnv(map[string]string{"PINRESET_FINGERPRINT_KEYS": "", "PINRESET_FINGERPRINT_KEYS_FILE": f}))
		if want := []string{"f2:EEEE", "f1:FFFF"}; !reflect.DeepEqual(c.FingerprintKeys, want) {
			t.Errorf("FingerprintKeys = %q, want %q", c.FingerprintKeys, want)
		}
	})
	t.Run("the mongo uri is read from its file, trimmed", func(t *testing.T) {
		t.Parallel()
		f := writeFile(t, "  "+mongoURIValue+"\n")
		c := loadWorker(t, workerEnv(map[string]string{"PINRESET_MONGO_URI_FILE": f}))
		if c.MongoURI != mongoURIValue {
			t.Errorf("MongoURI = %q, want %q", c.MongoURI, mongoURIValue)
		}
	})
	t.Run("an inline secret is trimmed too", func(t *testing.T) {
		t.Parallel()
		c := loadWorker(t, workerEnv(map[string]string{"PINRESET_MONGO_URI": " " + mongoURIValue + "\n"}))
		if c.MongoURI != mongoURIValue {
			t.Errorf("MongoURI = %q, want %q", c.MongoURI, mongoURIValue)
		}
	})
}

// TestErrorsNeverEchoSecrets puts recognisable secrets next to unrelated
// errors: the secrets must not appear in the error text.
func TestErrorsNeverEchoSecrets(t *testing.T) {
	t.Parallel()
	secrets := []string{sealKeysValue, "U0VBTFNFQ1JFVC", peppersValue, "UEVQUEVSU0VDUkVU", fpKeysValue, "RklOR0VSUFJJTlRTRUNSRVQ", "MongoPassw0rdSecret"}
	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("loaded without an error")
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q contains the secret %q", err, s)
			}
		}
	}
	t.Run("ingress errors do not echo the seal keys", func(t *testing.T) {
		t.Parallel()
		_, err := config.LoadIngress(getenv(ingressEnv(map[string]string{"PINRESET_LOG_LEVEL": "loud", "PINRESET_ASP_FILE": ""})))
		check(t, err)
	})
	t.Run("worker errors do not echo seal keys, peppers or the mongo uri", func(t *testing.T) {
		t.Parallel()
		_, err := config.LoadWorker(getenv(workerEnv(map[string]string{"PINRESET_MONGO_URI": mongoURIValue, "PINRESET_ARGON2_TIME": "lots"})))
		check(t, err)
	})
	t.Run("both forms set does not echo either", func(t *testing.T) {
		t.Parallel()
		_, err := config.LoadWorker(getenv(workerEnv(map[string]string{
			"PINRESET_SEAL_KEYS_FILE":        writeFile(t, sealKeysValue),
			"PINRESET_PEPPERS_FILE":          writeFile(t, peppersValue),
			"PINRESET_FINGERPRINT_KEYS_FILE": writeFile(t, fpKeysValue),
			"PINRESET_MONGO_URI":             mongoURIValue,
			"PINRESET_MONGO_URI_FILE":        writeFile(t, mongoURIValue),
		})))
		check(t, err)
	})
	t.Run("a missing secret file is named by its variable", func(t *testing.T) {
		t.Parallel()
		missing := filepath.Join(t.TempDir(), "seal-keys")
		_, err := config.LoadIngress(getenv(ingressEnv(map[string]string{"PINRESET_SEAL_KEYS": "", "PINRESET_SEAL_KEYS_FILE": missing, "PINRESET_TRAN_WINDOW": "x"})))
		check(t, err)
		if !strings.Contains(err.Error(), "PINRESET_SEAL_KEYS_FILE") {
			t.Errorf("error %q does not name PINRESET_SEAL_KEYS_FILE", err)
		}
	})
}
