// Package metrics defines the service's Prometheus metrics. Each binary
// builds one set on its own registry (no global state) and serves it on its
// admin port; the names are the contract of the Grafana dashboard and alerts.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Latency buckets in seconds: argon2id dominates (tens of ms per hash), so
// the interesting range is 5 ms to the 5 s result wait.
var buckets = []float64{.005, .01, .02, .035, .05, .075, .1, .15, .25, .5, 1, 2.5, 5, 10}

// Ingress are the ingress's metrics.
type Ingress struct {
	Requests        *prometheus.CounterVec   // by route, status and code
	RequestDuration *prometheus.HistogramVec // by route
	Waiting         prometheus.GaugeFunc     // requests waiting for their result
	Published       *prometheus.CounterVec   // commands published, by kind and result (ok, error)
	Shed            *prometheus.CounterVec   // requests refused with 503 before publishing, by reason (backlog, max_in_flight)
	// Authenticated counts authenticated requests by ASP and tran token
	// scheme: a migration to KMV2 is over when an ASP's KMV1 count stops.
	// The ASP label is bounded by the registry (only authenticated ids).
	Authenticated *prometheus.CounterVec
}

// Worker are the worker's metrics.
type Worker struct {
	Outcomes        *prometheus.CounterVec   // by kind, code and how (decided, repeated, reused, status, ended, withdrawn)
	CommandDuration *prometheus.HistogramVec // processing time by kind
	CommandAge      prometheus.Histogram     // from acceptance by the ingress to the result: end-to-end lag
	HashDuration    prometheus.Histogram     // one argon2id hash or verification
	HashesAhead     *prometheus.CounterVec   // new-PIN hashes started ahead of the check, and used
	Hashes          *prometheus.GaugeVec     // argon2 computations by state: running, waiting for a slot
	DeadLettered    *prometheus.CounterVec   // by reason: undecodable, unopenable
	Locks           prometheus.Counter
	Conflicts       prometheus.Counter     // compare-and-set conflicts (two commands for one member)
	Lag             *prometheus.GaugeVec   // by topic and partition, of the whole group
	Parked          *prometheus.CounterVec // commands moved to the retry topic, by reason
	MissingKeys     *prometheus.CounterVec // attempts that needed an undeployed key, by kind
	Damaged         prometheus.Counter     // commands ended with 000_500 because their member's document is damaged
	QueueActions    *prometheus.GaugeVec   // operators' redrives and purges recorded, by queue and action
}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// NewIngress registers the ingress metrics; waiting reports the requests
// waiting for a result.
func NewIngress(reg prometheus.Registerer, waiting func() float64) *Ingress {
	m := &Ingress{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pinreset_http_requests_total", Help: "HTTP requests by route, status and outcome code.",
		}, []string{"route", "status", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pinreset_http_request_duration_seconds", Help: "HTTP request latency, including the wait for the result.", Buckets: buckets,
		}, []string{"route"}),
		Waiting: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pinreset_commands_in_flight", Help: "Requests of this ingress waiting for their result.",
		}, waiting),
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pinreset_commands_published_total", Help: "Commands published to password.commands, by kind and result.",
		}, []string{"kind", "result"}),
		Shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pinreset_ingress_shed_total", Help: "Requests refused with 503 before publishing, by reason (backlog, max_in_flight).",
		}, []string{"reason"}),
	}
	m.Authenticated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pinreset_authenticated_total", Help: "Authenticated requests by ASP and tran token scheme (KMV1, KMV2).",
	}, []string{"asp", "scheme"})
	// Both reasons exist from the start, at 0, so that a rate() over them
	// is defined before the first refusal.
	m.Shed.WithLabelValues("backlog")
	m.Shed.WithLabelValues("max_in_flight")
	reg.MustRegister(m.Requests, m.RequestDuration, m.Waiting, m.Published, m.Shed, m.Authenticated)
	return m
}

// NewWorker registers the worker metrics.
func NewWorker(reg prometheus.Registerer) *Worker {
	m := &Worker{
		Outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pinreset_outcomes_total", Help: "Command outcomes by kind, code and how they were reached.",
		}, []string{"kind", "code", "how"}),
		CommandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pinreset_command_duration_seconds", Help: "Worker processing time of one command.", Buckets: buckets,
		}, []string{"kind"}),
		CommandAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pinreset_command_age_seconds", Help: "Time from the ingress accepting a command to its result: queueing plus processing.",
			Buckets: append(buckets, 30, 60, 120),
		}),
		HashDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pinreset_hash_duration_seconds", Help: "One argon2id hash or verification.", Buckets: buckets,
		}),
		HashesAhead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pinreset_hashes_ahead_total", Help: "New-PIN hashes started on an idle core while the current PIN was checked (result=started), and those the check let through (result=used).",
		}, []string{"result"}),
		Hashes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pinreset_hashes", Help: "argon2id computations now: running (at most PINRESET_HASH_CONCURRENCY) and waiting for a free slot (state).",
		}, []string{"state"}),
		QueueActions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pinreset_queue_actions", Help: "Redrives and purges operators made with pwctl dlq|parked, by queue (dlq, parked) and action (redrive, purge): the records of queue_actions, read every 30 s.",
		}, []string{"queue", "action"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pinreset_dead_lettered_total", Help: "Commands moved to password.commands.dlq, by reason: unopenable (a sealed part no key opens) or undecodable (anything else; the x-dlq-reason header says what).",
		}, []string{"reason"}),
		Locks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pinreset_pin_locks_total", Help: "PINs locked after too many wrong attempts.",
		}),
		Conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pinreset_member_conflicts_total", Help: "Compare-and-set conflicts on member documents (retried).",
		}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pinreset_consumer_lag", Help: "Messages of a topic the worker group has not committed yet, per partition: high watermark minus committed offset, read from the broker every 10 s.",
		}, []string{"topic", "partition"}),
		Parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pinreset_commands_parked_total", Help: "Commands taken out of their lane to password.commands.retry after their retry budget, by reason (missing_key, transient).",
		}, []string{"reason"}),
		MissingKeys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pinreset_missing_keys_total", Help: "Attempts that needed a seal key, pepper or fingerprint key this worker does not have (kind=seal|pepper|fingerprint): deploy the key.",
		}, []string{"kind"}),
		Damaged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pinreset_damaged_member_commands_total", Help: "Commands ended with 000_500 after their retry budget because their member's document is damaged (malformed hash, undecodable, a required field missing): repair the member named in the worker's log.",
		}),
	}
	for _, r := range []string{"missing_key", "transient"} {
		m.Parked.WithLabelValues(r)
	}
	for _, r := range []string{"undecodable", "unopenable"} {
		m.DeadLettered.WithLabelValues(r)
	}
	for _, k := range []string{"seal", "pepper", "fingerprint"} {
		m.MissingKeys.WithLabelValues(k)
	}
	m.HashesAhead.WithLabelValues("started")
	m.HashesAhead.WithLabelValues("used")
	m.Hashes.WithLabelValues("running")
	m.Hashes.WithLabelValues("waiting")
	for _, q := range []string{"dlq", "parked"} {
		for _, a := range []string{"redrive", "purge"} {
			m.QueueActions.WithLabelValues(q, a)
		}
	}
	reg.MustRegister(m.Outcomes, m.CommandDuration, m.CommandAge, m.HashDuration, m.HashesAhead, m.Hashes, m.DeadLettered, m.Locks, m.Conflicts, m.Lag, m.Parked, m.MissingKeys, m.Damaged, m.QueueActions)
	return m
}
