package pinreset

import (
	"fmt"
	"time"
)

// EventType is the CloudEvents type of a member event on password.events.
type EventType string

const (
	// EventPINSet: the member's PIN was set; Kind says by a reset or a change.
	EventPINSet EventType = "com.kmwallet.pinreset.password.changed"
	// EventLocked: too many wrong PINs; the PIN is locked until LockedUntil.
	EventLocked EventType = "com.kmwallet.pinreset.password.locked"
	// EventUnlocked: a lock ended (At is when it ended). It is recorded by the
	// first command for the member after the lock's end, so it can come late.
	EventUnlocked EventType = "com.kmwallet.pinreset.password.unlocked"
)

// Event is a domain event of a member. It carries ids and times only: never
// a PIN, hash, CI or loginId.
type Event struct {
	// ID is "<member id>:<version>:<n>": stable, so a re-published event
	// keeps its id and consumers can drop duplicates.
	ID   string
	Type EventType
	// Version is the member's version the event's decision committed: a
	// member's events are first published in version order, and a
	// consumer orders and de-duplicates them by it.
	Version       int64
	MemberID      string
	ASPID         string
	CorrelationID string
	Kind          Kind      // for EventPINSet
	At            time.Time // when it happened
	LockedUntil   time.Time // for EventLocked
	// Unlocked, for EventPINSet: the set was a reset of a locked PIN, which
	// it unlocked (a reset is the way out of a lock). No password.unlocked
	// event is sent for that unlock: this event is it.
	Unlocked bool
}

// stamp gives events their ids and the member and command they belong to.
func (m *Member) stamp(events []Event, cmd Command) []Event {
	for i := range events {
		events[i].ID = fmt.Sprintf("%s:%d:%d", m.ID, m.Version, i)
		events[i].Version = m.Version
		events[i].MemberID, events[i].ASPID, events[i].CorrelationID = m.ID, m.ASPID, cmd.CorrelationID
		events[i].At = events[i].At.UTC()
	}
	return events
}
