package waitfor

import (
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	start, n := time.Now(), 0
	if !Until(10*time.Second, func() bool { n++; return n == 3 }) {
		t.Fatal("Until = false for a condition that came to hold")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v for a condition true at the third check", took)
	}
}

func TestUntilGivesUpAtTheDeadline(t *testing.T) {
	start, n := time.Now(), 0
	if Until(200*time.Millisecond, func() bool { n++; return false }) {
		t.Fatal("Until = true for a condition that never holds")
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("gave up after %v, before the deadline", took)
	}
	if n < 2 {
		t.Errorf("checked %d times in 200 ms, want the condition polled", n)
	}
}
