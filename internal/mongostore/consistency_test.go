package mongostore_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/kmwallet/pinreset/internal/mongostore"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// commandLog records the commands a client sends and those that fail.
type commandLog struct {
	mu      sync.Mutex
	started []bson.Raw
	failed  []string
}

func (l *commandLog) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.started = append(l.started, append(bson.Raw(nil), e.Command...))
		},
		Failed: func(_ context.Context, e *event.CommandFailedEvent) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.failed = append(l.failed, e.CommandName+": "+e.Failure.Error())
		},
	}
}

// TestConsistencyIsForced: against FerretDB, with a URI that asks for
// secondary reads, local read concern and w:1 without journal, what goes on
// the wire is majority read concern on every read and w:majority, j:true on
// every write, no read preference but the primary, and a time limit; and
// FerretDB accepts all of it (no command fails).
func TestConsistencyIsForced(t *testing.T) {
	ctx := context.Background()
	in, _ := startStore(t, "consistency")
	var log commandLog
	store, err := mongostore.Open(mongostore.Config{
		URI:      strings.TrimSuffix(in.MongoURI(), "/") + "/?readPreference=secondary&readConcernLevel=local&w=1&journal=false",
		Database: "consistency", Monitor: log.monitor(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(ctx) })
	m := pinreset.Member{ID: "m-1", ASPID: "KMTESTASP000001", LoginID: "one@example.com", PINHash: "h"}
	if err := store.PutMember(ctx, m); err != nil {
		t.Fatalf("PutMember: %v", err)
	}
	m.PINHash = "h2"
	if err := store.PutMember(ctx, m); err != nil { // reads, then commits version 2
		t.Fatalf("PutMember again: %v", err)
	}
	if _, err := store.FindMember(ctx, m.ASPID, m.LoginID); err != nil {
		t.Fatalf("FindMember: %v", err)
	}

	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.failed) > 0 {
		t.Errorf("FerretDB refused commands: %v", log.failed)
	}
	reads, writes := 0, 0
	for _, c := range log.started {
		name := c.Index(0).Key()
		switch name {
		case "find":
			reads++
			if lvl, _ := c.Lookup("readConcern", "level").StringValueOK(); lvl != "majority" {
				t.Errorf("find sent with read concern %v, want majority: %v", c.Lookup("readConcern"), c)
			}
		case "insert", "update", "delete":
			writes++
			w, _ := c.Lookup("writeConcern", "w").StringValueOK()
			j, _ := c.Lookup("writeConcern", "j").BooleanOK()
			if w != "majority" || !j {
				t.Errorf("%s sent with write concern %v, want w:majority, j:true", name, c.Lookup("writeConcern"))
			}
		default:
			continue
		}
		if rp, err := c.LookupErr("$readPreference"); err == nil {
			if mode, _ := rp.Document().Lookup("mode").StringValueOK(); mode != "primary" && mode != "primaryPreferred" {
				// primaryPreferred is what the driver sends for "primary" to a
				// single server (it lets a direct connection work); never secondary.
				t.Errorf("%s sent with read preference %v", name, rp)
			}
		}
		if _, err := c.LookupErr("maxTimeMS"); err != nil && name == "find" {
			t.Errorf("find sent without maxTimeMS: the operation timeout is not in force: %v", c)
		}
	}
	if reads == 0 || writes == 0 {
		t.Fatalf("saw %d reads and %d writes: the monitor saw nothing to check", reads, writes)
	}
}

// TestHalfOpenConnectionTimesOut: when the database stops answering on an
// open connection (a half-open connection: no reset, no data), an operation
// without a deadline of its own fails after the operation timeout instead of
// hanging.
func TestHalfOpenConnectionTimesOut(t *testing.T) {
	ctx := context.Background()
	in, _ := startStore(t, "halfopen")
	target := strings.TrimSuffix(strings.TrimPrefix(in.MongoURI(), "mongodb://"), "/")
	p := startFreezableProxy(t, target)
	store, err := mongostore.Open(mongostore.Config{URI: "mongodb://" + p.addr + "/", Database: "halfopen",
		Timeout: time.Second, OperationTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(ctx) })
	// Before the freeze the read answers; on a busy machine its first
	// tries (connecting, a cold plan) may take longer than the timeout.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := store.FindMemberByID(ctx, "nobody")
		if errors.Is(err, mongostore.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("before the freeze: %v, want ErrNotFound", err)
		}
	}
	p.freeze()
	start := time.Now()
	_, err = store.FindMemberByID(ctx, "nobody")
	took := time.Since(start)
	if err == nil || errors.Is(err, mongostore.ErrNotFound) {
		t.Fatalf("on a frozen connection: %v, want a timeout error", err)
	}
	if took > 5*time.Second {
		t.Errorf("the read took %v on a frozen connection, want about the 500ms operation timeout", took)
	}
	t.Logf("frozen read failed after %v: %v", took.Round(time.Millisecond), err)
}

// freezableProxy forwards TCP connections to a server until freeze, after
// which it keeps every connection open and forwards nothing: what a client
// sees of a half-open connection.
type freezableProxy struct {
	addr   string
	frozen chan struct{}
	once   sync.Once
}

func (p *freezableProxy) freeze() { p.once.Do(func() { close(p.frozen) }) }

func startFreezableProxy(t *testing.T, target string) *freezableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezableProxy{addr: ln.Addr().String(), frozen: make(chan struct{})}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case <-p.frozen:
					_, _ = io.Copy(io.Discard, src) // hold the connection, answer nothing
					return
				default:
				}
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			wg.Add(2)
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	return p
}

// TestMaintenanceOutlastsOperationTimeout: the retention sweeps and bulk
// inserts, which FerretDB serves by reading whole collections, get
// MaintenanceTimeout instead of the command path's operation timeout: with
// an operation timeout too short for anything, a lookup fails and they
// still run.
func TestMaintenanceOutlastsOperationTimeout(t *testing.T) {
	ctx := context.Background()
	in, _ := startStore(t, "maintenance")
	store, err := mongostore.Open(mongostore.Config{URI: in.MongoURI(), Database: "maintenance", OperationTimeout: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(ctx) })
	if _, err := store.FindMemberByID(ctx, "nobody"); err == nil || errors.Is(err, mongostore.ErrNotFound) {
		t.Fatalf("a lookup under a 1µs operation timeout: %v, want a timeout", err)
	}
	if _, err := store.InsertMembers(ctx, []pinreset.Member{{ID: "m-1", ASPID: "KMTESTASP000001", LoginID: "one@example.com", PINHash: "h"}}); err != nil {
		t.Errorf("InsertMembers: %v", err)
	}
	for _, w := range []mongostore.Sweepable{store.OutcomeSweep(), store.ParkedSweep()} {
		if _, err := w.DeleteBetween(ctx, time.Now().Add(-time.Hour), time.Now()); err != nil {
			t.Errorf("DeleteBetween: %v", err)
		}
		if _, err := w.AnyBefore(ctx, time.Now()); err != nil {
			t.Errorf("AnyBefore: %v", err)
		}
	}
}
