package pinreset

import (
	"time"
)

// Kind says whether a command is a reset (no old PIN) or a change (old PIN verified).
type Kind string

const (
	KindReset  Kind = "reset"
	KindChange Kind = "change"
)

// Command is one PIN command as the worker decides it, secrets in clear.
// It exists in this form only in memory: on Kafka its secret fields are sealed.
type Command struct {
	CorrelationID string
	ASPID         string
	Kind          Kind
	LoginID       string
	CI            string // empty when the request gave none
	CurrentPIN    string // empty for a reset
	NewPIN        string
	AcceptedAt    time.Time // when the ingress accepted it
	ExpiresAt     time.Time // a worker past this time records CodeExpired instead of applying it
}

// NewCommand builds the command for an accepted request.
func NewCommand(correlationID, aspID string, r Request, acceptedAt time.Time, ttl time.Duration) Command {
	c := Command{
		CorrelationID: correlationID,
		ASPID:         aspID,
		Kind:          KindChange,
		LoginID:       r.LoginID,
		CI:            r.CI,
		CurrentPIN:    r.CurrentPIN,
		NewPIN:        r.NewPIN,
		AcceptedAt:    acceptedAt.UTC(),
		ExpiresAt:     acceptedAt.Add(ttl).UTC(),
	}
	if r.Reset {
		c.Kind = KindReset
		c.CurrentPIN = ""
	}
	return c
}

// Expired reports whether the command must not be applied any more at now.
func (c Command) Expired(now time.Time) bool { return !c.ExpiresAt.IsZero() && now.After(c.ExpiresAt) }

// String redacts the secret fields, so an accidental %v in a log leaks nothing.
func (c Command) String() string {
	return "Command{" + c.CorrelationID + " " + c.ASPID + " " + string(c.Kind) + "}"
}

// GoString redacts like String.
func (c Command) GoString() string { return c.String() }

// Result is the outcome of one command, as published on password.results and
// returned to the client.
type Result struct {
	CorrelationID string    `json:"correlationId"`
	ASPID         string    `json:"aspId"`
	Code          Code      `json:"code"`
	Message       string    `json:"message"`
	MemberID      string    `json:"memberId,omitempty"`
	CompletedAt   time.Time `json:"completedAt"`
}

// NewResult makes the result of cmd with code.
func NewResult(cmd Command, code Code, memberID string, at time.Time) Result {
	return Result{
		CorrelationID: cmd.CorrelationID,
		ASPID:         cmd.ASPID,
		Code:          code,
		Message:       code.Message(),
		MemberID:      memberID,
		CompletedAt:   at.UTC(),
	}
}
