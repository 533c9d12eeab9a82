package pinreset

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
	"unicode/utf8"
)

// Kind says whether a command is a reset (no old PIN) or a change (old PIN verified).
type Kind string

const (
	KindReset  Kind = "reset"
	KindChange Kind = "change"
	// KindStatus asks for the outcome of an earlier command with the same
	// correlation id (GET .../reset/{correlationId}). It changes nothing and
	// carries no secrets. Keyed like the command it asks about, it lands on
	// the same partition behind it, so it is answered after that command.
	KindStatus Kind = "status"
)

// Command is one PIN command as the worker decides it, secrets in clear.
// It exists in this form only in memory: on Kafka its secret fields are sealed.
type Command struct {
	CorrelationID string
	// RequestID names one HTTP request; its result carries it back, so that
	// two requests with the same correlation id (a retry, or a reuse with
	// another body) each get their own answer.
	RequestID  string
	ASPID      string
	Kind       Kind
	LoginID    string
	CI         string // empty when the request gave none
	CurrentPIN string // empty for a reset
	NewPIN     string
	AcceptedAt time.Time // when the ingress accepted it
	ExpiresAt  time.Time // a worker past this time records CodeExpired instead of applying it
	// AttemptKeys are keyed fingerprints of AttemptContent (the
	// currentPassword tried, scoped to the member), one under each
	// fingerprint key, the current key's first; the worker sets them before
	// deciding a change. A wrong attempt the member remembers under one of
	// them is answered without hashing and not counted again (a replayed
	// request cannot lock the member out); a new one is remembered under the
	// first. Empty: always verified and counted.
	AttemptKeys []string
	// NewPINKeys are the same fingerprints of newPassword as a
	// currentPassword would be (NewPINAttemptContent): a set forgets the
	// remembered wrong attempts of the PIN it sets, which is no longer wrong.
	NewPINKeys []string
	// ContentKeys are keyed fingerprints of Content, one under each
	// fingerprint key, the current key's first; the worker sets them before
	// deciding. The first is the outcome's fingerprint; a PIN set claims
	// it against replays (Member.Sets).
	ContentKeys []string
	// Auth is the tran token scheme that authenticated the request (empty
	// means SchemeKMV1). The worker skips the content replay rule for KMV2.
	Auth Scheme
}

// NewCommand builds the command for an accepted request.
func NewCommand(correlationID, requestID, aspID string, r Request, acceptedAt time.Time, ttl time.Duration) Command {
	c := Command{
		CorrelationID: correlationID,
		RequestID:     requestID,
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

// NewStatusQuery builds the query for the outcome of correlationID.
func NewStatusQuery(correlationID, requestID, aspID string, at time.Time, ttl time.Duration) Command {
	return Command{CorrelationID: correlationID, RequestID: requestID, ASPID: aspID, Kind: KindStatus,
		AcceptedAt: at.UTC(), ExpiresAt: at.Add(ttl).UTC()}
}

// Content is the canonical encoding of what the request asked for: the same
// request sent twice has the same content, any change of ASP, kind, member or
// PIN changes it. (Times and ids are not content.) It holds secrets: only a
// keyed fingerprint of it is ever stored.
func (c Command) Content() []byte {
	cur := c.CurrentPIN
	if c.Kind == KindReset {
		cur = "" // ignored for a reset, so not part of what was asked
	}
	return canonical(c.ASPID, string(c.Kind), c.LoginID, c.CI, cur, c.NewPIN)
}

// AttemptContent is what AttemptKeys fingerprint: the currentPassword
// tried, scoped to the member, so the same wrong PIN of two members
// differs. It must hold the PIN: two wrong PINs must be told apart.
func (c Command) AttemptContent() []byte {
	return canonical("attempt", c.ASPID, c.LoginID, c.CurrentPIN)
}

// NewPINAttemptContent is AttemptContent for newPassword, as if it were the
// currentPassword tried: what NewPINKeys fingerprint.
func (c Command) NewPINAttemptContent() []byte {
	return canonical("attempt", c.ASPID, c.LoginID, c.NewPIN)
}

// canonical length-prefixes each field, so no two field lists encode alike.
func canonical(fields ...string) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, byte(len(f)>>8), byte(len(f)))
		b = append(b, f...)
	}
	return b
}

// Expired reports whether the command must not be applied any more at now.
func (c Command) Expired(now time.Time) bool { return !c.ExpiresAt.IsZero() && now.After(c.ExpiresAt) }

// String redacts the secret fields, so an accidental %v in a log leaks nothing.
func (c Command) String() string {
	return "Command{" + c.CorrelationID + " " + c.ASPID + " " + string(c.Kind) + "}"
}

// GoString redacts like String.
func (c Command) GoString() string { return c.String() }

// Format makes every fmt verb (%d and %x too, which skip String) redact.
func (c Command) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue redacts for log/slog.
func (c Command) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON redacts, so json.Marshal or a reflecting logger cannot leak:
// the wire format is written by package wire, never by marshalling a Command.
func (c Command) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// Result is the outcome of one command, as published on password.results and
// returned to the client.
type Result struct {
	CorrelationID string    `json:"correlationId"`
	RequestID     string    `json:"requestId,omitempty"`
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
		RequestID:     cmd.RequestID,
		ASPID:         cmd.ASPID,
		Code:          code,
		Message:       code.Message(),
		MemberID:      memberID,
		CompletedAt:   at.UTC(),
	}
}

// CheckSecrets checks the sealed fields of a command (loginId, CI, PINs) by
// the rules ParseRequest applies to a request body, so that the worker
// refuses what the ingress would never have sealed (a holder of the seal
// key writing commands by hand) with the same rules, kept in one place. The
// error names the field, never its value.
func (c Command) CheckSecrets() error {
	switch {
	case c.LoginID == "" || utf8.RuneCountInString(c.LoginID) > loginIDMaxLen || !isEmail(c.LoginID):
		return errors.New("bad loginId")
	case c.CI != "" && (utf8.RuneCountInString(c.CI) != ciLen || !isBase64Chars(c.CI)):
		return errors.New("bad ci")
	case !IsPIN(c.NewPIN):
		return errors.New("bad newPassword")
	case c.Kind == KindChange && !IsPIN(c.CurrentPIN):
		return errors.New("bad currentPassword")
	}
	return nil
}
