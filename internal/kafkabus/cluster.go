package kafkabus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Cluster says how to reach the brokers: their addresses and, when set, TLS
// and SASL. Without either it connects in plaintext, unauthenticated, with
// kafka-go's own dialer and transport (the sandbox).
type Cluster struct {
	Brokers []string
	TLS     *tls.Config    // nil: plaintext
	SASL    sasl.Mechanism // nil: no authentication
}

// ClusterConfig are the settings a Cluster is built from.
type ClusterConfig struct {
	Brokers []string
	TLS     bool
	// CAFile holds PEM certificates the brokers' certificates must chain
	// to; "" trusts the system's roots.
	CAFile string
	// SASLMechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	SASLMechanism      string
	Username, Password string
}

// NewCluster builds a Cluster. Its errors never hold the password.
func NewCluster(cfg ClusterConfig) (Cluster, error) {
	c := Cluster{Brokers: cfg.Brokers}
	if cfg.TLS {
		c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return Cluster{}, fmt.Errorf("kafka CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return Cluster{}, fmt.Errorf("kafka CA file %s: no PEM certificate in it", cfg.CAFile)
			}
			c.TLS.RootCAs = pool
		}
	}
	var err error
	switch cfg.SASLMechanism {
	case "":
	case "PLAIN":
		if c.TLS == nil {
			return Cluster{}, errors.New("kafka SASL PLAIN without TLS would send the password in clear")
		}
		c.SASL = plain.Mechanism{Username: cfg.Username, Password: cfg.Password}
	case "SCRAM-SHA-256":
		c.SASL, err = scram.Mechanism(scram.SHA256, cfg.Username, cfg.Password)
	case "SCRAM-SHA-512":
		c.SASL, err = scram.Mechanism(scram.SHA512, cfg.Username, cfg.Password)
	default:
		return Cluster{}, fmt.Errorf("kafka SASL mechanism %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", cfg.SASLMechanism)
	}
	if err != nil {
		return Cluster{}, fmt.Errorf("kafka SASL %s: %w", cfg.SASLMechanism, err)
	}
	return c, nil
}

// plain reports whether the defaults of kafka-go do: no TLS, no SASL.
func (c Cluster) plain() bool { return c.TLS == nil && c.SASL == nil }

// Dialer is for kafka.ReaderConfig.Dialer and one-off connections; nil
// means kafka-go's default dialer (10 s timeout, dual stack).
func (c Cluster) Dialer() *kafka.Dialer {
	if c.plain() {
		return nil
	}
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: c.TLS, SASLMechanism: c.SASL}
}

// transport is for writers and clients; nil (an untyped nil interface)
// means kafka-go's DefaultTransport, whose timeouts this one copies.
func (c Cluster) transport() kafka.RoundTripper {
	if c.plain() {
		return nil
	}
	return &kafka.Transport{DialTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second, MetadataTTL: 6 * time.Second,
		TLS: c.TLS, SASL: c.SASL}
}

// Client is a kafka.Client for admin and metadata requests.
func (c Cluster) Client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 10 * time.Second, Transport: c.transport()}
}
