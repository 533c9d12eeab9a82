package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/health"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

// consumerCluster is a kfake cluster with one 4-partition topic holding n
// messages keyed k0..k<n-1>.
func consumerCluster(t *testing.T, n int) (*kfake.Cluster, Cluster) {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "cmds"), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	c := Cluster{Brokers: kc.ListenAddrs()}
	p := NewProducer(c, ProducerConfig{})
	defer p.Close()
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Topic: "cmds", Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte("v")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	return kc, c
}

// waitLag waits until the group has committed every message of the topic.
func waitLag(t *testing.T, c Cluster, group string, within time.Duration) {
	t.Helper()
	var lag map[int]int64
	var err error
	if !waitfor.Every(100*time.Millisecond, within, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lag, err = GroupLag(ctx, c, group, "cmds")
		total := int64(0)
		for _, n := range lag {
			total += n
		}
		return err == nil && total == 0 && len(lag) == 4
	}) {
		t.Fatalf("group %s: lag %v (%v) after %v, want every message committed", group, lag, err, within)
	}
}

// TestConsumerRidesThroughBrokerFaults: for three seconds the broker
// closes the connection of every fetch, join, heartbeat and commit; the
// consumer neither returns nor loses a message, readiness names the wait
// and clears, and every offset is committed once the faults end.
func TestConsumerRidesThroughBrokerFaults(t *testing.T) {
	kc, c := consumerCluster(t, 200)
	var failing atomic.Bool
	failing.Store(true)
	for _, key := range []int16{kmsg.Fetch.Int16(), kmsg.JoinGroup.Int16(), kmsg.Heartbeat.Int16(), kmsg.OffsetCommit.Int16(), kmsg.SyncGroup.Int16()} {
		kc.ControlKey(key, func(kmsg.Request) (kmsg.Response, error, bool) {
			kc.KeepControl()
			if failing.Load() {
				return nil, errors.New("injected fault"), true
			}
			return nil, nil, false
		})
	}
	time.AfterFunc(3*time.Second, func() { failing.Store(false) })

	mon := health.New()
	cons := NewConsumer(ConsumerConfig{Cluster: c, Topic: "cmds", GroupID: "g", Concurrency: 4, SessionTimeout: 3 * time.Second, Health: mon}, zap.NewNop())
	defer cons.Close()
	var mu sync.Mutex
	seen := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() {
		ran <- cons.Run(ctx, func(_ context.Context, m kafka.Message) error {
			mu.Lock()
			seen[string(m.Key)] = true
			mu.Unlock()
			return nil
		})
	}()
	if !waitfor.Until(3*time.Second, func() bool { return mon.Ready() != nil }) {
		t.Error("readiness stayed green while every fetch failed")
	}
	if err := mon.Live(); err != nil {
		t.Errorf("liveness failed while the broker misbehaves: %v", err)
	}
	waitLag(t, c, "g", time.Minute)
	mu.Lock()
	n := len(seen)
	mu.Unlock()
	if n != 200 {
		t.Errorf("handled %d distinct messages, want 200", n)
	}
	select {
	case err := <-ran:
		t.Fatalf("Run returned during the faults: %v", err)
	default:
	}
	waitfor.Until(health.WaitHold+5*time.Second, func() bool { return mon.Ready() == nil })
	if err := mon.Ready(); err != nil {
		t.Errorf("readiness still red after the faults ended: %v", err)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run = %v after cancellation, want nil", err)
	}
}

// failingKey counts what a consumer run by runFailingKey did.
type failingKey struct{ parked, handled, tries atomic.Int64 }

// runFailingKey runs a consumer with cfg on the topic "cmds" of c (group
// "g") until the test ends. Every attempt at key fails with an error
// wrapping cause; every other message is handled. Park takes key only, and
// only for cause: parking anything else is an error.
func runFailingKey(t *testing.T, c Cluster, cfg ConsumerConfig, key string, cause error) *failingKey {
	t.Helper()
	n := &failingKey{}
	cfg.Cluster, cfg.Topic, cfg.GroupID, cfg.SessionTimeout = c, "cmds", "g", 3*time.Second
	cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	cfg.Park = func(_ context.Context, m kafka.Message, err error) error {
		if string(m.Key) != key || !errors.Is(err, cause) {
			return fmt.Errorf("parked %s (%v), which never failed that way", m.Key, err)
		}
		n.parked.Add(1)
		return nil
	}
	cons := NewConsumer(cfg, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = cons.Run(ctx, func(_ context.Context, m kafka.Message) error {
			if string(m.Key) == key {
				n.tries.Add(1)
				return fmt.Errorf("%s: %w", m.Key, cause)
			}
			n.handled.Add(1)
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-ran
		_ = cons.Close()
	})
	return n
}

var errCannot = errors.New("cannot succeed")

// TestAMessageThatAlwaysFailsIsParked: one key's handler always fails;
// after its retry budget it is parked, and every other message of its
// partition and lane is handled and committed.
func TestAMessageThatAlwaysFailsIsParked(t *testing.T) {
	_, c := consumerCluster(t, 300)
	n := runFailingKey(t, c, ConsumerConfig{Concurrency: 2, RetryBudget: 300 * time.Millisecond}, "k7", errCannot)
	waitLag(t, c, "g", time.Minute)
	if n.parked.Load() != 1 || n.handled.Load() < 299 {
		t.Errorf("parked %d, handled %d: want k7 parked once and the 299 others handled", n.parked.Load(), n.handled.Load())
	}
}

// TestAFailureThatWaitsForAnotherMessageIsParkedAtOnce: k7 fails with an
// error that waits for another message (which could be behind it in its
// lane); with a retry budget of an hour, only ParkAtOnce lets the one lane
// go on to the 19 others.
func TestAFailureThatWaitsForAnotherMessageIsParkedAtOnce(t *testing.T) {
	_, c := consumerCluster(t, 20)
	errWaits := errors.New("waits for another message")
	n := runFailingKey(t, c, ConsumerConfig{Concurrency: 1, RetryBudget: time.Hour,
		ParkAtOnce: func(err error) bool { return errors.Is(err, errWaits) }}, "k7", errWaits)
	waitLag(t, c, "g", 30*time.Second)
	if n.parked.Load() != 1 || n.handled.Load() != 19 {
		t.Errorf("parked %d, handled %d: want k7 parked once and the 19 others handled", n.parked.Load(), n.handled.Load())
	}
}

// TestAFailingMessageInAFullLaneIsParkedSooner: k7 always fails, and its
// lane's buffer (2) fills behind it, so the fetch loop, and with it the
// other lane, waits on it. With a retry budget of an hour only
// CrowdedBudget lets the 39 others through.
func TestAFailingMessageInAFullLaneIsParkedSooner(t *testing.T) {
	_, c := consumerCluster(t, 40)
	n := runFailingKey(t, c, ConsumerConfig{Concurrency: 2, LaneDepth: 2, RetryBudget: time.Hour, CrowdedBudget: 200 * time.Millisecond}, "k7", errCannot)
	waitLag(t, c, "g", 30*time.Second)
	if n.parked.Load() != 1 || n.handled.Load() != 39 {
		t.Errorf("parked %d, handled %d: want k7 parked once and the 39 others handled", n.parked.Load(), n.handled.Load())
	}
}

// TestAFailingMessageInALaneWithRoomKeepsItsBudget: k1 always fails with
// one message behind it in a lane of 16: nothing waits on it but that one,
// so CrowdedBudget does not apply and k1 is not parked before its budget.
func TestAFailingMessageInALaneWithRoomKeepsItsBudget(t *testing.T) {
	_, c := consumerCluster(t, 3)
	n := runFailingKey(t, c, ConsumerConfig{Concurrency: 1, RetryBudget: time.Hour, CrowdedBudget: 50 * time.Millisecond}, "k1", errCannot)
	waitfor.Until(30*time.Second, func() bool { return n.tries.Load() >= 40 }) // 40 tries: over 10 times CrowdedBudget
	if n.tries.Load() < 40 || n.parked.Load() != 0 {
		t.Errorf("k1 tried %d times, parked %d: want it retried in its lane, not parked", n.tries.Load(), n.parked.Load())
	}
}

// TestHandleTimeoutFreesALane: an attempt stuck on a dead connection is
// cancelled at HandleTimeout and retried, so the lane goes on.
func TestHandleTimeoutFreesALane(t *testing.T) {
	_, c := consumerCluster(t, 20)
	var stuck atomic.Bool
	var handled atomic.Int64
	cons := NewConsumer(ConsumerConfig{Cluster: c, Topic: "cmds", GroupID: "g", Concurrency: 1, SessionTimeout: 3 * time.Second,
		HandleTimeout: 200 * time.Millisecond, RetryMin: 10 * time.Millisecond}, zap.NewNop())
	defer cons.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = cons.Run(ctx, func(ctx context.Context, m kafka.Message) error {
			if !stuck.Swap(true) {
				<-ctx.Done() // the first attempt hangs until its deadline
				return ctx.Err()
			}
			handled.Add(1)
			return nil
		})
	}()
	waitLag(t, c, "g", 30*time.Second)
	if handled.Load() != 20 {
		t.Errorf("handled %d of 20 after a stuck attempt", handled.Load())
	}
}
