package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/freeaddr"
	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

// silentBroker is a broker that accepts connections and never answers.
func silentBroker(t *testing.T) string { return freeaddr.Silent(t) }

// returnsWithin runs f and fails the test unless it returns within d. It
// does not wait longer for f: a call that hangs is left to the cleanups
// (which close the silent broker's connections under it).
func returnsWithin(t *testing.T, what string, d time.Duration, f func() error) error {
	t.Helper()
	ret := make(chan error, 1)
	start := time.Now()
	go func() { ret <- f() }()
	select {
	case err := <-ret:
		return err
	case <-time.After(d):
		t.Errorf("%s still blocked %v after the call", what, time.Since(start).Round(time.Millisecond))
		return nil
	}
}

// TestPingReturnsAgainstASilentBroker: against a broker that accepts the
// connection and never answers, Ping returns an error by its own deadline
// when the caller set none, by the caller's when that is sooner, and at
// once when the caller cancels.
func TestPingReturnsAgainstASilentBroker(t *testing.T) {
	c := Cluster{Brokers: []string{silentBroker(t)}}
	slack := 500 * time.Millisecond

	t.Run("without a deadline of the caller's", func(t *testing.T) {
		err := returnsWithin(t, "Ping", PingTimeout+slack, func() error { return Ping(context.Background(), c, "cmds") })
		if err == nil || !Unavailable(err) {
			t.Errorf("Ping = %v, want an error that says the cluster is unavailable", err)
		}
	})
	t.Run("under a shorter deadline of the caller's", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := returnsWithin(t, "Ping", 300*time.Millisecond+slack, func() error { return Ping(ctx, c, "cmds") })
		if err == nil || !Unavailable(err) {
			t.Errorf("Ping = %v, want an error that says the cluster is unavailable", err)
		}
	})
	t.Run("cancelled by the caller", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		err := returnsWithin(t, "Ping", 200*time.Millisecond+slack, func() error { return Ping(ctx, c, "cmds") })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Ping = %v, want context.Canceled", err)
		}
	})
}

// runParking runs a consumer of the 20 messages of "cmds" on c, in one lane
// with a buffer of 2 (so that the fetch loop waits on it), whose handler
// fails k3 always and whose Park for it is park. It returns the monitor and
// the func that stops the consumer (Run, then Close) and says how long each
// took.
func runParking(t *testing.T, c Cluster, cfg ConsumerConfig, park Parker) (*health.Monitor, func() (run, close time.Duration)) {
	t.Helper()
	mon := health.New()
	cfg.Cluster, cfg.Topic, cfg.GroupID, cfg.SessionTimeout, cfg.Health = c, "cmds", "g", 3*time.Second, mon
	cfg.Concurrency, cfg.LaneDepth, cfg.RetryBudget = 1, 2, time.Hour
	cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	cfg.ParkAtOnce = func(err error) bool { return errors.Is(err, errCannot) }
	cfg.Park = park
	cons := NewConsumer(cfg, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = cons.Run(ctx, func(_ context.Context, m kafka.Message) error {
			if string(m.Key) == "k3" {
				return fmt.Errorf("%s: %w", m.Key, errCannot)
			}
			return nil
		})
	}()
	var once sync.Once
	var runTook, closeTook time.Duration
	stop := func() (time.Duration, time.Duration) {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case <-ran:
			case <-time.After(cfg.DrainTimeout + 10*time.Second):
			}
			runTook = time.Since(start)
			start = time.Now()
			_ = returnsWithin(t, "Close", 10*time.Second, cons.Close)
			closeTook = time.Since(start)
		})
		return runTook, closeTook
	}
	t.Cleanup(func() { stop() })
	return mon, stop
}

// TestParkingAgainstASilentBrokerFreesTheLane: Park asks a broker that
// accepts connections and never answers (readiness first, as the worker's
// does, then the produce to the retry topic). Each call ends by the lane's
// HandleTimeout, and the lane goes on retrying; liveness stays green, since
// no step outlives its deadline; stopping the consumer takes no longer than
// its DrainTimeout, and Close returns.
func TestParkingAgainstASilentBrokerFreesTheLane(t *testing.T) {
	_, c := consumerCluster(t, 20)
	silent := Cluster{Brokers: []string{silentBroker(t)}}
	p := NewProducer(silent, ProducerConfig{})
	defer p.Close()
	const handleTimeout, drain = time.Second, time.Second
	var mu sync.Mutex
	var took []time.Duration
	mon, stop := runParking(t, c, ConsumerConfig{HandleTimeout: handleTimeout, DrainTimeout: drain},
		func(ctx context.Context, m kafka.Message, cause error) error {
			start := time.Now()
			defer func() {
				mu.Lock()
				took = append(took, time.Since(start))
				mu.Unlock()
			}()
			if err := Ping(ctx, silent, TopicCommandsRetry); err != nil {
				return err
			}
			return p.Publish(ctx, Message{Topic: TopicCommandsRetry, Key: m.Key, Value: m.Value})
		})

	// Liveness is watched over three HandleTimeouts: the time under test,
	// not a wait for anything.
	for end := time.Now().Add(3*handleTimeout + 500*time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err := mon.Live(); err != nil {
			t.Fatalf("liveness failed while every step ends by its deadline: %v", err)
		}
	}
	mu.Lock()
	calls := append([]time.Duration(nil), took...)
	mu.Unlock()
	if len(calls) < 2 {
		t.Errorf("Park returned %d times in %v (%v), want a call ended every HandleTimeout (%v)", len(calls), 3*handleTimeout+500*time.Millisecond, calls, handleTimeout)
	}
	for _, d := range calls {
		if d > handleTimeout+300*time.Millisecond {
			t.Errorf("a call of Park took %v, want it ended by HandleTimeout (%v)", d, handleTimeout)
		}
	}
	run, closed := stop()
	if run > drain+time.Second {
		t.Errorf("Run returned %v after cancellation, want within DrainTimeout (%v) and a second", run, drain)
	}
	if closed > 5*time.Second {
		t.Errorf("Close took %v", closed)
	}
}

// TestAStepPastItsDeadlineFailsLiveness: a Park that ignores its context
// runs on past HandleTimeout; once it has outlived it by StuckGrace, the
// lane is stuck and liveness names it.
func TestAStepPastItsDeadlineFailsLiveness(t *testing.T) {
	_, c := consumerCluster(t, 20)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	const handleTimeout, grace = 300 * time.Millisecond, 300 * time.Millisecond
	mon, stop := runParking(t, c, ConsumerConfig{HandleTimeout: handleTimeout, StuckGrace: grace, DrainTimeout: time.Second},
		func(context.Context, kafka.Message, error) error {
			<-release // deaf to its context
			return nil
		})
	waitfor.Until(10*time.Second, func() bool { return mon.Live() != nil })
	if err := mon.Live(); err == nil || !strings.Contains(err.Error(), "lanes cmds") {
		t.Errorf("liveness = %v with Park stuck past its deadline, want the lanes stuck", err)
	}
	once.Do(func() { close(release) })
	stop()
}
