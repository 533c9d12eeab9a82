package kafkabus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// A lone publish is sent at once, not after BatchTimeout: with an hour's
// BatchTimeout it returns within the test's deadline. Publishes that find
// others in flight are batched: fewer produce requests than messages.
func TestProducerBatchesOnlyWhenBusy(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	c := Cluster{Brokers: kc.ListenAddrs()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	lone := NewProducer(c, ProducerConfig{BatchTimeout: time.Hour})
	for i := range 3 {
		if err := lone.Publish(ctx, Message{Topic: "t", Key: []byte(fmt.Sprint("lone", i)), Value: []byte("v")}); err != nil {
			t.Fatalf("lone publish %d: %v (waited for a batch to fill?)", i, err)
		}
	}
	if s := lone.single.Stats(); s.Messages != 3 || s.Writes != 3 {
		t.Errorf("lone publishes: %d messages in %d writes by the single-message writer, want 3 in 3", s.Messages, s.Writes)
	}
	// Close flushes the batched writer: nothing may wait there for the hour.
	closed := make(chan error, 1)
	go func() { closed <- lone.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}

	busy := NewProducer(c, ProducerConfig{BatchTimeout: 20 * time.Millisecond})
	defer busy.Close()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- busy.Publish(ctx, Message{Topic: "t", Key: []byte(fmt.Sprint("busy", i)), Value: []byte("v")})
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	single, batched := busy.single.Stats(), busy.batched.Stats()
	if got := single.Messages + batched.Messages; got != n {
		t.Fatalf("%d messages written, want %d", got, n)
	}
	if writes := single.Writes + batched.Writes; writes > n/4 {
		t.Errorf("%d concurrent publishes took %d produce requests (%d single, %d batched), want them batched", n, writes, single.Writes, batched.Writes)
	}
}
