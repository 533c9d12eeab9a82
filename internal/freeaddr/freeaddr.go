// Package freeaddr gives tests loopback TCP addresses: a free one for a
// server they start as a process, which binds it moments later, and a
// silent one that accepts connections and never answers. For tests only:
// it reports failure through testing.TB.
package freeaddr

import (
	"io"
	"net"
	"sync"
	"testing"
)

// For returns a loopback address that no one listened on a moment ago.
func For(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Silent returns a loopback address that accepts every connection, reads
// what it is sent and never answers: a stalled server, or the far end of a
// half-open connection. It and its connections close when the test ends.
func Silent(t testing.TB) string {
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
