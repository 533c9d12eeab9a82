package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/cmd/worker/compose"
	"github.com/kmwallet/pinreset/internal/decision/memstore"
	"github.com/kmwallet/pinreset/internal/decision/storetest"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// stallingStore waits for the caller's deadline on every Update while slow
// is set (an attempt that runs out of its time: overload), fails at once
// with a refused connection while down is set (the database away), and
// with an error of the command's own while broken is set.
type stallingStore struct {
	storetest.Store
	slow, down, broken atomic.Bool
}

func (s *stallingStore) Update(ctx context.Context, aspID, loginID, cid string, decide func(pinreset.Member, *pinreset.Outcome) (pinreset.Member, bool, error)) (pinreset.Member, error) {
	switch {
	case s.slow.Load():
		<-ctx.Done()
		return pinreset.Member{}, fmt.Errorf("find member %s: %w", loginID, ctx.Err())
	case s.down.Load():
		return pinreset.Member{}, fmt.Errorf("find member %s: %w", loginID, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	case s.broken.Load():
		return pinreset.Member{}, fmt.Errorf("member %s: document being migrated", loginID)
	}
	return s.Store.Update(ctx, aspID, loginID, cid, decide)
}

// TestASlowAttemptIsNotAnOutage: an attempt that fails because its own
// deadline passed was slow, not cut off from a dependency: with the
// database and the broker answering, its command is parked once its budget
// is spent. A failure of the database itself (refused while the attempt
// had time) is an outage: nothing is parked for parkCalm after it.
func TestASlowAttemptIsNotAnOutage(t *testing.T) {
	for _, tc := range []struct {
		rule       string
		slow, down bool
		wantParked bool
	}{
		{"an attempt past its own deadline is slow, and its command is parked", true, false, true},
		{"a dependency that refuses is an outage, and nothing is parked for a while", false, true, false},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			store := &stallingStore{Store: memstore.New()}
			h := newHarness(t, store)
			h.member("m1", "135790", "")
			h.proc.Outage = compose.DependencyDown
			h.proc.Ready = func(context.Context) error { return nil } // the database and the broker answer now
			store.slow.Store(tc.slow)
			store.down.Store(tc.down)
			m := h.message(h.cmd(pinreset.KindReset, "m1", "", "246813"))

			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			err := h.consume(ctx, m)
			cancel()
			if err == nil {
				t.Fatal("Handle succeeded, want the attempt to fail")
			}
			perr := h.proc.Park(context.Background(), m, err)
			if parked := perr == nil; parked != tc.wantParked {
				t.Errorf("after %v: Park = %v, want parked %v", err, perr, tc.wantParked)
			}
		})
	}
}
