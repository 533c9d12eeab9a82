// Package compose is the ingress binary's composition root as a library:
// the settings (internal/config) turned into the plain values ingress.Run
// takes. cmd/ingress runs it; the sandbox and the tests that start an
// ingress in their own process reuse it, so the mapping is written once.
package compose

import (
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/ingress"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Config is the settings as the plain values ingress.Run takes.
func Config(c config.Ingress) ingress.Config {
	ic := ingress.Config{
		HTTPAddr: c.HTTPAddr, AdminAddr: c.AdminAddr, AdminPprof: c.AdminPprof,
		ASPFile: c.ASPFile, SealKeys: c.SealKeys, JWEKeysDir: c.JWEKeysDir,
		Kafka: kafkabus.ClusterConfig{Brokers: c.KafkaBrokers, TLS: c.KafkaTLS, CAFile: c.KafkaTLSCAFile,
			SASLMechanism: c.KafkaSASLMechanism, Username: c.KafkaSASLUsername, Password: c.KafkaSASLPassword},
		TracesExporter: c.TracesExporter, TracesFile: c.TracesFile, ShutdownTimeout: c.ShutdownTimeout,
		Options: ingress.Options{
			TranWindow: c.TranWindow, ResultWait: c.ResultWait, CommandTTL: c.CommandTTL,
			MaxBodyBytes: c.MaxBodyBytes, MaxInFlight: c.MaxInFlight, PINPolicy: pinreset.PINPolicy{Enabled: c.PINPolicy},
			MemberRate: ingress.Rate(c.MemberRate), ASPRate: ingress.Rate(c.ASPRate), InstanceID: c.IngressID,
		},
	}
	if c.CreateTopics {
		ic.CreateTopics = kafkabus.Topics(c.TopicPartitions, c.TopicReplication, c.TopicMinInSync)
	}
	return ic
}
