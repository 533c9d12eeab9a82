// Package freeaddr gives tests a free loopback TCP address for a server
// they start as a process, which binds it moments later. For tests only:
// it reports failure through testing.TB.
package freeaddr

import (
	"net"
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
