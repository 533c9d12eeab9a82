// Package pinreset holds the domain of the member PIN reset and change
// service: the outcome code catalogue, the command and result types, and the
// rules that decide a command against a member. It imports no infrastructure.
package pinreset

import (
	"errors"
	"fmt"
)

// Code is a stable outcome code of the public API ("000_000", "001_006", ...).
// Every outcome the service can give is one Code of the catalogue below.
type Code string

// The codes of SPEC section 2.
const (
	CodeSuccess         Code = "000_000"
	CodeInvalidInput    Code = "000_002"
	CodeMissing         Code = "000_003"
	CodeLength          Code = "000_015"
	CodeUserNotFound    Code = "001_006"
	CodeInvalidUserInfo Code = "001_035"
	CodeSamePIN         Code = "001_043"
)

// The codes this project adds (documented in README.md and schemas/openapi.yaml).
const (
	// CodeUnauthorized: unknown ASP, wrong access key, bad or stale tran
	// token. Deliberately one code: the client learns nothing of which part failed.
	CodeUnauthorized Code = "000_401"
	// CodeTooLarge: the request body is over the configured limit.
	CodeTooLarge Code = "000_413"
	// CodeCorrelationReused: the correlation id was already used with a different body.
	CodeCorrelationReused Code = "000_409"
	// CodeAccepted: the command was accepted but its outcome is not known yet.
	CodeAccepted Code = "000_202"
	// CodeNotFound: no transaction with that correlation id is known.
	CodeNotFound Code = "000_404"
	// CodeExpired: the command was not applied because it expired before a worker reached it.
	CodeExpired Code = "000_408"
	// CodeRejected: the command could not be decoded or opened by the worker (sent to the DLQ).
	CodeRejected Code = "000_422"
	// CodeUnavailable: a dependency (Kafka, MongoDB) is unavailable; retry later with the same correlation id.
	CodeUnavailable Code = "000_503"
	// CodeInternal: anything unexpected; details go to the log only.
	CodeInternal Code = "000_500"
	// CodeAttemptsExceeded: too many wrong currentPassword attempts; while
	// the PIN is locked every change answers this, and a reset is the way
	// out. The platform's own PIN verification answers exceeded attempts
	// with this code; it replaces this service's former 001_423 (HTTP 423),
	// see RetiredCodes.
	CodeAttemptsExceeded Code = "001_069"
	// CodeTooManyRequests: the ingress refused a burst of commands for one
	// member or one ASP before publishing it (token buckets); retry after
	// the Retry-After header's seconds. The worker answers it too, without
	// changing anything, for a KMV1 set of a member that already has
	// Rules.MaxSetClaims replay claims inside the replay window.
	CodeTooManyRequests Code = "000_429"
	// CodeWeakPIN: newPassword breaks the PIN policy (three identical or consecutive digits).
	CodeWeakPIN Code = "001_044"
	// CodeUnsupportedMediaType: Content-Type is not application/json (or application/jose when encrypted).
	CodeUnsupportedMediaType Code = "000_415"
	// CodeUnknownCryptoKey: X-KM-Crypto-Key-Id names no key of the server.
	CodeUnknownCryptoKey Code = "000_030"
	// CodeUndecryptable: the JWE body could not be decrypted.
	CodeUndecryptable Code = "000_031"
	// CodeDuplicateRequest: the same request content (same ASP, member, kind
	// and PINs) was already decided under another correlation id within the
	// replay window: a replay, and nothing is applied.
	CodeDuplicateRequest Code = "001_409"
)

var messages = map[Code]string{
	CodeSuccess:              "Success.",
	CodeInvalidInput:         "Invalid input value.",
	CodeMissing:              "Missing required values.",
	CodeLength:               "The length of value does not match.",
	CodeUserNotFound:         "Wallet user not found.",
	CodeInvalidUserInfo:      "Invalid user info",
	CodeSamePIN:              "New wallet pin is identical to the old wallet pin.",
	CodeUnauthorized:         "Authentication failed.",
	CodeTooLarge:             "Request too large.",
	CodeCorrelationReused:    "Correlation id already used with a different request.",
	CodeAccepted:             "Accepted; the result is not known yet.",
	CodeNotFound:             "Transaction not found.",
	CodeExpired:              "Command expired before it was applied.",
	CodeRejected:             "Command could not be processed.",
	CodeUnavailable:          "Service temporarily unavailable.",
	CodeInternal:             "Internal error.",
	CodeAttemptsExceeded:     "PIN attempts exceeded. Reset the wallet PIN.",
	CodeTooManyRequests:      "Too many requests. Try again later.",
	CodeWeakPIN:              "New wallet pin is too easy to guess.",
	CodeUnsupportedMediaType: "Unsupported content type.",
	CodeUnknownCryptoKey:     "Unknown crypto key id.",
	CodeUndecryptable:        "Message could not be decrypted.",
	CodeDuplicateRequest:     "Duplicate of an earlier request; nothing was changed.",
}

// RetiredCodes maps each code the service answered once and answers no
// more to the code that took its place, so that the documentation can say
// what became of it. A retired code is never reused for anything else.
func RetiredCodes() map[Code]Code {
	return map[Code]Code{"001_423": CodeAttemptsExceeded}
}

// Codes returns every code of the catalogue, for documentation checks.
func Codes() []Code {
	out := make([]Code, 0, len(messages))
	for c := range messages {
		out = append(out, c)
	}
	return out
}

// Known reports whether c is a code of the catalogue.
func (c Code) Known() bool { _, ok := messages[c]; return ok }

// Message is the catalogue's human message for c.
func (c Code) Message() string {
	if m, ok := messages[c]; ok {
		return m
	}
	return messages[CodeInternal]
}

// Error is an application error: a catalogue code and, for input errors, the
// name of the offending header or field. Its text is safe to show a client.
type Error struct {
	Code  Code
	Field string // header or body field name, for 000_002/000_003/000_015
}

// Errorf is shorthand for &Error{Code: code, Field: field}.
func Errorf(code Code, field string) *Error { return &Error{Code: code, Field: field} }

func (e *Error) Error() string { return e.Message() }

// Message is the client-facing message: the catalogue message, followed by
// the field name for input errors ("Invalid input value. loginId").
func (e *Error) Message() string {
	if e.Field == "" {
		return e.Code.Message()
	}
	return fmt.Sprintf("%s %s", e.Code.Message(), e.Field)
}

// ErrorCode returns the code of an application error in err's chain, or
// CodeInternal for any other non-nil error, or CodeSuccess for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return CodeSuccess
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-facing message of err: the application
// error's message, or the generic internal message for anything else.
func ErrorMessage(err error) string {
	if err == nil {
		return CodeSuccess.Message()
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message()
	}
	return CodeInternal.Message()
}
