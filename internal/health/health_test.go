package health

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func fixedClock(m *Monitor) *time.Time {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	return &now
}

func TestLoopBackingOffIsAliveButNotReady(t *testing.T) {
	m := New()
	l := m.Loop("consumer", time.Minute)
	l.Waiting(errors.New("broker unreachable"))
	if err := m.Live(); err != nil {
		t.Errorf("Live while backing off: %v, want nil (a restart would not bring the broker back)", err)
	}
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), "consumer: broker unreachable") {
		t.Errorf("Ready while backing off: %v, want the reason", err)
	}
	l.Recovered()
	if err := m.Ready(); err != nil {
		t.Errorf("Ready after recovery: %v", err)
	}
}

func TestWaitingWithoutNewFailuresEndsAfterItsHold(t *testing.T) {
	m := New()
	now := fixedClock(m)
	l := m.Loop("retry consumer", time.Minute)
	l.Waiting(errors.New("broker unreachable"))
	*now = now.Add(WaitHold - time.Second)
	l.Waiting(errors.New("broker unreachable")) // still failing
	*now = now.Add(WaitHold - time.Second)
	if err := m.Ready(); err == nil {
		t.Error("Ready while failures keep coming: nil, want the reason")
	}
	*now = now.Add(2 * time.Second) // no failure for a whole hold: it recovered
	if err := m.Ready(); err != nil {
		t.Errorf("Ready a hold after the last failure: %v", err)
	}
}

func TestWorkLongerThanItsLimitIsStuck(t *testing.T) {
	m := New()
	now := fixedClock(m)
	l := m.Loop("lane", 30*time.Second)
	end := l.Begin()
	other := l.Begin()
	other()
	*now = now.Add(29 * time.Second)
	if err := m.Live(); err != nil {
		t.Errorf("Live within the limit: %v", err)
	}
	*now = now.Add(2 * time.Second)
	if err := m.Live(); err == nil || !strings.Contains(err.Error(), "lane stuck") {
		t.Errorf("Live past the limit: %v, want stuck", err)
	}
	end()
	if err := m.Live(); err != nil {
		t.Errorf("Live once the work ended: %v", err)
	}
}

func TestExitedLoopIsDead(t *testing.T) {
	m := New()
	l := m.Loop("relay", time.Minute)
	l.Exited(errors.New("boom"))
	if err := m.Live(); err == nil || !strings.Contains(err.Error(), "relay exited: boom") {
		t.Errorf("Live: %v", err)
	}
}

func TestConditionHoldsUntilNoLongerReported(t *testing.T) {
	m := New()
	now := fixedClock(m)
	m.Report("seal key", errors.New("unknown key id k2"), time.Minute)
	*now = now.Add(50 * time.Second)
	m.Report("seal key", errors.New("unknown key id k2"), time.Minute)
	*now = now.Add(50 * time.Second)
	if err := m.Ready(); err == nil {
		t.Error("Ready 50 s after the last report: nil, want the condition")
	}
	*now = now.Add(11 * time.Second)
	if err := m.Ready(); err != nil {
		t.Errorf("Ready past the hold: %v", err)
	}
}

func TestNilLoopIsANoOp(t *testing.T) {
	var l *Loop
	l.Begin()()
	l.Waiting(errors.New("x"))
	l.Recovered()
	l.Exited(nil)
}
