// Package health tracks the long-running loops of a process and the
// conditions that make it unready, so that /healthz fails only for a loop
// that died or is stuck in one piece of work (a restart would help), and
// /readyz names what the process waits for (a restart would not help).
package health

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Monitor is the registry of a process's loops and conditions. The zero
// value is not usable; use New. Safe for concurrent use.
type Monitor struct {
	now func() time.Time

	mu         sync.Mutex
	loops      []*Loop
	conditions map[string]condition
}

type condition struct {
	err   error
	until time.Time
}

// New returns an empty monitor.
func New() *Monitor { return &Monitor{now: time.Now, conditions: map[string]condition{}} }

// Loop registers a loop named name. stuckAfter is how long one piece of
// its work (Begin to end) may take before the process counts as stuck; it
// must exceed every deadline that piece of work runs under.
func (m *Monitor) Loop(name string, stuckAfter time.Duration) *Loop {
	l := &Loop{m: m, name: name, stuckAfter: stuckAfter, busy: map[uint64]time.Time{}}
	m.mu.Lock()
	m.loops = append(m.loops, l)
	m.mu.Unlock()
	return l
}

// Report makes the process unready, naming err, for the next hold: a
// condition that is reported again while it lasts (a key still missing)
// keeps the process unready until it stops being reported.
func (m *Monitor) Report(name string, err error, hold time.Duration) {
	m.mu.Lock()
	m.conditions[name] = condition{err: err, until: m.now().Add(hold)}
	m.mu.Unlock()
}

// Live is nil unless a loop has exited or one piece of work has run longer
// than its loop allows. A loop that is backing off on a dependency is
// alive: restarting the process would not bring the dependency back.
func (m *Monitor) Live() error {
	m.mu.Lock()
	loops := append([]*Loop(nil), m.loops...)
	m.mu.Unlock()
	now := m.now()
	var errs []error
	for _, l := range loops {
		l.mu.Lock()
		if l.exited {
			errs = append(errs, fmt.Errorf("%s exited: %v", l.name, l.exitErr))
		}
		for _, since := range l.busy {
			if d := now.Sub(since); d > l.stuckAfter {
				errs = append(errs, fmt.Errorf("%s stuck in one piece of work for %v", l.name, d.Round(time.Second)))
				break
			}
		}
		l.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Ready is nil unless a loop is waiting for a dependency or a condition was
// reported within its hold. The reasons are sorted, so the answer is stable.
func (m *Monitor) Ready() error {
	m.mu.Lock()
	loops := append([]*Loop(nil), m.loops...)
	now := m.now()
	var reasons []string
	for name, c := range m.conditions {
		if now.Before(c.until) {
			reasons = append(reasons, fmt.Sprintf("%s: %v", name, c.err))
		} else {
			delete(m.conditions, name)
		}
	}
	m.mu.Unlock()
	for _, l := range loops {
		l.mu.Lock()
		if l.waiting != nil && now.Before(l.waitUntil) {
			reasons = append(reasons, fmt.Sprintf("%s: %v", l.name, l.waiting))
		}
		l.mu.Unlock()
	}
	if len(reasons) == 0 {
		return nil
	}
	sort.Strings(reasons)
	errs := make([]error, len(reasons))
	for i, r := range reasons {
		errs[i] = errors.New(r)
	}
	return errors.Join(errs...)
}

// Loop is one long-running loop of the process. A nil *Loop does nothing,
// so code that runs without a monitor (tests, tools) needs no checks.
type Loop struct {
	m          *Monitor
	name       string
	stuckAfter time.Duration

	mu        sync.Mutex
	busy      map[uint64]time.Time
	next      uint64
	waiting   error
	waitUntil time.Time
	exited    bool
	exitErr   error
}

// Begin marks the start of one piece of work (one message handled, one
// batch relayed) and returns the func that marks its end. Pieces of work of
// one loop may overlap (lanes).
func (l *Loop) Begin() (end func()) {
	if l == nil {
		return func() {}
	}
	l.mu.Lock()
	id := l.next
	l.next++
	l.busy[id] = l.m.now()
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.busy, id)
		l.mu.Unlock()
	}
}

// WaitHold is how long one Waiting keeps the process unready. A loop
// that keeps failing reports each failure (kafka-go's readers report one
// every second or two while a broker is away), so it stays unready; one
// that recovered without a sign of it (a reader with nothing to read since
// the broker came back) turns ready again after this, or at once on
// Recovered. The readiness checks also ping the dependencies themselves.
const WaitHold = 5 * time.Second

// Waiting says the loop is backing off because of err (a broker or the
// database unreachable): the process is unready for WaitHold, or until
// Recovered.
func (l *Loop) Waiting(err error) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.waiting, l.waitUntil = err, l.m.now().Add(WaitHold)
	l.mu.Unlock()
}

// Recovered clears Waiting.
func (l *Loop) Recovered() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.waiting = nil
	l.mu.Unlock()
}

// Exited records that the loop returned. Unless the process is stopping,
// it then fails liveness: a loop that died does no more work.
func (l *Loop) Exited(err error) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.exited, l.exitErr = true, err
	l.mu.Unlock()
}
