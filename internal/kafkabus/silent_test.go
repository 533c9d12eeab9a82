package kafkabus

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// silentBroker listens on loopback, accepts every connection and reads what
// it is sent, and never answers: a stalled broker, or the far end of a
// half-open connection. Its connections are closed with the test.
func silentBroker(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

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
