package kafkabus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/kmwallet/pinreset/internal/waitfor"
)

// runMember runs a consumer of "cmds" on c in group "g" with handle until
// the test ends.
func runMember(t *testing.T, c Cluster, handle Handler) {
	t.Helper()
	cons := NewConsumer(ConsumerConfig{Cluster: c, Topic: "cmds", GroupID: "g", Concurrency: 4, SessionTimeout: 3 * time.Second,
		DrainTimeout: time.Second}, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = cons.Run(ctx, handle)
	}()
	t.Cleanup(func() {
		cancel()
		<-ran
		_ = cons.Close()
	})
}

// TestAnOldOwnerCommitsNothingForAPartitionItLost: member A holds every
// partition's first messages in hand when B joins and takes half of the
// partitions; B handles them, and more produced since, and commits up to
// their ends. When A's messages are done, A does not commit their points
// on B's partitions (the broker would take them: A names the current
// generation), which would move B's offsets back to where A stopped.
// Every offset of the group ends committed at its partition's end.
func TestAnOldOwnerCommitsNothingForAPartitionItLost(t *testing.T) {
	_, c := consumerCluster(t, 40)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	var held, returned atomic.Int64
	runMember(t, c, func(ctx context.Context, m kafka.Message) error {
		held.Add(1)
		defer returned.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	})
	if !waitfor.Until(20*time.Second, func() bool { return held.Load() >= 4 }) {
		t.Fatalf("A holds %d messages, want one in each of its 4 lanes", held.Load())
	}

	var mu sync.Mutex
	ofB := map[int]bool{}
	runMember(t, c, func(_ context.Context, m kafka.Message) error {
		mu.Lock()
		ofB[m.Partition] = true
		mu.Unlock()
		return nil
	})
	bHas := func() map[int]bool {
		mu.Lock()
		defer mu.Unlock()
		out := map[int]bool{}
		for p := range ofB {
			out[p] = true
		}
		return out
	}
	if !waitfor.Until(30*time.Second, func() bool { return len(bHas()) > 0 }) {
		t.Fatal("B was given no partition")
	}
	// More messages: B's partitions end past what A holds of them.
	p := NewProducer(c, ProducerConfig{})
	defer p.Close()
	msgs := make([]Message, 40)
	for i := range msgs {
		msgs[i] = Message{Topic: "cmds", Key: []byte(fmt.Sprintf("k%d", 40+i)), Value: []byte("v")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	var lag map[int]int64
	var err error
	if !waitfor.Every(100*time.Millisecond, 30*time.Second, func() bool {
		lag, err = GroupLag(ctx, c, "g", "cmds")
		caughtUp := err == nil
		for part := range bHas() {
			caughtUp = caughtUp && lag[part] == 0
		}
		return caughtUp
	}) {
		t.Fatalf("B's partitions %v not committed to their ends: lag %v (%v)", bHas(), lag, err)
	}

	free() // A's messages are done now, its lost partitions' among them
	if !waitfor.Until(20*time.Second, func() bool { return returned.Load() >= held.Load() }) {
		t.Fatalf("A returned %d of the %d messages it held", returned.Load(), held.Load())
	}
	// Whatever A commits for them goes out within a commitEvery: a window
	// of ten lets a wrong point reach the broker, where it would leave B's
	// partitions behind for good, before the lag is judged. Nothing
	// observable says that A has decided not to commit.
	time.Sleep(10 * commitEvery)
	waitLag(t, c, "g", 20*time.Second)
}
