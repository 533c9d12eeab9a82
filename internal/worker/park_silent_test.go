package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/decision/memstore"
	"github.com/kmwallet/pinreset/internal/freeaddr"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// silentBroker is a broker that accepts connections and never answers.
func silentBroker(t *testing.T) kafkabus.Cluster {
	return kafkabus.Cluster{Brokers: []string{freeaddr.Silent(t)}}
}

type pingsFine struct{}

func (pingsFine) Ping(context.Context) error { return nil }

// TestParkingAgainstASilentBroker: the worker's Park, run by the consumer
// as Run wires it, meets a broker that accepts connections and never
// answers, at its readiness check or at its produce to the retry topic.
// Each call ends by the command timeout and the lane goes on retrying;
// readiness is red; liveness stays green (no step outlives its deadline);
// the consumer stops within its drain timeout.
func TestParkingAgainstASilentBroker(t *testing.T) {
	for _, tc := range []struct {
		rule                       string
		silentReady, silentPublish bool
	}{
		{"readiness meets the silent broker", true, false},
		{"the produce to the retry topic meets the silent broker", false, true},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, kafkabus.TopicCommands), kfake.GroupMinSessionTimeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(kc.Close)
			live := kafkabus.Cluster{Brokers: kc.ListenAddrs()}
			silent := silentBroker(t)

			store := &stallingStore{Store: memstore.New()}
			store.broken.Store(true) // every attempt fails, for the command's own reason
			h := newHarness(t, store)
			h.member("m1", "135790", "")
			h.proc.Outage = compose.DependencyDown
			h.proc.Ready = func(context.Context) error { return nil }
			if tc.silentReady {
				h.proc.Ready = compose.Readiness(pingsFine{}, silent)
			}
			if tc.silentPublish {
				p := kafkabus.NewProducer(silent, kafkabus.ProducerConfig{})
				t.Cleanup(func() { _ = p.Close() })
				h.proc.Publisher = p
			}
			m := h.message(h.cmd(pinreset.KindReset, "m1", "", "246813"))
			p := kafkabus.NewProducer(live, kafkabus.ProducerConfig{})
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := p.Publish(ctx, kafkabus.Message{Topic: kafkabus.TopicCommands, Key: m.Key, Value: m.Value}); err != nil {
				t.Fatal(err)
			}

			const commandTimeout, drain = time.Second, time.Second
			var mu sync.Mutex
			var took []time.Duration
			mon := health.New()
			cons := kafkabus.NewConsumer(kafkabus.ConsumerConfig{Cluster: live, Topic: kafkabus.TopicCommands, GroupID: "workers",
				Concurrency: 1, SessionTimeout: 3 * time.Second, HandleTimeout: commandTimeout, DrainTimeout: drain,
				RetryBudget: 100 * time.Millisecond, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Health: mon,
				Park: func(ctx context.Context, m kafka.Message, cause error) error {
					start := time.Now()
					err := h.proc.Park(ctx, m, cause)
					mu.Lock()
					took = append(took, time.Since(start))
					mu.Unlock()
					if err == nil {
						t.Error("parked, with the broker silent")
					}
					return err
				}}, zap.NewNop())
			runCtx, stop := context.WithCancel(context.Background())
			ran := make(chan struct{})
			go func() {
				defer close(ran)
				_ = cons.Run(runCtx, h.consume)
			}()
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					stop()
					select { // a Park that never returns is freed by silentBroker's cleanup, after this one
					case <-ran:
					case <-time.After(10 * time.Second):
					}
				}
				_ = cons.Close()
			})

			watch := 3*commandTimeout + time.Second
			for end := time.Now().Add(watch); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if err := mon.Live(); err != nil {
					t.Fatalf("liveness failed while every step ends by its deadline: %v", err)
				}
			}
			mu.Lock()
			calls := append([]time.Duration(nil), took...)
			mu.Unlock()
			if len(calls) < 2 {
				t.Errorf("Park returned %d times in %v (%v), want a call ended every command timeout (%v)", len(calls), watch, calls, commandTimeout)
			}
			for _, d := range calls {
				if d > commandTimeout+300*time.Millisecond {
					t.Errorf("a call of Park took %v, want it ended by the command timeout (%v)", d, commandTimeout)
				}
			}
			if tc.silentReady {
				start := time.Now()
				if err := h.proc.Ready(context.Background()); err == nil {
					t.Error("readiness is green with the broker silent")
				} else if d := time.Since(start); d > kafkabus.PingTimeout+500*time.Millisecond {
					t.Errorf("readiness took %v to answer, want within kafkabus.PingTimeout (%v)", d, kafkabus.PingTimeout)
				}
			}

			start := time.Now()
			stop()
			select {
			case <-ran:
				stopped = true
			case <-time.After(drain + 5*time.Second):
				t.Fatalf("Run still running %v after cancellation, want it stopped within the drain timeout (%v)", time.Since(start), drain)
			}
			if d := time.Since(start); d > drain+time.Second {
				t.Errorf("Run returned %v after cancellation, want within the drain timeout (%v) and a second", d, drain)
			}
		})
	}
}
