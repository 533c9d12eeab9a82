package events

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestUnlockedIsInTheDataOfAResetThatUnlocked: a password.changed event of
// a reset that unlocked the PIN says so in its data; every other event has
// no unlocked field at all.
func TestUnlockedIsInTheDataOfAResetThatUnlocked(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		rule string
		ev   pinreset.Event
		want any // the data's "unlocked": true, or nil for absent
	}{
		{"a reset that unlocked says unlocked: true", pinreset.Event{Type: pinreset.EventPINSet, Kind: pinreset.KindReset, Unlocked: true}, true},
		{"a reset of an unlocked PIN has no unlocked", pinreset.Event{Type: pinreset.EventPINSet, Kind: pinreset.KindReset}, nil},
		{"a change has no unlocked", pinreset.Event{Type: pinreset.EventPINSet, Kind: pinreset.KindChange}, nil},
		{"a lock has no unlocked", pinreset.Event{Type: pinreset.EventLocked, LockedUntil: at.Add(time.Minute)}, nil},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			e := tc.ev
			e.ID, e.Version, e.MemberID, e.ASPID, e.CorrelationID, e.At = "m1:8:0", 8, "m1", "KMTESTASP000001", "261201090000-0000001", at
			m, err := Message(e)
			if err != nil {
				t.Fatal(err)
			}
			var d map[string]any
			if err := json.Unmarshal(m.Value, &d); err != nil {
				t.Fatal(err)
			}
			if got := d["unlocked"]; got != tc.want {
				t.Errorf("data %s: unlocked = %v, want %v", m.Value, got, tc.want)
			}
		})
	}
}
