package kafkabus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
)

// testTLS makes a CA and a certificate it signs for 127.0.0.1: the broker's
// listener config, and the CA as a PEM file.
func testTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, leafKey := newKey(), newKey()
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}, caFile
}

// TestClusterOverTLSAndSASL: against a broker that requires TLS and SCRAM
// (kfake), every piece of the plumbing works with the right settings (topic
// creation, readiness, producer, tail, consumer group), and a wrong
// password, a missing TLS setting or an untrusted CA is refused, without the
// password in any error.
func TestClusterOverTLSAndSASL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded broker")
	}
	const user, password = "pinreset", "KafkaS3cretPassw0rd"
	serverTLS, caFile := testTLS(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, password), kfake.TLS(serverTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	good := ClusterConfig{Brokers: brokers, TLS: true, CAFile: caFile, SASLMechanism: "SCRAM-SHA-512", Username: user, Password: password}
	c, err := NewCluster(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopics(ctx, c, Topics(2, 1, 1)); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	if err := Ping(ctx, c, TopicCommands, TopicResults); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	tail, err := StartTail(ctx, c, TopicResults, zap.NewNop())
	if err != nil {
		t.Fatalf("StartTail: %v", err)
	}
	defer tail.Close()
	results := make(chan string, 1)
	go func() { _ = tail.Run(ctx, nil, func(m kafka.Message) { results <- string(m.Value) }) }()
	p := NewProducer(c, ProducerConfig{})
	defer p.Close()
	if err := p.Publish(ctx, Message{Topic: TopicResults, Key: []byte("k1"), Value: []byte("result")},
		Message{Topic: TopicCommands, Key: []byte("k2"), Value: []byte("command")}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	expect(ctx, t, "the tail", results, "result")
	cons := NewConsumer(ConsumerConfig{Cluster: c, Topic: TopicCommands, GroupID: "g1"}, zap.NewNop())
	defer cons.Close()
	cctx, stop := context.WithCancel(ctx)
	commands := make(chan string, 1)
	go func() {
		_ = cons.Run(cctx, func(_ context.Context, m kafka.Message) error { commands <- string(m.Value); return nil })
	}()
	expect(ctx, t, "the consumer", commands, "command")
	stop()

	refused := map[string]ClusterConfig{
		"a wrong password": {Brokers: brokers, TLS: true, CAFile: caFile, SASLMechanism: "SCRAM-SHA-512", Username: user, Password: "wrong-" + password},
		"no TLS":           {Brokers: brokers, SASLMechanism: "SCRAM-SHA-512", Username: user, Password: password},
		"an untrusted CA":  {Brokers: brokers, TLS: true, SASLMechanism: "SCRAM-SHA-512", Username: user, Password: password},
	}
	for name, cfg := range refused {
		c, err := NewCluster(cfg)
		if err != nil {
			t.Fatalf("%s: NewCluster: %v", name, err)
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = Ping(pctx, c, TopicCommands)
		cancel()
		if err == nil {
			t.Errorf("%s: Ping succeeded", name)
		} else if strings.Contains(err.Error(), password) {
			t.Errorf("%s: error %q holds the password", name, err)
		}
	}
}

// expect waits for reader to deliver want on ch.
func expect(ctx context.Context, t *testing.T, reader string, ch <-chan string, want string) {
	t.Helper()
	select {
	case v := <-ch:
		if v != want {
			t.Fatalf("%s read %q, want %q", reader, v, want)
		}
	case <-ctx.Done():
		t.Fatalf("%s read nothing", reader)
	}
}

func TestNewClusterRefuses(t *testing.T) {
	_, caFile := testTLS(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]ClusterConfig{
		"PLAIN without TLS":     {SASLMechanism: "PLAIN", Username: "u", Password: "KafkaS3cret"},
		"an unknown mechanism":  {SASLMechanism: "GSSAPI", Username: "u", Password: "KafkaS3cret"},
		"a missing CA file":     {TLS: true, CAFile: filepath.Join(t.TempDir(), "none.pem")},
		"a CA file without PEM": {TLS: true, CAFile: notPEM},
	} {
		if _, err := NewCluster(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "KafkaS3cret") {
			t.Errorf("%s: error %q holds the password", name, err)
		}
	}
	for name, cfg := range map[string]ClusterConfig{
		"plaintext":     {},
		"PLAIN in TLS":  {TLS: true, SASLMechanism: "PLAIN", Username: "u", Password: "p"},
		"SCRAM-SHA-256": {SASLMechanism: "SCRAM-SHA-256", Username: "u", Password: "p"},
		"a CA file":     {TLS: true, CAFile: caFile},
	} {
		c, err := NewCluster(cfg)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if name == "plaintext" && (c.Dialer() != nil || c.transport() != nil) {
			t.Errorf("plaintext: want kafka-go's own dialer and transport")
		}
	}
}

// TestTopicsAreCreatedWithMinInSync: the topics the service creates carry
// its min.insync.replicas, so that acks=all means that many replicas.
func TestTopicsAreCreatedWithMinInSync(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := Cluster{Brokers: kc.ListenAddrs()}
	if err := EnsureTopics(ctx, c, Topics(2, 3, 2)); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	for _, topic := range []string{TopicCommands, TopicCommandsRetry, TopicResults, TopicEvents, TopicCommandsDLQ} {
		res, err := c.Client().DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"min.insync.replicas"}}}})
		if err != nil {
			t.Fatalf("describe %s: %v", topic, err)
		}
		got := ""
		for _, r := range res.Resources {
			for _, e := range r.ConfigEntries {
				if e.ConfigName == "min.insync.replicas" {
					got = e.ConfigValue
				}
			}
		}
		if got != "2" {
			t.Errorf("%s: min.insync.replicas = %q, want 2", topic, got)
		}
	}
}
