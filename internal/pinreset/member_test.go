package pinreset_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// The fixed clock and values of the member rules tests.
var (
	mNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// mCI is the member's stored CI; mOtherCI is another well-formed CI.
	mCI      = strings.Repeat("QkM9", 22)
	mOtherCI = strings.Repeat("ZzY8", 22)
)

const (
	mCurPIN   = "135790" // the member's stored PIN
	mNewPIN   = "246813"
	mWrongPIN = "975310"
)

// testHasher is a deterministic PINHasher: the "hash" of a PIN is "h:"+PIN.
type testHasher struct{}

func (testHasher) Hash(pin string) (string, error) { return "h:" + pin, nil }

func (testHasher) Verify(pin, encoded string) (bool, bool, error) {
	return encoded == "h:"+pin, false, nil
}

// untouchableHasher fails the test if the rules hash or verify anything.
type untouchableHasher struct{ t *testing.T }

func (h untouchableHasher) Hash(string) (string, error) {
	h.t.Helper()
	h.t.Error("Hash called; the rules must decide without hashing")
	return "", errors.New("unexpected Hash")
}

func (h untouchableHasher) Verify(string, string) (bool, bool, error) {
	h.t.Helper()
	h.t.Error("Verify called; the rules must decide without verifying")
	return false, false, errors.New("unexpected Verify")
}

// failingHasher fails Hash and/or Verify with errHasher.
type failingHasher struct{ hashFails, verifyFails bool }

var errHasher = errors.New("hasher out of order")

func (h failingHasher) Hash(pin string) (string, error) {
	if h.hashFails {
		return "", errHasher
	}
	return testHasher{}.Hash(pin)
}

func (h failingHasher) Verify(pin, encoded string) (bool, bool, error) {
	if h.verifyFails {
		return false, false, errHasher
	}
	return testHasher{}.Verify(pin, encoded)
}

// member returns a member whose PIN is mCurPIN, with some history.
func member() pinreset.Member {
	return pinreset.Member{
		ID:        "mem-0001",
		ASPID:     "ASP000000000001",
		LoginID:   "member.one@example.com",
		CI:        mCI,
		PINHash:   "h:" + mCurPIN,
		Version:   7,
		Recent:    []pinreset.Applied{{CorrelationID: "260301115000-0000001", Code: pinreset.CodeSuccess, At: mNow.Add(-10 * time.Minute)}},
		UpdatedAt: mNow.Add(-10 * time.Minute),
	}
}

func changeCmd(id, cur, next string) pinreset.Command {
	return pinreset.Command{
		CorrelationID: id, ASPID: "ASP000000000001", Kind: pinreset.KindChange,
		LoginID: "member.one@example.com", CurrentPIN: cur, NewPIN: next,
		AcceptedAt: mNow.Add(-time.Second), ExpiresAt: mNow.Add(2 * time.Minute),
	}
}

func resetCmd(id, next string) pinreset.Command {
	c := changeCmd(id, "", next)
	c.Kind = pinreset.KindReset
	return c
}

// sentAt moves c's acceptance and expiry to just before at.
func sentAt(c pinreset.Command, at time.Time) pinreset.Command {
	c.AcceptedAt, c.ExpiresAt = at.Add(-time.Second), at.Add(2*time.Minute)
	return c
}

// cloneMember deep-copies m, including Recent's whole backing array (up to
// its capacity) so that writes past len(Recent) are seen too.
func cloneMember(m pinreset.Member) (pinreset.Member, []pinreset.Applied) {
	c := m
	c.Recent = slices.Clone(m.Recent)
	c.WrongAttempts = slices.Clone(m.WrongAttempts)
	return c, slices.Clone(m.Recent[:cap(m.Recent)])
}

// cmdFields shows every field of c, which its redacting String hides.
func cmdFields(c pinreset.Command) string {
	return fmt.Sprintf("{%q %q %q %q %q %q %q %q %v %v}", c.CorrelationID, c.RequestID, c.ASPID, c.Kind, c.LoginID, c.CI, c.CurrentPIN, c.NewPIN, c.AcceptedAt, c.ExpiresAt)
}

func decide(t *testing.T, m *pinreset.Member, cmd pinreset.Command, h pinreset.PINHasher, rules pinreset.Rules, now time.Time) pinreset.Decision {
	t.Helper()
	d, err := m.Decide(cmd, h, rules, now)
	if err != nil {
		t.Fatalf("Decide(%v): %v", cmd, err)
	}
	return d
}

func TestDecideAnswersARecordedCommandFromHistory(t *testing.T) {
	t.Parallel()
	const id = "260301115500-00000aa"
	for _, tc := range []struct {
		rule     string
		recorded pinreset.Code
		edit     func(*pinreset.Member, *pinreset.Command)
	}{
		{"a recorded success is answered again without applying anything", pinreset.CodeSuccess, nil},
		{"a recorded failure is answered with its own code", pinreset.CodeInvalidUserInfo, nil},
		{"a recorded command is answered even after it expired", pinreset.CodeSuccess,
			func(_ *pinreset.Member, c *pinreset.Command) { c.ExpiresAt = mNow.Add(-time.Hour) }},
		{"a recorded command is answered even while the member is locked", pinreset.CodeInvalidUserInfo,
			func(m *pinreset.Member, _ *pinreset.Command) { m.LockedUntil = mNow.Add(time.Hour) }},
		{"a recorded command is answered even if its CI no longer matches", pinreset.CodeSuccess,
			func(_ *pinreset.Member, c *pinreset.Command) { c.CI = mOtherCI }},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			m := member()
			m.Recent = append(m.Recent,
				pinreset.Applied{CorrelationID: id, Code: tc.recorded, At: mNow.Add(-time.Minute)},
				pinreset.Applied{CorrelationID: "260301115800-00000bb", Code: pinreset.CodeSamePIN, At: mNow.Add(-30 * time.Second)})
			cmd := changeCmd(id, mCurPIN, mNewPIN)
			if tc.edit != nil {
				tc.edit(&m, &cmd)
			}
			before, _ := cloneMember(m)
			d := decide(t, &m, cmd, untouchableHasher{t}, pinreset.DefaultRules(), mNow)
			if d.Code != tc.recorded || !d.Replayed || d.Changed {
				t.Errorf("Decide = code %s replayed %v changed %v; want %s, true, false", d.Code, d.Replayed, d.Changed, tc.recorded)
			}
			if !reflect.DeepEqual(d.Member, before) {
				t.Errorf("replayed decision's member = %+v, want the member unchanged %+v", d.Member, before)
			}
		})
	}
}

// TestDecideRefusesWithoutChange covers the outcomes that store nothing: the
// decision's member is the member as it was (same version, same history).
func TestDecideRefusesWithoutChange(t *testing.T) {
	t.Parallel()
	const id = "260301115900-0000c01"
	for _, tc := range []struct {
		rule   string
		member func(*pinreset.Member)
		cmd    pinreset.Command
		hasher func(*testing.T) pinreset.PINHasher
		want   pinreset.Code
	}{
		{rule: "an expired change is not applied and answers 000_408",
			cmd: func() pinreset.Command {
				c := changeCmd(id, mCurPIN, mNewPIN)
				c.ExpiresAt = mNow.Add(-time.Nanosecond)
				return c
			}(),
			want: pinreset.CodeExpired},
		{rule: "an expired reset is not applied and answers 000_408",
			cmd:  func() pinreset.Command { c := resetCmd(id, mNewPIN); c.ExpiresAt = mNow.Add(-time.Minute); return c }(),
			want: pinreset.CodeExpired},
		{rule: "a ci that is not the member's answers 001_035 even with the right PIN",
			cmd:  func() pinreset.Command { c := changeCmd(id, mCurPIN, mNewPIN); c.CI = mOtherCI; return c }(),
			want: pinreset.CodeInvalidUserInfo},
		{rule: "a ci that is not the member's answers 001_035 on a reset",
			cmd:  func() pinreset.Command { c := resetCmd(id, mNewPIN); c.CI = mOtherCI; return c }(),
			want: pinreset.CodeInvalidUserInfo},
		{rule: "a ci that differs in one character is not the member's",
			cmd: func() pinreset.Command {
				c := resetCmd(id, mNewPIN)
				c.CI = mCI[:87] + "x"
				return c
			}(),
			want: pinreset.CodeInvalidUserInfo},
		{rule: "a ci mismatch is not counted as a wrong PIN attempt",
			member: func(m *pinreset.Member) { m.FailedAttempts = 4 },
			cmd:    func() pinreset.Command { c := changeCmd(id, mWrongPIN, mNewPIN); c.CI = mOtherCI; return c }(),
			want:   pinreset.CodeInvalidUserInfo},
		{rule: "a locked PIN answers 001_069 to a change without verifying it",
			member: func(m *pinreset.Member) { m.LockedUntil = mNow.Add(time.Nanosecond) },
			cmd:    changeCmd(id, mCurPIN, mNewPIN),
			hasher: func(t *testing.T) pinreset.PINHasher { return untouchableHasher{t} },
			want:   pinreset.CodeAttemptsExceeded},
		{rule: "a reset of a locked PIN to the PIN it has answers 001_043 and the lock stays",
			member: func(m *pinreset.Member) { m.LockedUntil = mNow.Add(10 * time.Minute) },
			cmd:    resetCmd(id, mCurPIN),
			want:   pinreset.CodeSamePIN},
		{rule: "a reset of a locked PIN with a ci that is not the member's answers 001_035 and the lock stays",
			member: func(m *pinreset.Member) { m.LockedUntil = mNow.Add(10 * time.Minute) },
			cmd:    func() pinreset.Command { c := resetCmd(id, mNewPIN); c.CI = mOtherCI; return c }(),
			hasher: func(t *testing.T) pinreset.PINHasher { return untouchableHasher{t} },
			want:   pinreset.CodeInvalidUserInfo},
		{rule: "a remembered wrong attempt answers 001_035 without verifying it",
			member: func(m *pinreset.Member) {
				m.WrongAttempts = []pinreset.Attempt{{Key: "k1:" + mWrongPIN, At: mNow.Add(-time.Hour)}}
			},
			cmd:    withKeys(changeCmd(id, mWrongPIN, mNewPIN)),
			hasher: func(t *testing.T) pinreset.PINHasher { return untouchableHasher{t} },
			want:   pinreset.CodeInvalidUserInfo},
		{rule: "a change to the same PIN answers 001_043",
			cmd:  changeCmd(id, mCurPIN, mCurPIN),
			want: pinreset.CodeSamePIN},
		{rule: "a reset to the stored PIN answers 001_043",
			cmd:  resetCmd(id, mCurPIN),
			want: pinreset.CodeSamePIN},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			m := member()
			if tc.member != nil {
				tc.member(&m)
			}
			var h pinreset.PINHasher = testHasher{}
			if tc.hasher != nil {
				h = tc.hasher(t)
			}
			before, _ := cloneMember(m)
			d := decide(t, &m, tc.cmd, h, pinreset.DefaultRules(), mNow)
			if d.Code != tc.want || d.Changed || d.Replayed {
				t.Errorf("Decide = code %s changed %v replayed %v; want %s, false, false", d.Code, d.Changed, d.Replayed, tc.want)
			}
			if !reflect.DeepEqual(d.Member, before) {
				t.Errorf("decision's member = %+v, want the member unchanged %+v", d.Member, before)
			}
		})
	}
}

// TestDecideApplies covers the successful sets: the whole next state is
// compared, so a stray change of any other field fails too.
func TestDecideApplies(t *testing.T) {
	t.Parallel()
	const id = "260301115900-0000d01"
	for _, tc := range []struct {
		rule   string
		member func(*pinreset.Member)
		cmd    pinreset.Command
	}{
		{rule: "a change with the right current PIN sets the new PIN",
			cmd: changeCmd(id, mCurPIN, mNewPIN)},
		{rule: "a reset sets the new PIN without the old one",
			cmd: resetCmd(id, mNewPIN)},
		{rule: "an empty ci is not checked",
			cmd: changeCmd(id, mCurPIN, mNewPIN)},
		{rule: "a ci equal to the member's passes",
			cmd: func() pinreset.Command { c := changeCmd(id, mCurPIN, mNewPIN); c.CI = mCI; return c }()},
		{rule: "a command at its exact expiry time is still applied",
			cmd: func() pinreset.Command { c := changeCmd(id, mCurPIN, mNewPIN); c.ExpiresAt = mNow; return c }()},
		{rule: "a lock that has ended no longer applies",
			member: func(m *pinreset.Member) { m.LockedUntil = mNow.Add(-time.Nanosecond) },
			cmd:    changeCmd(id, mCurPIN, mNewPIN)},
		{rule: "a lock ending exactly now has ended",
			member: func(m *pinreset.Member) { m.LockedUntil = mNow },
			cmd:    resetCmd(id, mNewPIN)},
		{rule: "a success resets the failed attempt count",
			member: func(m *pinreset.Member) { m.FailedAttempts = 4 },
			cmd:    changeCmd(id, mCurPIN, mNewPIN)},
		{rule: "a reset succeeds whatever currentPassword it carries",
			cmd: func() pinreset.Command { c := resetCmd(id, mNewPIN); c.CurrentPIN = mWrongPIN; return c }()},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			m := member()
			if tc.member != nil {
				tc.member(&m)
			}
			want, _ := cloneMember(m)
			want.PINHash = "h:" + mNewPIN
			want.FailedAttempts = 0
			want.LockedUntil = time.Time{}
			want.Version++
			want.UpdatedAt = mNow
			want.Recent = append(want.Recent, pinreset.Applied{CorrelationID: id, Code: pinreset.CodeSuccess, At: mNow})

			d := decide(t, &m, tc.cmd, testHasher{}, pinreset.DefaultRules(), mNow)
			if d.Code != pinreset.CodeSuccess || !d.Changed || d.Replayed {
				t.Fatalf("Decide = code %s changed %v replayed %v; want 000_000, true, false", d.Code, d.Changed, d.Replayed)
			}
			if !reflect.DeepEqual(d.Member, want) {
				t.Errorf("next member =\n%+v\nwant\n%+v", d.Member, want)
			}
		})
	}
}

func TestDecideStoresTimesInUTC(t *testing.T) {
	t.Parallel()
	kst := time.FixedZone("KST", 9*60*60)
	now := mNow.In(kst)
	m := member()
	cmd := changeCmd("260301120000-0000e01", mWrongPIN, mNewPIN)
	d := decide(t, &m, cmd, testHasher{}, pinreset.Rules{LockAfter: 1, LockFor: time.Minute, RecentLimit: 8}, now)
	last := d.Member.Recent[len(d.Member.Recent)-1]
	for name, got := range map[string]time.Time{"UpdatedAt": d.Member.UpdatedAt, "LockedUntil": d.Member.LockedUntil, "Recent.At": last.At} {
		if got.Location() != time.UTC {
			t.Errorf("%s is in %v, want UTC", name, got.Location())
		}
	}
	if !d.Member.LockedUntil.Equal(mNow.Add(time.Minute)) {
		t.Errorf("LockedUntil = %v, want %v", d.Member.LockedUntil, mNow.Add(time.Minute))
	}
}

func TestDecideWrongCurrentPIN(t *testing.T) {
	t.Parallel()
	t.Run("a wrong current PIN answers 001_035 and counts the attempt", func(t *testing.T) {
		t.Parallel()
		const id = "260301120000-0000f01"
		m := member()
		m.FailedAttempts = 2
		want, _ := cloneMember(m)
		want.FailedAttempts = 3
		want.Version++
		want.UpdatedAt = mNow
		want.Recent = append(want.Recent, pinreset.Applied{CorrelationID: id, Code: pinreset.CodeInvalidUserInfo, At: mNow})

		d := decide(t, &m, changeCmd(id, mWrongPIN, mNewPIN), testHasher{}, pinreset.DefaultRules(), mNow)
		if d.Code != pinreset.CodeInvalidUserInfo || !d.Changed || d.Replayed {
			t.Fatalf("Decide = code %s changed %v replayed %v; want 001_035, true, false", d.Code, d.Changed, d.Replayed)
		}
		if !reflect.DeepEqual(d.Member, want) {
			t.Errorf("next member =\n%+v\nwant\n%+v", d.Member, want)
		}
	})
	t.Run("a wrong current PIN is counted even when it equals the new PIN", func(t *testing.T) {
		t.Parallel()
		m := member()
		d := decide(t, &m, changeCmd("260301120000-0000f02", mWrongPIN, mWrongPIN), testHasher{}, pinreset.DefaultRules(), mNow)
		if d.Code != pinreset.CodeInvalidUserInfo || d.Member.FailedAttempts != 1 {
			t.Errorf("Decide = code %s, %d failed attempts; want 001_035, 1", d.Code, d.Member.FailedAttempts)
		}
	})
	t.Run("a redelivered wrong attempt is not counted twice", func(t *testing.T) {
		t.Parallel()
		m := member()
		cmd := changeCmd("260301120000-0000f03", mWrongPIN, mNewPIN)
		first := decide(t, &m, cmd, testHasher{}, pinreset.DefaultRules(), mNow)
		again := decide(t, &first.Member, cmd, testHasher{}, pinreset.DefaultRules(), mNow.Add(time.Second))
		if !again.Replayed || again.Changed || again.Code != pinreset.CodeInvalidUserInfo || again.Member.FailedAttempts != 1 {
			t.Errorf("redelivery = code %s replayed %v changed %v attempts %d; want 001_035, true, false, 1",
				again.Code, again.Replayed, again.Changed, again.Member.FailedAttempts)
		}
	})
}

// TestDecideLocksAfterLockAfterWrongAttempts plays LockAfter wrong attempts,
// then the right PIN while locked, then the right PIN after the lock.
func TestDecideLocksAfterLockAfterWrongAttempts(t *testing.T) {
	t.Parallel()
	for _, lockAfter := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("LockAfter=%d: wrong attempt number %d locks the PIN", lockAfter, lockAfter), func(t *testing.T) {
			t.Parallel()
			rules := pinreset.Rules{LockAfter: lockAfter, LockFor: 10 * time.Minute, RecentLimit: 32}
			m := member()
			now := mNow
			for i := 1; i <= lockAfter; i++ {
				now = now.Add(time.Second)
				d := decide(t, &m, changeCmd(fmt.Sprintf("260301120000-%07x", i), mWrongPIN, mNewPIN), testHasher{}, rules, now)
				if d.Code != pinreset.CodeInvalidUserInfo || !d.Changed {
					t.Fatalf("attempt %d: code %s changed %v; want 001_035 (even the locking attempt), true", i, d.Code, d.Changed)
				}
				if d.Member.Version != m.Version+1 {
					t.Fatalf("attempt %d: version %d, want %d", i, d.Member.Version, m.Version+1)
				}
				m = d.Member
				if i < lockAfter {
					if m.FailedAttempts != i || !m.LockedUntil.IsZero() {
						t.Fatalf("attempt %d: %d failed attempts, locked until %v; want %d, not locked", i, m.FailedAttempts, m.LockedUntil, i)
					}
				}
			}
			if want := now.Add(rules.LockFor); !m.LockedUntil.Equal(want) {
				t.Fatalf("after %d wrong attempts LockedUntil = %v, want now+LockFor = %v", lockAfter, m.LockedUntil, want)
			}
			if m.FailedAttempts != 0 {
				t.Errorf("the lock left FailedAttempts = %d, want it reset to 0", m.FailedAttempts)
			}

			t.Run("the next change, even with the right PIN, answers 001_069", func(t *testing.T) {
				locked := m
				d := decide(t, &locked, changeCmd("260301120000-00000ff", mCurPIN, mNewPIN), untouchableHasher{t}, rules, now.Add(time.Minute))
				if d.Code != pinreset.CodeAttemptsExceeded || d.Changed {
					t.Errorf("Decide = code %s changed %v; want 001_069, false", d.Code, d.Changed)
				}
			})
			t.Run("after the lock the right PIN is accepted", func(t *testing.T) {
				after := m
				at := m.LockedUntil.Add(time.Second)
				d := decide(t, &after, sentAt(changeCmd("260301120000-00000fe", mCurPIN, mNewPIN), at), testHasher{}, rules, at)
				if d.Code != pinreset.CodeSuccess || !d.Member.LockedUntil.IsZero() || d.Member.FailedAttempts != 0 {
					t.Errorf("Decide = code %s locked until %v attempts %d; want 000_000, zero, 0", d.Code, d.Member.LockedUntil, d.Member.FailedAttempts)
				}
			})
			t.Run("after the lock a wrong PIN starts a new count", func(t *testing.T) {
				after := m
				at := m.LockedUntil.Add(time.Second)
				d := decide(t, &after, sentAt(changeCmd("260301120000-00000fd", mWrongPIN, mNewPIN), at), testHasher{}, rules, at)
				if d.Code != pinreset.CodeInvalidUserInfo {
					t.Errorf("Decide = code %s, want 001_035", d.Code)
				}
				if lockAfter > 1 && (d.Member.FailedAttempts != 1 || d.Member.LockedUntil.After(at)) {
					t.Errorf("attempts %d locked until %v; want 1 and not locked", d.Member.FailedAttempts, d.Member.LockedUntil)
				}
			})
		})
	}
}

func TestDecideLockAfterZeroNeverLocks(t *testing.T) {
	t.Parallel()
	rules := pinreset.Rules{LockAfter: 0, LockFor: time.Hour, RecentLimit: 4}
	m := member()
	for i := 1; i <= 50; i++ {
		d := decide(t, &m, changeCmd(fmt.Sprintf("260301120000-%07x", i), mWrongPIN, mNewPIN), testHasher{}, rules, mNow)
		if d.Code != pinreset.CodeInvalidUserInfo || !d.Member.LockedUntil.IsZero() || d.Member.FailedAttempts != i {
			t.Fatalf("attempt %d: code %s locked until %v attempts %d; want 001_035, never locked, %d", i, d.Code, d.Member.LockedUntil, d.Member.FailedAttempts, i)
		}
		m = d.Member
	}
	d := decide(t, &m, changeCmd("260301120000-1000000", mCurPIN, mNewPIN), testHasher{}, rules, mNow)
	if d.Code != pinreset.CodeSuccess {
		t.Errorf("the right PIN after 50 wrong ones = %s, want 000_000", d.Code)
	}
}

func TestDecideRecentIsBounded(t *testing.T) {
	t.Parallel()
	applied := func(n int) []pinreset.Applied {
		out := make([]pinreset.Applied, n)
		for i := range out {
			out[i] = pinreset.Applied{CorrelationID: fmt.Sprintf("260301110000-%07d", i), Code: pinreset.CodeSuccess, At: mNow.Add(time.Duration(i-n) * time.Minute)}
		}
		return out
	}
	const id = "260301120000-0000abc"
	for _, tc := range []struct {
		rule    string
		limit   int
		history int
		cmd     pinreset.Command
		wantLen int
	}{
		{"a full history drops the oldest entry for a success", 3, 3, changeCmd(id, mCurPIN, mNewPIN), 3},
		{"a full history drops the oldest entry for a wrong attempt", 3, 3, changeCmd(id, mWrongPIN, mNewPIN), 3},
		{"an over-full history is cut back to the limit", 3, 10, resetCmd(id, mNewPIN), 3},
		{"a history under the limit keeps every entry", 5, 2, resetCmd(id, mNewPIN), 3},
		{"a limit of one keeps only the new command", 1, 4, resetCmd(id, mNewPIN), 1},
		{"a zero limit means the default of 32", 0, 40, resetCmd(id, mNewPIN), 32},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			m := member()
			m.Recent = applied(tc.history)
			rules := pinreset.DefaultRules()
			rules.RecentLimit = tc.limit
			d := decide(t, &m, tc.cmd, testHasher{}, rules, mNow)
			got := d.Member.Recent
			if len(got) != tc.wantLen {
				t.Fatalf("len(Recent) = %d, want %d", len(got), tc.wantLen)
			}
			if last := got[len(got)-1]; last.CorrelationID != id || last.Code != d.Code {
				t.Errorf("newest entry = %+v, want %s with %s", last, id, d.Code)
			}
			// The rest are the newest of the old history, in order.
			if want := m.Recent[len(m.Recent)-(tc.wantLen-1):]; !slices.Equal(got[:len(got)-1], want) {
				t.Errorf("kept history = %v, want the newest %v", got[:len(got)-1], want)
			}
		})
	}
}

// TestDecideDoesNotMutateTheReceiver checks every path against a deep copy,
// including the spare capacity of Recent's backing array, where an
// append(m.Recent, ...) would write unseen.
func TestDecideDoesNotMutateTheReceiver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rule   string
		member func(*pinreset.Member)
		cmd    pinreset.Command
	}{
		{"a success leaves the member as it was", nil, changeCmd("260301120000-0000001", mCurPIN, mNewPIN)},
		{"a reset leaves the member as it was", nil, resetCmd("260301120000-0000002", mNewPIN)},
		{"a wrong attempt leaves the member as it was", nil, changeCmd("260301120000-0000003", mWrongPIN, mNewPIN)},
		{"the locking attempt leaves the member as it was", func(m *pinreset.Member) { m.FailedAttempts = 4 }, changeCmd("260301120000-0000004", mWrongPIN, mNewPIN)},
		{"a same-PIN refusal leaves the member as it was", nil, changeCmd("260301120000-0000005", mCurPIN, mCurPIN)},
		{"a locked refusal leaves the member as it was", func(m *pinreset.Member) { m.LockedUntil = mNow.Add(time.Hour) }, changeCmd("260301120000-0000006", mCurPIN, mNewPIN)},
		{"a reset while locked leaves the member as it was", func(m *pinreset.Member) { m.LockedUntil = mNow.Add(time.Hour) }, resetCmd("260301120000-0000008", mNewPIN)},
		{"a remembered wrong attempt leaves the member as it was", func(m *pinreset.Member) {
			m.WrongAttempts = append(make([]pinreset.Attempt, 0, 4), pinreset.Attempt{Key: "k1:" + mWrongPIN})
		}, withKeys(changeCmd("260301120000-0000009", mWrongPIN, mNewPIN))},
		{"a new wrong attempt leaves the memory as it was", func(m *pinreset.Member) {
			m.WrongAttempts = append(make([]pinreset.Attempt, 0, 4), pinreset.Attempt{Key: "k1:111111"})
		}, withKeys(changeCmd("260301120000-000000a", mWrongPIN, mNewPIN))},
		{"a replay leaves the member as it was", nil, resetCmd("260301115000-0000001", mNewPIN)},
		{"an expiry leaves the member as it was", nil, func() pinreset.Command {
			c := resetCmd("260301120000-0000007", mNewPIN)
			c.ExpiresAt = mNow.Add(-time.Second)
			return c
		}()},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			m := member()
			// Spare capacity: an appending implementation would write here.
			m.Recent = append(make([]pinreset.Applied, 0, 8), m.Recent...)
			if tc.member != nil {
				tc.member(&m)
			}
			before, backing := cloneMember(m)
			d := decide(t, &m, tc.cmd, testHasher{}, pinreset.DefaultRules(), mNow)
			if !reflect.DeepEqual(m, before) {
				t.Errorf("receiver changed:\n%+v\nwas\n%+v", m, before)
			}
			if got := m.Recent[:cap(m.Recent)]; !slices.Equal(got, backing) {
				t.Errorf("Recent's backing array changed:\n%v\nwas\n%v", got, backing)
			}
			if d.Changed && len(d.Member.Recent) > 0 && len(m.Recent) > 0 && &d.Member.Recent[0] == &m.Recent[0] {
				t.Error("the next member's Recent shares the receiver's backing array")
			}
		})
	}
	t.Run("two decisions from one member do not overwrite each other's history", func(t *testing.T) {
		t.Parallel()
		m := member()
		m.Recent = append(make([]pinreset.Applied, 0, 8), m.Recent...)
		a := decide(t, &m, resetCmd("260301120000-00000a1", mNewPIN), testHasher{}, pinreset.DefaultRules(), mNow)
		b := decide(t, &m, changeCmd("260301120000-00000b1", mWrongPIN, mNewPIN), testHasher{}, pinreset.DefaultRules(), mNow)
		if last := a.Member.Recent[len(a.Member.Recent)-1]; last.CorrelationID != "260301120000-00000a1" || last.Code != pinreset.CodeSuccess {
			t.Errorf("first decision's newest entry became %+v", last)
		}
		if last := b.Member.Recent[len(b.Member.Recent)-1]; last.CorrelationID != "260301120000-00000b1" || last.Code != pinreset.CodeInvalidUserInfo {
			t.Errorf("second decision's newest entry = %+v", last)
		}
	})
}

func TestDecideReturnsHasherFailuresAsErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rule   string
		hasher failingHasher
		cmd    pinreset.Command
	}{
		{"a failing Verify of the current PIN is an error", failingHasher{verifyFails: true}, changeCmd("260301120000-0000001", mCurPIN, mNewPIN)},
		{"a failing Verify of a reset's new PIN is an error", failingHasher{verifyFails: true}, resetCmd("260301120000-0000002", mNewPIN)},
		{"a failing Hash of a change's new PIN is an error", failingHasher{hashFails: true}, changeCmd("260301120000-0000003", mCurPIN, mNewPIN)},
		{"a failing Hash of a reset's new PIN is an error", failingHasher{hashFails: true}, resetCmd("260301120000-0000004", mNewPIN)},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			m := member()
			d, err := m.Decide(tc.cmd, tc.hasher, pinreset.DefaultRules(), mNow)
			if !errors.Is(err, errHasher) {
				t.Fatalf("Decide = %+v, %v; want an error wrapping the hasher's", d, err)
			}
			if d.Changed || d.Code == pinreset.CodeSuccess {
				t.Errorf("a failed decision says code %q changed %v; want neither success nor a change", d.Code, d.Changed)
			}
			for _, s := range []string{mCurPIN, mNewPIN, mCI, m.PINHash} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains a secret %q", err, s)
				}
			}
		})
	}
}

func TestDecideRefusesAnUnknownKind(t *testing.T) {
	t.Parallel()
	for _, kind := range []pinreset.Kind{"", "delete", "Reset", "CHANGE"} {
		t.Run(fmt.Sprintf("kind %q is an error, not an outcome", kind), func(t *testing.T) {
			t.Parallel()
			m := member()
			cmd := changeCmd("260301120000-0000001", mCurPIN, mNewPIN)
			cmd.Kind = kind
			d, err := m.Decide(cmd, testHasher{}, pinreset.DefaultRules(), mNow)
			if err == nil || d.Changed {
				t.Errorf("Decide = %+v, %v; want an error and no change", d, err)
			}
		})
	}
}

func TestNewCommand(t *testing.T) {
	t.Parallel()
	kst := time.FixedZone("KST", 9*60*60)
	accepted := time.Date(2026, 3, 1, 21, 0, 0, 123, kst)
	const ttl = 2 * time.Minute
	req := pinreset.Request{LoginID: "member.one@example.com", CI: mCI, CurrentPIN: mCurPIN, NewPIN: mNewPIN}
	for _, tc := range []struct {
		rule  string
		reset bool
		want  pinreset.Command
	}{
		{"a change keeps both PINs and the ci", false, pinreset.Command{
			CorrelationID: "260301120000-0000001", RequestID: "req-1", ASPID: "ASP000000000001", Kind: pinreset.KindChange,
			LoginID: req.LoginID, CI: mCI, CurrentPIN: mCurPIN, NewPIN: mNewPIN,
			AcceptedAt: accepted.UTC(), ExpiresAt: accepted.Add(ttl).UTC()}},
		{"a reset drops the current PIN it was given", true, pinreset.Command{
			CorrelationID: "260301120000-0000001", RequestID: "req-1", ASPID: "ASP000000000001", Kind: pinreset.KindReset,
			LoginID: req.LoginID, CI: mCI, NewPIN: mNewPIN,
			AcceptedAt: accepted.UTC(), ExpiresAt: accepted.Add(ttl).UTC()}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			r := req
			r.Reset = tc.reset
			got := pinreset.NewCommand("260301120000-0000001", "req-1", "ASP000000000001", r, accepted, ttl)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("NewCommand =\n%s\nwant\n%s", cmdFields(got), cmdFields(tc.want))
			}
			if got.AcceptedAt.Location() != time.UTC || got.ExpiresAt.Location() != time.UTC {
				t.Errorf("times in %v and %v, want UTC", got.AcceptedAt.Location(), got.ExpiresAt.Location())
			}
			if d := got.ExpiresAt.Sub(got.AcceptedAt); d != ttl {
				t.Errorf("ExpiresAt - AcceptedAt = %v, want the ttl %v", d, ttl)
			}
		})
	}
	t.Run("a command expires only after its ttl", func(t *testing.T) {
		t.Parallel()
		c := pinreset.NewCommand("260301120000-0000001", "req-1", "ASP000000000001", req, accepted, ttl)
		if c.Expired(accepted.Add(ttl)) || !c.Expired(accepted.Add(ttl+time.Nanosecond)) {
			t.Errorf("Expired at ttl = %v, just after = %v; want false, true", c.Expired(accepted.Add(ttl)), c.Expired(accepted.Add(ttl+time.Nanosecond)))
		}
	})
}

func TestCommandFormattingRedactsSecrets(t *testing.T) {
	t.Parallel()
	c := pinreset.Command{
		CorrelationID: "260301120000-0000001", ASPID: "ASP000000000001", Kind: pinreset.KindChange,
		LoginID: "secret.person@example.com", CI: mCI, CurrentPIN: "975310", NewPIN: "864209",
		AcceptedAt: mNow, ExpiresAt: mNow.Add(time.Minute),
	}
	secrets := []string{"secret.person", mCI[:12], "975310", "864209"}
	type wrapper struct{ C pinreset.Command }
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{c, &c, []pinreset.Command{c}, wrapper{c}, map[string]any{"c": c}} {
			out := fmt.Sprintf(verb, v)
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s of %T leaks %q: %s", verb, v, s, out)
				}
			}
		}
	}
	if s := c.String(); !strings.Contains(s, c.CorrelationID) {
		t.Errorf("String() = %s, want the correlation id for the logs", s)
	}
	if c.GoString() != c.String() {
		t.Errorf("GoString() = %s, want String() = %s", c.GoString(), c.String())
	}
}

func TestCodeCatalogue(t *testing.T) {
	t.Parallel()
	declared := []pinreset.Code{
		pinreset.CodeSuccess, pinreset.CodeInvalidInput, pinreset.CodeMissing, pinreset.CodeLength,
		pinreset.CodeUserNotFound, pinreset.CodeInvalidUserInfo, pinreset.CodeSamePIN,
		pinreset.CodeUnauthorized, pinreset.CodeTooLarge, pinreset.CodeCorrelationReused, pinreset.CodeAccepted,
		pinreset.CodeNotFound, pinreset.CodeExpired, pinreset.CodeRejected, pinreset.CodeUnavailable,
		pinreset.CodeInternal, pinreset.CodeAttemptsExceeded, pinreset.CodeWeakPIN, pinreset.CodeUnsupportedMediaType,
		pinreset.CodeUnknownCryptoKey, pinreset.CodeUndecryptable, pinreset.CodeDuplicateRequest, pinreset.CodeTooManyRequests,
	}
	codes := pinreset.Codes()
	t.Run("every code of the catalogue is known and has a message", func(t *testing.T) {
		for _, c := range codes {
			if !c.Known() || c.Message() == "" {
				t.Errorf("code %q: Known() = %v, Message() = %q", c, c.Known(), c.Message())
			}
			if c != pinreset.CodeInternal && c.Message() == pinreset.CodeInternal.Message() {
				t.Errorf("code %q has the internal error's message", c)
			}
		}
	})
	t.Run("every declared code is in the catalogue once", func(t *testing.T) {
		sorted := slices.Sorted(slices.Values(codes))
		if len(slices.Compact(slices.Clone(sorted))) != len(sorted) {
			t.Errorf("Codes() has duplicates: %v", sorted)
		}
		if len(codes) != len(declared) {
			t.Errorf("Codes() has %d codes, %d are declared", len(codes), len(declared))
		}
		for _, c := range declared {
			if !slices.Contains(codes, c) {
				t.Errorf("declared code %q is missing from Codes()", c)
			}
		}
	})
	t.Run("the codes of SPEC section 2 carry the spec's messages", func(t *testing.T) {
		for code, msg := range map[pinreset.Code]string{
			"000_000": "Success.",
			"001_006": "Wallet user not found.",
			"001_043": "New wallet pin is identical to the old wallet pin.",
			"001_035": "Invalid user info",
			"000_002": "Invalid input value.",
			"000_003": "Missing required values.",
			"000_015": "The length of value does not match.",
		} {
			if got := code.Message(); got != msg {
				t.Errorf("%s.Message() = %q, want %q", code, got, msg)
			}
		}
	})
	t.Run("an unknown code is not known and reads as an internal error", func(t *testing.T) {
		for _, c := range []pinreset.Code{"", "999_999", "000-000", "000_000 "} {
			if c.Known() || c.Message() != "Internal error." {
				t.Errorf("code %q: Known() = %v, Message() = %q; want false, Internal error.", c, c.Known(), c.Message())
			}
		}
	})
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	t.Run("an input error's message is the code's message and the field", func(t *testing.T) {
		e := pinreset.Errorf(pinreset.CodeInvalidInput, "loginId")
		if got, want := e.Message(), "Invalid input value. loginId"; got != want || e.Error() != want {
			t.Errorf("Message() = %q, Error() = %q; want %q", got, e.Error(), want)
		}
	})
	t.Run("an error without a field is the code's message alone", func(t *testing.T) {
		e := pinreset.Errorf(pinreset.CodeSamePIN, "")
		if got, want := e.Message(), pinreset.CodeSamePIN.Message(); got != want {
			t.Errorf("Message() = %q, want %q", got, want)
		}
	})

	appErr := pinreset.Errorf(pinreset.CodeLength, "X-KM-User-AspId")
	for _, tc := range []struct {
		rule     string
		err      error
		wantCode pinreset.Code
		wantMsg  string
	}{
		{"no error is a success", nil, pinreset.CodeSuccess, "Success."},
		{"an application error gives its code and message", appErr, pinreset.CodeLength, "The length of value does not match. X-KM-User-AspId"},
		{"a wrapped application error gives its code and message", fmt.Errorf("handle: %w", appErr), pinreset.CodeLength, "The length of value does not match. X-KM-User-AspId"},
		{"a joined application error gives its code and message", errors.Join(errors.New("other"), appErr), pinreset.CodeLength, "The length of value does not match. X-KM-User-AspId"},
		{"a plain error is internal and shows nothing of itself", errors.New("mongo: password=hunter2 refused"), pinreset.CodeInternal, "Internal error."},
		{"a wrapped plain error is internal", fmt.Errorf("x: %w", errors.New("y")), pinreset.CodeInternal, "Internal error."},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			if got := pinreset.ErrorCode(tc.err); got != tc.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tc.wantCode)
			}
			if got := pinreset.ErrorMessage(tc.err); got != tc.wantMsg {
				t.Errorf("ErrorMessage = %q, want %q", got, tc.wantMsg)
			}
		})
	}
}

// withKeys gives c the attempt keys the worker would: under a current key
// "k1" and an older "k0", of its currentPassword and of its newPassword.
func withKeys(c pinreset.Command) pinreset.Command {
	if c.Kind == pinreset.KindChange {
		c.AttemptKeys = []string{"k1:" + c.CurrentPIN, "k0:" + c.CurrentPIN}
	}
	c.NewPINKeys = []string{"k1:" + c.NewPIN, "k0:" + c.NewPIN}
	return c
}

func TestWrongPINCountedOncePerDistinctPIN(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	rules := pinreset.Rules{LockAfter: 3, LockFor: time.Minute, RecentLimit: 32, AttemptMemory: 32}
	m := &pinreset.Member{ID: "m1", ASPID: "KMTESTASP000001", LoginID: "a@b.c", PINHash: "h:246810", Version: 1}
	wrong := func(cid, pin string) pinreset.Command {
		return withKeys(pinreset.Command{CorrelationID: cid, Kind: pinreset.KindChange, CurrentPIN: pin, NewPIN: "581379", ExpiresAt: now.Add(time.Minute)})
	}
	d, err := m.Decide(wrong("c1", "111111"), testHasher{}, rules, now)
	if err != nil || d.Code != pinreset.CodeInvalidUserInfo || !d.Changed || d.Member.FailedAttempts != 1 {
		t.Fatalf("first wrong PIN: %+v %v", d, err)
	}
	if want := []pinreset.Attempt{{Key: "k1:111111", At: now}}; !reflect.DeepEqual(d.Member.WrongAttempts, want) {
		t.Fatalf("remembered %+v, want %+v (under the current key, with its time)", d.Member.WrongAttempts, want)
	}
	m1 := d.Member
	t.Run("the same wrong PIN again (a replay) is not counted", func(t *testing.T) {
		d, err := m1.Decide(wrong("c2", "111111"), untouchableHasher{t}, rules, now)
		if err != nil || d.Code != pinreset.CodeInvalidUserInfo || d.Changed || d.Member.FailedAttempts != 1 {
			t.Fatalf("got %+v %v, want 001_035 with nothing counted", d, err)
		}
	})
	t.Run("a wrong PIN remembered under an older fingerprint key is not counted", func(t *testing.T) {
		old := m1
		old.WrongAttempts = []pinreset.Attempt{{Key: "k0:111111", At: now}}
		d, err := old.Decide(wrong("c2", "111111"), untouchableHasher{t}, rules, now)
		if err != nil || d.Code != pinreset.CodeInvalidUserInfo || d.Changed {
			t.Fatalf("got %+v %v, want 001_035 with nothing counted", d, err)
		}
	})
	t.Run("distinct wrong PINs count and lock at LockAfter, and the lock keeps them remembered", func(t *testing.T) {
		d, _ := m1.Decide(wrong("c3", "222222"), testHasher{}, rules, now)
		d, _ = d.Member.Decide(wrong("c4", "333333"), testHasher{}, rules, now)
		if !d.Member.LockedUntil.Equal(now.Add(time.Minute)) || d.Member.FailedAttempts != 0 || len(d.Member.WrongAttempts) != 3 {
			t.Fatalf("third distinct wrong PIN: LockedUntil %v attempts %d WrongAttempts %v, want locked, 0, all three remembered",
				d.Member.LockedUntil, d.Member.FailedAttempts, d.Member.WrongAttempts)
		}
	})
	t.Run("a success resets the count and keeps the wrong PINs remembered", func(t *testing.T) {
		ok := withKeys(pinreset.Command{CorrelationID: "c5", Kind: pinreset.KindChange, CurrentPIN: "246810", NewPIN: "581379", ExpiresAt: now.Add(time.Minute)})
		d, err := m1.Decide(ok, testHasher{}, rules, now)
		if err != nil || d.Code != pinreset.CodeSuccess || d.Member.FailedAttempts != 0 || !reflect.DeepEqual(d.Member.WrongAttempts, m1.WrongAttempts) {
			t.Fatalf("got %+v %v", d, err)
		}
	})
	t.Run("a set forgets the remembered attempts of the PIN it sets, which is no longer wrong", func(t *testing.T) {
		mem := m1
		mem.WrongAttempts = []pinreset.Attempt{{Key: "k0:111111"}, {Key: "k1:222222"}}
		reset := withKeys(pinreset.Command{CorrelationID: "c7", Kind: pinreset.KindReset, NewPIN: "111111", ExpiresAt: now.Add(time.Minute)})
		d, err := mem.Decide(reset, testHasher{}, rules, now)
		if err != nil || d.Code != pinreset.CodeSuccess || !reflect.DeepEqual(d.Member.WrongAttempts, []pinreset.Attempt{{Key: "k1:222222"}}) {
			t.Fatalf("reset to a PIN once tried wrong: %+v %v; want 111111 forgotten, 222222 kept", d.Member.WrongAttempts, err)
		}
		right := withKeys(pinreset.Command{CorrelationID: "c8", Kind: pinreset.KindChange, CurrentPIN: "111111", NewPIN: "581379", ExpiresAt: now.Add(time.Minute)})
		if d, err = d.Member.Decide(right, testHasher{}, rules, now); err != nil || d.Code != pinreset.CodeSuccess {
			t.Fatalf("the PIN set, tried as currentPassword: %s %v, want 000_000", d.Code, err)
		}
	})
	t.Run("deciding does not alias the receiver's WrongAttempts", func(t *testing.T) {
		before := slices.Clone(m1.WrongAttempts)
		d, _ := m1.Decide(wrong("c6", "444444"), testHasher{}, rules, now)
		d.Member.WrongAttempts[0].Key = "changed"
		if !slices.Equal(m1.WrongAttempts, before) {
			t.Fatalf("receiver's WrongAttempts changed: %v", m1.WrongAttempts)
		}
	})
}

// TestAttemptMemoryIsBounded: the memory keeps the most recent
// AttemptMemory wrong attempts, dropping the oldest; zero means 32.
func TestAttemptMemoryIsBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rule         string
		memory, sent int
		want         int
	}{
		{"a memory under its bound keeps every wrong attempt", 8, 5, 5},
		{"a full memory drops the oldest wrong attempt", 4, 7, 4},
		{"a zero bound means the default of 32", 0, 40, 32},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			rules := pinreset.Rules{LockAfter: 0, RecentLimit: 32, AttemptMemory: tc.memory}
			m := member()
			for i := range tc.sent {
				d := decide(t, &m, withKeys(changeCmd(fmt.Sprintf("260301120000-%07x", i), fmt.Sprintf("%06d", 900000+i), mNewPIN)), testHasher{}, rules, mNow.Add(time.Duration(i)*time.Second))
				m = d.Member
			}
			if len(m.WrongAttempts) != tc.want {
				t.Fatalf("remembered %d, want %d", len(m.WrongAttempts), tc.want)
			}
			if newest := m.WrongAttempts[len(m.WrongAttempts)-1].Key; newest != fmt.Sprintf("k1:%06d", 900000+tc.sent-1) {
				t.Errorf("newest remembered %s, want the last attempt", newest)
			}
			if oldest := m.WrongAttempts[0].Key; oldest != fmt.Sprintf("k1:%06d", 900000+tc.sent-tc.want) {
				t.Errorf("oldest remembered %s, want attempt %d", oldest, tc.sent-tc.want)
			}
		})
	}
}

// TestResetIsTheWayOutOfALock: a reset succeeds while the PIN is locked and
// clears the lock and the count; its event says it unlocked the PIN; a
// change is refused with 001_069 without verifying anything.
func TestResetIsTheWayOutOfALock(t *testing.T) {
	t.Parallel()
	const id = "260301120000-000b001"
	lockedMember := func() pinreset.Member {
		m := member()
		m.LockedUntil = mNow.Add(10 * time.Minute)
		m.FailedAttempts = 2
		m.WrongAttempts = []pinreset.Attempt{{Key: "k1:111111", At: mNow.Add(-time.Minute)}}
		return m
	}
	t.Run("a reset while locked sets the PIN, clears the lock and the count, keeps the memory", func(t *testing.T) {
		m := lockedMember()
		want, _ := cloneMember(m)
		want.PINHash = "h:" + mNewPIN
		want.FailedAttempts = 0
		want.LockedUntil = time.Time{}
		want.Version++
		want.UpdatedAt = mNow
		want.Recent = append(want.Recent, pinreset.Applied{CorrelationID: id, Code: pinreset.CodeSuccess, At: mNow})
		d := decide(t, &m, withKeys(resetCmd(id, mNewPIN)), testHasher{}, pinreset.DefaultRules(), mNow)
		if d.Code != pinreset.CodeSuccess || !d.Changed {
			t.Fatalf("Decide = %s changed %v, want 000_000, true", d.Code, d.Changed)
		}
		if !reflect.DeepEqual(d.Member, want) {
			t.Errorf("next member =\n%+v\nwant\n%+v", d.Member, want)
		}
		if len(d.Events) != 1 || d.Events[0].Type != pinreset.EventPINSet || d.Events[0].Kind != pinreset.KindReset || !d.Events[0].Unlocked ||
			d.Events[0].ID != fmt.Sprintf("%s:%d:0", m.ID, m.Version+1) {
			t.Errorf("events %+v, want one password.changed (reset) that says it unlocked the PIN", d.Events)
		}
	})
	t.Run("a reset with the member's ci succeeds while locked", func(t *testing.T) {
		m := lockedMember()
		c := resetCmd(id, mNewPIN)
		c.CI = mCI
		if d := decide(t, &m, c, testHasher{}, pinreset.DefaultRules(), mNow); d.Code != pinreset.CodeSuccess || !d.Member.LockedUntil.IsZero() {
			t.Errorf("Decide = %s locked until %v, want 000_000, unlocked", d.Code, d.Member.LockedUntil)
		}
	})
	t.Run("a change while locked answers 001_069 without verifying, even with the right PIN", func(t *testing.T) {
		for _, cur := range []string{mCurPIN, mWrongPIN} {
			m := lockedMember()
			d := decide(t, &m, withKeys(changeCmd(id, cur, mNewPIN)), untouchableHasher{t}, pinreset.DefaultRules(), mNow)
			if d.Code != pinreset.CodeAttemptsExceeded || d.Changed {
				t.Errorf("currentPassword %s: Decide = %s changed %v, want 001_069, false", cur, d.Code, d.Changed)
			}
		}
	})
	t.Run("a set that ends no lock does not say it unlocked", func(t *testing.T) {
		m := member()
		d := decide(t, &m, resetCmd(id, mNewPIN), testHasher{}, pinreset.DefaultRules(), mNow)
		if len(d.Events) != 1 || d.Events[0].Unlocked {
			t.Errorf("events %+v, want one password.changed without unlocked", d.Events)
		}
	})
}

// TestReplayedCapturesNeverLock: the five-capture loop. Five distinct wrong
// captures lock the member; a reset unlocks; the same five replayed (fresh
// correlation ids) are answered 001_035 without hashing and lock nothing,
// round after round.
func TestReplayedCapturesNeverLock(t *testing.T) {
	t.Parallel()
	rules := pinreset.DefaultRules()
	m := member()
	now := mNow
	captures := []string{"130579", "350791", "570913", "790135", "913570"}
	n := 0
	send := func(c pinreset.Command, h pinreset.PINHasher) pinreset.Decision {
		t.Helper()
		n++
		now = now.Add(time.Second)
		c.CorrelationID = fmt.Sprintf("260301120000-%07x", n)
		d := decide(t, &m, sentAt(withKeys(c), now), h, rules, now)
		if d.Changed {
			m = d.Member
		}
		return d
	}
	for i, pin := range captures {
		if d := send(changeCmd("", pin, mNewPIN), testHasher{}); d.Code != pinreset.CodeInvalidUserInfo {
			t.Fatalf("capture %d: %s, want 001_035", i+1, d.Code)
		}
	}
	if !now.Before(m.LockedUntil) {
		t.Fatal("five distinct wrong PINs did not lock")
	}
	for round := 1; round <= 3; round++ {
		pin := fmt.Sprintf("%06d", 703152+round*1111)
		if d := send(resetCmd("", pin), testHasher{}); d.Code != pinreset.CodeSuccess || !m.LockedUntil.IsZero() {
			t.Fatalf("round %d: reset %s locked until %v, want 000_000 and unlocked", round, d.Code, m.LockedUntil)
		}
		for i, c := range captures {
			if d := send(changeCmd("", c, mNewPIN), untouchableHasher{t}); d.Code != pinreset.CodeInvalidUserInfo || d.Changed {
				t.Fatalf("round %d replay %d: %s changed %v, want 001_035 and nothing counted", round, i+1, d.Code, d.Changed)
			}
		}
		if !m.LockedUntil.IsZero() || m.FailedAttempts != 0 {
			t.Fatalf("round %d: the replays locked (until %v) or counted (%d)", round, m.LockedUntil, m.FailedAttempts)
		}
	}
}

func TestDecideEvents(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	rules := pinreset.Rules{LockAfter: 1, LockFor: time.Minute, RecentLimit: 32}
	base := pinreset.Member{ID: "m1", ASPID: "KMTESTASP000001", LoginID: "m1@example.com", PINHash: "h:246810", Version: 7}
	cmd := func(kind pinreset.Kind, cur string) pinreset.Command {
		return pinreset.Command{CorrelationID: "c-" + cur, Kind: kind, CurrentPIN: cur, NewPIN: "581379", ExpiresAt: now.Add(time.Minute)}
	}
	t.Run("a set emits one password.changed with its kind and a stable id", func(t *testing.T) {
		for _, kind := range []pinreset.Kind{pinreset.KindChange, pinreset.KindReset} {
			m := base
			d, err := m.Decide(cmd(kind, "246810"), testHasher{}, rules, now)
			if err != nil || len(d.Events) != 1 {
				t.Fatalf("%s: %+v %v", kind, d.Events, err)
			}
			ev := d.Events[0]
			if ev.Type != pinreset.EventPINSet || ev.Kind != kind || ev.ID != "m1:8:0" || ev.MemberID != "m1" ||
				ev.ASPID != "KMTESTASP000001" || ev.CorrelationID != "c-246810" || !ev.At.Equal(now) {
				t.Fatalf("%s: event %+v", kind, ev)
			}
		}
	})
	t.Run("a refusal that changes nothing emits nothing", func(t *testing.T) {
		m := base
		d, _ := m.Decide(pinreset.Command{CorrelationID: "c", Kind: pinreset.KindReset, NewPIN: "246810", ExpiresAt: now.Add(time.Minute)}, testHasher{}, rules, now)
		if d.Code != pinreset.CodeSamePIN || len(d.Events) != 0 {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("the locking attempt emits password.locked with its end", func(t *testing.T) {
		m := base
		d, _ := m.Decide(cmd(pinreset.KindChange, "999999"), testHasher{}, rules, now)
		if len(d.Events) != 1 || d.Events[0].Type != pinreset.EventLocked || !d.Events[0].LockedUntil.Equal(now.Add(time.Minute)) {
			t.Fatalf("%+v", d.Events)
		}
	})
	t.Run("the first command after a lock ends records the unlock, even a refusal", func(t *testing.T) {
		m := base
		m.LockedUntil = now.Add(-time.Second)
		d, _ := m.Decide(pinreset.Command{CorrelationID: "c", Kind: pinreset.KindReset, NewPIN: "246810", ExpiresAt: now.Add(time.Minute)}, testHasher{}, rules, now)
		if d.Code != pinreset.CodeSamePIN || !d.Changed || !d.Member.LockedUntil.IsZero() ||
			len(d.Events) != 1 || d.Events[0].Type != pinreset.EventUnlocked || !d.Events[0].At.Equal(m.LockedUntil) {
			t.Fatalf("%+v", d)
		}
		d, _ = m.Decide(cmd(pinreset.KindChange, "246810"), testHasher{}, rules, now)
		if len(d.Events) != 2 || d.Events[0].Type != pinreset.EventUnlocked || d.Events[1].Type != pinreset.EventPINSet || d.Events[1].ID != "m1:8:1" {
			t.Fatalf("unlock then set: %+v", d.Events)
		}
	})
}

// aheadHasher is a testHasher that can hash ahead: when idle, HashAhead
// returns the hash "a:"+PIN (so a test sees which path made it) and records
// whether it was collected.
type aheadHasher struct {
	testHasher
	idle      bool
	fails     bool
	started   []string
	collected int
}

func (h *aheadHasher) HashAhead(pin string) func() (string, error) {
	if !h.idle {
		return nil
	}
	h.started = append(h.started, pin)
	return func() (string, error) {
		h.collected++
		if h.fails {
			return "", errHasher
		}
		return "a:" + pin, nil
	}
}

// TestDecideHashesAhead: with an idle core the new PIN's hash is started
// before the check and used when the check passes, dropped when it fails;
// without one, the PIN is hashed after the check as before; a command
// decided without the PIN rules starts nothing.
func TestDecideHashesAhead(t *testing.T) {
	t.Parallel()
	locked := member()
	locked.LockedUntil = mNow.Add(time.Minute)
	remembered := member()
	remembered.WrongAttempts = []pinreset.Attempt{{Key: "k1:" + mWrongPIN, At: mNow.Add(-time.Hour)}}
	for _, tc := range []struct {
		rule              string
		m                 pinreset.Member
		cmd               pinreset.Command
		idle, fails       bool
		code              pinreset.Code
		hash              string // the stored hash on success
		started, collects int
		err               bool
	}{
		{"change, idle core: the hash made ahead is stored", member(), changeCmd("260301120000-0000a01", mCurPIN, mNewPIN), true, false, pinreset.CodeSuccess, "a:" + mNewPIN, 1, 1, false},
		{"reset, idle core: the hash made ahead is stored", member(), resetCmd("260301120000-0000a02", mNewPIN), true, false, pinreset.CodeSuccess, "a:" + mNewPIN, 1, 1, false},
		{"wrong current PIN: the hash made ahead is dropped", member(), changeCmd("260301120000-0000a03", mWrongPIN, mNewPIN), true, false, pinreset.CodeInvalidUserInfo, "", 1, 0, false},
		{"reset to the same PIN: the hash made ahead is dropped", member(), resetCmd("260301120000-0000a04", mCurPIN), true, false, pinreset.CodeSamePIN, "", 1, 0, false},
		{"no idle core: hashed after the check", member(), changeCmd("260301120000-0000a05", mCurPIN, mNewPIN), false, false, pinreset.CodeSuccess, "h:" + mNewPIN, 0, 0, false},
		{"locked: nothing started", locked, changeCmd("260301120000-0000a06", mCurPIN, mNewPIN), true, false, pinreset.CodeAttemptsExceeded, "", 0, 0, false},
		{"a remembered wrong attempt: nothing started", remembered, withKeys(changeCmd("260301120000-0000a08", mWrongPIN, mNewPIN)), true, false, pinreset.CodeInvalidUserInfo, "", 0, 0, false},
		{"a failed hash made ahead is an error", member(), resetCmd("260301120000-0000a07", mNewPIN), true, true, "", "", 1, 1, true},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			h := &aheadHasher{idle: tc.idle, fails: tc.fails}
			d, err := tc.m.Decide(tc.cmd, h, pinreset.DefaultRules(), mNow)
			if tc.err {
				if !errors.Is(err, errHasher) || d.Changed {
					t.Fatalf("Decide = %+v, %v; want the hasher's error and no change", d, err)
				}
			} else if err != nil || d.Code != tc.code {
				t.Fatalf("Decide = %q, %v; want %q", d.Code, err, tc.code)
			}
			if tc.hash != "" && d.Member.PINHash != tc.hash {
				t.Errorf("stored hash %q, want %q", d.Member.PINHash, tc.hash)
			}
			if len(h.started) != tc.started || h.collected != tc.collects {
				t.Errorf("hashes started ahead %v, collected %d; want %d, %d", h.started, h.collected, tc.started, tc.collects)
			}
			for _, pin := range h.started {
				if pin != tc.cmd.NewPIN {
					t.Errorf("hashed ahead %q, want the new PIN", pin)
				}
			}
		})
	}
}

// TestReplayClaimsLastTheirWindow: a KMV1 content that set the PIN stays
// claimed for the whole replay window however many sets follow it; only
// time frees a claim, and a member with MaxSetClaims live claims is refused
// further sets rather than forgetting one.
func TestReplayClaimsLastTheirWindow(t *testing.T) {
	t.Parallel()
	pins := func(i int) string { return fmt.Sprintf("%06d", 100000+i*7919) }
	withKeys := func(c pinreset.Command) pinreset.Command {
		c.ContentKeys = []string{"fp:" + string(c.Kind) + ":" + c.NewPIN}
		return c
	}
	setMany := func(t *testing.T, m *pinreset.Member, rules pinreset.Rules, n int) time.Time {
		t.Helper()
		at := mNow
		for i := range n {
			at = mNow.Add(time.Duration(i) * time.Second)
			c := withKeys(sentAt(resetCmd(fmt.Sprintf("260301120000-%07d", i), pins(i)), at))
			d := decide(t, m, c, testHasher{}, rules, at)
			if d.Code != pinreset.CodeSuccess {
				t.Fatalf("set %d: %s", i+1, d.Code)
			}
			*m = d.Member
		}
		return at
	}

	t.Run("the first content is refused after 33 sets inside the window", func(t *testing.T) {
		t.Parallel()
		m, rules := member(), pinreset.DefaultRules()
		last := setMany(t, &m, rules, 33)
		replay := withKeys(sentAt(resetCmd("260301130000-0000001", pins(0)), last.Add(time.Second)))
		if d := decide(t, &m, replay, testHasher{}, rules, last.Add(time.Second)); d.Code != pinreset.CodeDuplicateRequest || d.Changed {
			t.Fatalf("replay of the first set: %s changed %v, want %s and nothing changed", d.Code, d.Changed, pinreset.CodeDuplicateRequest)
		}
	})

	t.Run("a claim ends with the window", func(t *testing.T) {
		t.Parallel()
		m, rules := member(), pinreset.DefaultRules()
		rules.ReplayWindow = time.Hour
		setMany(t, &m, rules, 2)
		later := mNow.Add(time.Hour + time.Minute)
		replay := withKeys(sentAt(resetCmd("260301130000-0000002", pins(0)), later))
		if d := decide(t, &m, replay, testHasher{}, rules, later); d.Code != pinreset.CodeSuccess {
			t.Fatalf("the first content after the window: %s, want 000_000", d.Code)
		}
		if d := decide(t, &m, replay, testHasher{}, rules, later); len(d.Member.Sets) != 1 {
			t.Fatalf("claims after the window: %d, want only the new one", len(d.Member.Sets))
		}
	})

	t.Run("a full set of claims refuses the next set and forgets none", func(t *testing.T) {
		t.Parallel()
		m, rules := member(), pinreset.DefaultRules()
		rules.MaxSetClaims = 4
		last := setMany(t, &m, rules, 4)
		next := withKeys(sentAt(resetCmd("260301130000-0000003", pins(4)), last.Add(time.Second)))
		d := decide(t, &m, next, testHasher{}, rules, last.Add(time.Second))
		if d.Code != pinreset.CodeTooManyRequests || d.Changed || len(d.Member.Sets) != 4 {
			t.Fatalf("fifth set: %s changed %v with %d claims, want %s, unchanged, 4", d.Code, d.Changed, len(d.Member.Sets), pinreset.CodeTooManyRequests)
		}
		replay := withKeys(sentAt(resetCmd("260301130000-0000004", pins(0)), last.Add(time.Second)))
		if d := decide(t, &m, replay, testHasher{}, rules, last.Add(time.Second)); d.Code != pinreset.CodeDuplicateRequest {
			t.Fatalf("the first content at the cap: %s, want %s", d.Code, pinreset.CodeDuplicateRequest)
		}
		kmv2 := next
		kmv2.Auth = pinreset.SchemeKMV2
		if d := decide(t, &m, kmv2, testHasher{}, rules, last.Add(time.Second)); d.Code != pinreset.CodeSuccess {
			t.Fatalf("a KMV2 set (no claim) at the cap: %s, want 000_000", d.Code)
		}
	})
}
