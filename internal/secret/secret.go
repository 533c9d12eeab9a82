// Package secret provides the field types for values that must never be
// printed (PINs, keys, MACs, credentials): they format as a marker in every
// path that prints a value, so a struct whose secret fields have these types
// needs no redaction methods of its own.
//
// A String or Bytes prints as "[redacted]", or "[unset]" when empty, under
// every fmt verb (%v %+v %#v %s %q %x %d ...), through log/slog (LogValue),
// zap (zap.Any takes the fmt.Stringer path; zap.Reflect and the slog JSON
// handler use encoding/json) and encoding/json (MarshalJSON). Reading the
// value is an explicit conversion, string(s) or []byte(b), easy to grep for;
// code that must put a secret on the wire (the sealed command body, an HTTP
// header) converts it into its own plain field.
//
// Two types because Go cannot declare one generic type over both string
// and []byte; they share one implementation. A []byte is assignable to
// Bytes, so a struct field can change from []byte to Bytes without its
// users changing; string and String need a conversion.
//
// The protection holds for exported fields only: fmt prints unexported
// fields by reflection, without calling their methods, so a type that keeps
// a secret in an unexported field still needs a Format of its own.
package secret

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// The markers printed in place of a secret. Telling "set" from "unset" is
// kept because it is what a reader of a log needs (was a current PIN sent?)
// and it says nothing about the value.
const (
	Redacted = "[redacted]"
	Unset    = "[unset]"
)

// String is a secret text value.
type String string

// Bytes is a secret binary value.
type Bytes []byte

func marker(empty bool) string {
	if empty {
		return Unset
	}
	return Redacted
}

// format writes the marker for every verb; %q quotes it, as it would quote
// a string, so a line formatted with %q still parses as Go.
func format(f fmt.State, verb rune, empty bool) {
	m := marker(empty)
	if verb == 'q' {
		m = strconv.Quote(m)
	}
	_, _ = io.WriteString(f, m)
}

func marshalJSON(empty bool) ([]byte, error) { return json.Marshal(marker(empty)) }

// String returns the marker, never the value.
func (s String) String() string { return marker(s == "") }

// GoString returns the marker, for a direct call; fmt's %#v goes to Format.
func (s String) GoString() string { return s.String() }

// Format writes the marker for every fmt verb.
func (s String) Format(f fmt.State, verb rune) { format(f, verb, s == "") }

// LogValue returns the marker for log/slog.
func (s String) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON returns the marker as a JSON string.
func (s String) MarshalJSON() ([]byte, error) { return marshalJSON(s == "") }

// String returns the marker, never the value.
func (b Bytes) String() string { return marker(len(b) == 0) }

// GoString returns the marker, for a direct call; fmt's %#v goes to Format.
func (b Bytes) GoString() string { return b.String() }

// Format writes the marker for every fmt verb.
func (b Bytes) Format(f fmt.State, verb rune) { format(f, verb, len(b) == 0) }

// LogValue returns the marker for log/slog: without it slog's text handler
// would print any byte slice as a quoted string.
func (b Bytes) LogValue() slog.Value { return slog.StringValue(b.String()) }

// MarshalJSON returns the marker as a JSON string (not the base64 of the
// value, which encoding/json writes for a plain []byte).
func (b Bytes) MarshalJSON() ([]byte, error) { return marshalJSON(len(b) == 0) }
