package decision_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestDecisions walks every outcome of the decision core on the in-memory
// fakes: what each answers, what it changes, what it announces and audits.
func TestDecisions(t *testing.T) {
	t.Parallel()
	const pin, other = "246810", "581379"

	t.Run("a change sets the PIN, announces it, audits it and settles", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		h.member("m1", pin, "")
		c := h.cmd(pinreset.KindChange, "m1", pin, other)
		if code := h.send(c); code != pinreset.CodeSuccess {
			t.Fatalf("code %s", code)
		}
		if !h.pinIs("m1", other) {
			t.Fatal("PIN not changed")
		}
		m := h.get("m1")
		if m.Version != 2 || len(m.Recent) != 1 || m.Recent[0].CorrelationID != c.CorrelationID || m.Audit.Seq != 1 {
			t.Fatalf("settled state %+v", m)
		}
		evs := h.events()
		if len(evs) != 1 || evs[0].typ != string(pinreset.EventPINSet) || evs[0].version != 2 {
			t.Fatalf("events %+v", evs)
		}
		if rs := h.mem.Records(c.CorrelationID); len(rs) != 1 || rs[0].Code != string(pinreset.CodeSuccess) || rs[0].MemberID != "m1" {
			t.Fatalf("audit %+v", rs)
		}
	})

	t.Run("refusals that change nothing are recorded on the member and audited, without events", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		h.member("m1", pin, strings.Repeat("QkM9", 22))
		expired := h.cmd(pinreset.KindReset, "m1", "", other)
		expired.ExpiresAt = time.Now().Add(-time.Second)
		ci := h.cmd(pinreset.KindChange, "m1", pin, other)
		ci.CI = strings.Repeat("QUJD", 22)
		for _, tc := range []struct {
			name string
			cmd  pinreset.Command
			want pinreset.Code
		}{
			{"same PIN", h.cmd(pinreset.KindReset, "m1", "", pin), pinreset.CodeSamePIN},
			{"new PIN equal to the current", h.cmd(pinreset.KindChange, "m1", pin, pin), pinreset.CodeSamePIN},
			{"CI mismatch", ci, pinreset.CodeInvalidUserInfo},
			{"expired", expired, pinreset.CodeExpired},
		} {
			before := h.get("m1")
			if code := h.send(tc.cmd); code != tc.want {
				t.Fatalf("%s: code %s, want %s", tc.name, code, tc.want)
			}
			after := h.get("m1")
			if after.Version != before.Version+1 || after.PINHash != before.PINHash || after.FailedAttempts != 0 {
				t.Fatalf("%s: state %+v after %+v", tc.name, after, before)
			}
			if len(h.mem.Records(tc.cmd.CorrelationID)) != 1 {
				t.Fatalf("%s: not audited once", tc.name)
			}
		}
		if evs := h.events(); len(evs) != 0 {
			t.Fatalf("events %+v", evs)
		}
	})

	t.Run("wrong PINs count and lock; a change while locked is 001_069; a reset unlocks", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		h.member("m1", pin, "")
		wrong := []string{"111213", "131415", "151617", "171819", "192021"}
		for i, w := range wrong {
			if code := h.send(h.cmd(pinreset.KindChange, "m1", w, other)); code != pinreset.CodeInvalidUserInfo {
				t.Fatalf("wrong PIN %d: %s", i+1, code)
			}
		}
		m := h.get("m1")
		if !m.LockedUntil.After(time.Now()) {
			t.Fatalf("not locked after %d wrong PINs: %+v", len(wrong), m)
		}
		if evs := h.events(); len(evs) != 1 || evs[0].typ != string(pinreset.EventLocked) {
			t.Fatalf("events %+v, want one locked", evs)
		}
		hashes := h.hasher.N.Load()
		if code := h.send(h.cmd(pinreset.KindChange, "m1", pin, other)); code != pinreset.CodeAttemptsExceeded {
			t.Fatalf("change while locked: %s", code)
		}
		if h.hasher.N.Load() != hashes {
			t.Fatal("a change while locked ran argon2")
		}
		if code := h.send(h.cmd(pinreset.KindReset, "m1", "", other)); code != pinreset.CodeSuccess {
			t.Fatalf("reset while locked: %s", code)
		}
		if m := h.get("m1"); !m.LockedUntil.IsZero() || !h.pinIs("m1", other) {
			t.Fatalf("after the reset: %+v", m)
		}
	})

	t.Run("a wrong PIN sent again is answered without argon2 and not counted", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		h.member("m1", pin, "")
		h.send(h.cmd(pinreset.KindChange, "m1", "111213", other))
		hashes := h.hasher.N.Load()
		if code := h.send(h.cmd(pinreset.KindChange, "m1", "111213", other)); code != pinreset.CodeInvalidUserInfo {
			t.Fatalf("code %s", code)
		}
		if h.hasher.N.Load() != hashes || h.get("m1").FailedAttempts != 1 {
			t.Fatalf("the replayed wrong PIN ran argon2 (%d) or was counted (%d)", h.hasher.N.Load()-hashes, h.get("m1").FailedAttempts)
		}
	})

	t.Run("unknown member: recorded and audited without a member, keyed login only", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		c := h.cmd(pinreset.KindReset, "nobody", "", other)
		if code := h.send(c); code != pinreset.CodeUserNotFound {
			t.Fatalf("code %s", code)
		}
		rs := h.mem.Records(c.CorrelationID)
		if len(rs) != 1 || rs[0].MemberID != "" || rs[0].LoginIDHash == "" || strings.Contains(rs[0].LoginIDHash, "nobody") {
			t.Fatalf("audit %+v", rs)
		}
		if code := h.send(c); code != pinreset.CodeUserNotFound || len(h.mem.Records(c.CorrelationID)) != 1 {
			t.Fatalf("redelivered: %s, %d records", code, len(h.mem.Records(c.CorrelationID)))
		}
		late := h.cmd(pinreset.KindReset, "nobody", "", other)
		late.ExpiresAt = time.Now().Add(-time.Second)
		if code := h.send(late); code != pinreset.CodeExpired {
			t.Fatalf("expired, unknown member: %s", code)
		}
	})

	t.Run("KMV1 content that set a PIN is refused under another id in the window; KMV2 is not", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		h.member("m1", pin, "")
		set := h.cmd(pinreset.KindReset, "m1", "", other)
		if code := h.send(set); code != pinreset.CodeSuccess {
			t.Fatal(code)
		}
		if code := h.send(h.cmd(pinreset.KindChange, "m1", other, "975318")); code != pinreset.CodeSuccess {
			t.Fatal(code)
		}
		replay := set
		replay.CorrelationID, replay.RequestID = "261201120000-replay1", "replay1"
		if code := h.send(replay); code != pinreset.CodeDuplicateRequest || !h.pinIs("m1", "975318") {
			t.Fatalf("KMV1 replay: %s", code)
		}
		h.clock.Store(int64(25 * time.Hour))
		later := replay
		later.CorrelationID, later.RequestID = "261201120000-replay2", "replay2"
		later.AcceptedAt, later.ExpiresAt = time.Now().Add(25*time.Hour), time.Now().Add(25*time.Hour+time.Minute)
		if code := h.send(later); code != pinreset.CodeSuccess {
			t.Fatalf("the same content after the window: %s", code)
		}
		h.clock.Store(0)
		h.member("m2", pin, "")
		v2 := h.cmd(pinreset.KindReset, "m2", "", other)
		v2.Auth = pinreset.SchemeKMV2
		h.send(v2)
		h.send(func() pinreset.Command {
			c := h.cmd(pinreset.KindChange, "m2", other, "975318")
			c.Auth = pinreset.SchemeKMV2
			return c
		}())
		again := v2
		again.CorrelationID, again.RequestID = "261201120000-again01", "again1"
		if code := h.send(again); code != pinreset.CodeSuccess || !h.pinIs("m2", other) {
			t.Fatalf("KMV2 same content, new id: %s", code)
		}
	})

	t.Run("a redelivery is answered from the member's history; a reused id is 409", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		h.member("m1", pin, "")
		c := h.cmd(pinreset.KindChange, "m1", pin, other)
		h.send(c)
		hashes := h.hasher.N.Load()
		if code := h.send(c); code != pinreset.CodeSuccess || h.hasher.N.Load() != hashes {
			t.Fatalf("redelivery: %s, %d hashes", code, h.hasher.N.Load()-hashes)
		}
		if len(h.events()) != 1 || len(h.mem.Records(c.CorrelationID)) != 1 || h.get("m1").Version != 2 {
			t.Fatal("the redelivery published, audited or changed something")
		}
		reuse := c
		reuse.NewPIN = "975318"
		if code := h.send(reuse); code != pinreset.CodeCorrelationReused || !h.pinIs("m1", other) {
			t.Fatalf("reused id: %s", code)
		}
		h.member("m2", pin, "")
		elsewhere := h.cmd(pinreset.KindReset, "m2", "", other)
		elsewhere.CorrelationID = c.CorrelationID
		if code := h.send(elsewhere); code != pinreset.CodeCorrelationReused || !h.pinIs("m2", pin) {
			t.Fatalf("reused id on another member: %s", code)
		}
	})

	t.Run("status: the recorded outcome, parked, or unknown", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		h.member("m1", pin, "")
		c := h.cmd(pinreset.KindReset, "m1", "", other)
		h.send(c)
		q := pinreset.NewStatusQuery(c.CorrelationID, "q1", testASP, time.Now(), time.Minute)
		if code := h.send(q); code != pinreset.CodeSuccess {
			t.Fatalf("status of a decided command: %s", code)
		}
		h.parked[testASP+":261201120000-parked1"] = true
		if code := h.send(pinreset.NewStatusQuery("261201120000-parked1", "q2", testASP, time.Now(), time.Minute)); code != pinreset.CodeAccepted {
			t.Fatalf("status of a parked command: %s", code)
		}
		if code := h.send(pinreset.NewStatusQuery("261201120000-unknown", "q3", testASP, time.Now(), time.Minute)); code != pinreset.CodeNotFound {
			t.Fatalf("status of an unknown command: %s", code)
		}
	})

	t.Run("commands for one member at once are decided one after the other", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		h.member("m1", pin, "")
		var wg sync.WaitGroup
		msgs := make([]pinreset.Command, 8)
		for i := range msgs {
			msgs[i] = h.cmd(pinreset.KindReset, "m1", "", []string{"135792", "246813"}[i%2])
		}
		errs := make(chan error, len(msgs))
		for _, m := range msgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- h.handle(m)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		m := h.get("m1")
		if m.Version != 1+int64(len(msgs)) || len(m.Recent) != len(msgs) {
			t.Fatalf("version %d with %d in history, want %d decisions", m.Version, len(m.Recent), len(msgs))
		}
		if err := inOrder(h.events()); err != nil {
			t.Fatal(err)
		}
	})
}
