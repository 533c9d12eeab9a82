package pinreset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/kmwallet/pinreset/internal/secret"
)

// The body field names of SPEC section 2; they are the Field of the errors
// ParseRequest returns.
const (
	FieldLoginID    = "loginId"
	FieldCI         = "ci"
	FieldCurrentPIN = "currentPassword"
	FieldNewPIN     = "newPassword"
	FieldReset      = "isResetPassword"
	// FieldBody is the Field of errors about the body as a whole.
	FieldBody = "body"
)

// The lengths of SPEC section 2, in characters.
const (
	loginIDMaxLen = 80
	ciLen         = 88
	pinLen        = 6
)

// Request is the decoded and checked body of a PIN reset or change request.
// Its String, GoString, Format and LogValue redact it, because it holds PINs.
type Request struct {
	LoginID    string
	CI         string // empty when the request gave none
	CurrentPIN string // empty for a reset
	NewPIN     string
	Reset      bool
}

// field is one body field as sent: absent, null, or the raw JSON value.
type field struct {
	present bool // the key was in the object
	raw     json.RawMessage
}

func (f field) null() bool { return !f.present || string(f.raw) == "null" }

// str decodes f as a JSON string. ok is false when the value is not a string,
// or when it is not valid text: invalid UTF-8 or an escaped lone surrogate,
// which encoding/json would silently turn into U+FFFD.
func (f field) str() (s string, ok bool) {
	if len(f.raw) == 0 || f.raw[0] != '"' || !utf8.Valid(f.raw) {
		return "", false
	}
	if err := json.Unmarshal(f.raw, &s); err != nil || strings.ContainsRune(s, utf8.RuneError) {
		return "", false
	}
	return s, true
}

// ParseRequest decodes and checks a request body (SPEC section 2):
//
//	{"loginId", "ci", "currentPassword", "newPassword", "isResetPassword"}
//
// A body that is not one JSON object, or has anything but white space after
// it, or names a known field twice (which value counts would depend on the
// parser) is CodeInvalidInput for "body", before anything else. Unknown
// fields are ignored, and keys match exactly ("LoginId" is unknown).
//
// The fields are then checked in three passes, in the order loginId, ci,
// currentPassword, newPassword, isResetPassword, and the first failure is
// returned with the field's JSON name: presence (a required field missing,
// null or empty: CodeMissing), then length (CodeLength), then format
// (CodeInvalidInput; a value of the wrong JSON type is a format error).
//
// currentPassword is ignored entirely when isResetPassword is true. When
// isResetPassword is of the wrong type it is unknown whether currentPassword
// is needed, so currentPassword is not checked and the request fails on
// isResetPassword in the format pass: the client is told the real mistake.
//
// No error text ever contains a value of the body.
func ParseRequest(body []byte) (Request, error) {
	fields, err := decodeObject(body)
	if err != nil {
		return Request{}, err
	}
	loginID, ci, cur, next, reset := fields[0], fields[1], fields[2], fields[3], fields[4]

	// isResetPassword decides whether currentPassword is checked at all.
	resetOK := true
	var r Request
	if !reset.null() {
		resetOK = json.Unmarshal(reset.raw, &r.Reset) == nil
	}
	checkCur := resetOK && !r.Reset

	// The string values; ok false means a wrong type or invalid text, which
	// the format pass reports.
	loginS, loginOK := loginID.str()
	ciS, ciOK := ci.str()
	curS, curOK := cur.str()
	nextS, nextOK := next.str()

	// Presence. A wrong-typed value is present; its type is a format error.
	missing := func(f field, s string, ok bool) bool { return f.null() || (ok && s == "") }
	switch {
	case missing(loginID, loginS, loginOK):
		return Request{}, Errorf(CodeMissing, FieldLoginID)
	case checkCur && missing(cur, curS, curOK):
		return Request{}, Errorf(CodeMissing, FieldCurrentPIN)
	case missing(next, nextS, nextOK):
		return Request{}, Errorf(CodeMissing, FieldNewPIN)
	}

	// Length, of the values that are strings. An empty ci is given but of
	// the wrong length: only absent or null means "not given".
	runes := utf8.RuneCountInString
	switch {
	case loginOK && runes(loginS) > loginIDMaxLen:
		return Request{}, Errorf(CodeLength, FieldLoginID)
	case !ci.null() && ciOK && runes(ciS) != ciLen:
		return Request{}, Errorf(CodeLength, FieldCI)
	case checkCur && curOK && runes(curS) != pinLen:
		return Request{}, Errorf(CodeLength, FieldCurrentPIN)
	case nextOK && runes(nextS) != pinLen:
		return Request{}, Errorf(CodeLength, FieldNewPIN)
	}

	// Format.
	switch {
	case !loginOK || !isEmail(loginS):
		return Request{}, Errorf(CodeInvalidInput, FieldLoginID)
	case !ci.null() && (!ciOK || !isBase64Chars(ciS)):
		return Request{}, Errorf(CodeInvalidInput, FieldCI)
	case checkCur && (!curOK || !IsPIN(curS)):
		return Request{}, Errorf(CodeInvalidInput, FieldCurrentPIN)
	case !nextOK || !IsPIN(nextS):
		return Request{}, Errorf(CodeInvalidInput, FieldNewPIN)
	case !resetOK:
		return Request{}, Errorf(CodeInvalidInput, FieldReset)
	}

	r.LoginID, r.NewPIN = loginS, nextS
	if !ci.null() {
		r.CI = ciS
	}
	if checkCur {
		r.CurrentPIN = curS
	}
	return r, nil
}

// decodeObject reads body as exactly one JSON object and returns its known
// fields in the order loginId, ci, currentPassword, newPassword,
// isResetPassword. It walks the tokens itself, rather than unmarshalling into
// a struct, to see duplicate keys and to match keys exactly.
func decodeObject(body []byte) ([5]field, error) {
	var fields [5]field
	bad := Errorf(CodeInvalidInput, FieldBody)
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fields, bad
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fields, bad
		}
		key, _ := tok.(string) // in key position the decoder yields only strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fields, bad
		}
		i := fieldIndex(key)
		if i < 0 {
			continue
		}
		if fields[i].present {
			return fields, bad
		}
		fields[i] = field{present: true, raw: raw}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return fields, bad
	}
	if _, err := dec.Token(); err != io.EOF {
		return fields, bad
	}
	return fields, nil
}

func fieldIndex(key string) int {
	switch key {
	case FieldLoginID:
		return 0
	case FieldCI:
		return 1
	case FieldCurrentPIN:
		return 2
	case FieldNewPIN:
		return 3
	case FieldReset:
		return 4
	}
	return -1
}

// isEmail accepts a bare RFC 5322 addr-spec as net/mail reads it, and only
// when net/mail reads it back unchanged: no display name, no <angle
// brackets>, no comments, no quoting, no surrounding space. Domain literals
// (user@[192.0.2.1]) are refused too; no member logs in with one, and the
// brackets are one more spelling of the same address.
func isEmail(s string) bool {
	if strings.Count(s, "@") != 1 || strings.ContainsAny(s, "[]") {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

// isBase64Chars is the standard base64 alphabet with padding, ASCII only.
func isBase64Chars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// IsPIN reports whether s is a PIN: exactly six ASCII digits. Other scripts' digits (Arabic-Indic
// "٠١٢٣٤٥") are six characters too, but not a PIN the keypad can type.
func IsPIN(s string) bool {
	if len(s) != pinLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// PINPolicy is the guessable-PIN rule of SPEC section 4. The zero value
// refuses nothing; the service enables it by default.
type PINPolicy struct {
	// Enabled refuses PINs with three identical digits in a row (111246) or
	// three consecutive digits, ascending or descending (123246, 987012).
	Enabled bool
}

// Check returns CodeWeakPIN for newPassword when the policy is enabled and
// pin breaks it. Consecutive means the next digit by value, without wrapping
// round: 8-9-0 and 0-9-8 are not runs. Only ASCII digits form runs; pin is
// expected to have passed ParseRequest already.
func (p PINPolicy) Check(pin string) error {
	if !p.Enabled {
		return nil
	}
	for i := 2; i < len(pin); i++ {
		a, b, c := pin[i-2], pin[i-1], pin[i]
		if !isDigit(a) || !isDigit(b) || !isDigit(c) {
			continue
		}
		d1, d2 := int(b)-int(a), int(c)-int(b)
		if d1 == d2 && (d1 == 0 || d1 == 1 || d1 == -1) {
			return Errorf(CodeWeakPIN, FieldNewPIN)
		}
	}
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// String redacts: the login id shows only its domain and its length, and the
// CI and PINs only whether they are set, so that an accidental %v in a log
// leaks nothing that identifies or authenticates a member.
func (r Request) String() string {
	domain := "?"
	if i := strings.LastIndexByte(r.LoginID, '@'); i >= 0 {
		domain = r.LoginID[i+1:]
	}
	return fmt.Sprintf("pinreset.Request{loginId:*@%q(%d chars) ci:%s currentPassword:%s newPassword:%s isResetPassword:%t}",
		domain, utf8.RuneCountInString(r.LoginID), secret.String(r.CI), secret.String(r.CurrentPIN), secret.String(r.NewPIN), r.Reset)
}

// GoString redacts like String, for %#v.
func (r Request) GoString() string { return r.String() }

// Format sends every verb through String: without it %d or %x would print
// the fields, PINs included, as plain strings.
func (r Request) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, r.String()) }

// LogValue redacts for log/slog, whose JSON handler would otherwise print the
// exported fields.
func (r Request) LogValue() slog.Value { return slog.StringValue(r.String()) }
