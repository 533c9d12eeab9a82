package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestDamagedMemberEnds: a command about a member whose document cannot be
// decided on fails (so it is retried for its budget, in case the damage is
// repaired), then Park ends it with the internal-failure outcome, once,
// instead of parking it for ever; the other members are not held up.
func TestDamagedMemberEnds(t *testing.T) {
	const pin, other = "246810", "135792"
	for _, tc := range []struct {
		rule   string
		damage func(m *pinreset.Member)
		reason string
	}{
		{"a malformed stored hash", func(m *pinreset.Member) { m.PINHash = "$argon2id$v=19$m=oops" }, "malformed PIN hash"},
		{"a member without a hash", func(m *pinreset.Member) { m.PINHash = "" }, "missing pinHash"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			h := newHarness(t, nil)
			reg := prometheus.NewRegistry()
			h.proc.Metrics = metrics.NewWorker(reg)
			h.member("bad", pin, "")
			h.member("good", pin, "")
			m := h.get("bad")
			tc.damage(&m)
			if err := h.store.PutMember(context.Background(), m); err != nil {
				t.Fatal(err)
			}

			c := h.cmd(pinreset.KindChange, "bad", pin, other)
			err := h.handle(c)
			var damaged *pinreset.DamagedMemberError
			if !errors.As(err, &damaged) || damaged.MemberID != "bad" {
				t.Fatalf("Handle = %v, want a DamagedMemberError naming the member", err)
			}
			if code := h.send(h.cmd(pinreset.KindReset, "good", "", other)); code != pinreset.CodeSuccess {
				t.Fatalf("another member: %s", code)
			}
			// The retry budget is spent: the consumer hands it to Park.
			for range 2 { // a second Park (a redelivered copy) answers the same
				if err := h.proc.Park(context.Background(), h.message(c), err); err != nil {
					t.Fatalf("Park: %v", err)
				}
			}
			if codes := h.bus.resultsOf(c.CorrelationID); len(codes) != 2 || codes[0] != pinreset.CodeInternal || codes[1] != pinreset.CodeInternal {
				t.Fatalf("results %v, want 000_500 twice", codes)
			}
			if o, err := h.store.Outcome(context.Background(), testASP, c.CorrelationID); err != nil || o.Code != pinreset.CodeInternal || o.MemberID != "bad" {
				t.Fatalf("outcome %+v, %v", o, err)
			}
			if rs := h.mem.Records(c.CorrelationID); len(rs) != 1 || rs[0].Code != string(pinreset.CodeInternal) || rs[0].MemberID != "bad" {
				t.Fatalf("audit records %+v", rs)
			}
			if len(h.parked) != 0 {
				t.Fatalf("parked %v: a damaged member's command must end, not wait", h.parked)
			}
			if n := testutil.ToFloat64(h.proc.Metrics.Damaged); n != 2 {
				t.Fatalf("pinreset_damaged_member_commands_total = %v, want 2", n)
			}
			q := pinreset.NewStatusQuery(c.CorrelationID, "q1", testASP, time.Now(), time.Minute)
			if code := h.send(q); code != pinreset.CodeInternal {
				t.Fatalf("status: %s, want 000_500", code)
			}
			if got := damaged.Error(); !strings.Contains(got, tc.reason) || strings.Contains(got, pin) {
				t.Fatalf("error %q: want the reason %q and no secret", got, tc.reason)
			}
		})
	}
}
