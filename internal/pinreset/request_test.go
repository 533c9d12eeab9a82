package pinreset_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

const (
	testLogin  = "member.one@example.com"
	testCurPIN = "135790"
	testNewPIN = "246813"
)

// testCI is 88 characters of the base64 alphabet, the size of a real CI.
var testCI = strings.Repeat("AbC+/9", 14) + "xy=="

// body returns a valid change request with edits applied: a value of
// omit deletes the key; a json.RawMessage is written as is (null, numbers,
// broken text).
func body(t testing.TB, edits map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"loginId":         testLogin,
		"ci":              testCI,
		"currentPassword": testCurPIN,
		"newPassword":     testNewPIN,
		"isResetPassword": false,
	}
	for k, v := range edits {
		if v == omit {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal test body: %v", err)
	}
	return b
}

type omitted struct{}

var omit = omitted{}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func wantError(t *testing.T, err error, code pinreset.Code, field string) {
	t.Helper()
	var e *pinreset.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want %s %s", err, code, field)
	}
	if e.Code != code || e.Field != field {
		t.Fatalf("error = %s %q, want %s %q", e.Code, e.Field, code, field)
	}
}

func TestParseRequestAccepts(t *testing.T) {
	email80 := strings.Repeat("a", 68) + "@example.com"
	for _, tc := range []struct {
		rule string
		body []byte
		want pinreset.Request
	}{
		{"a change", body(t, nil),
			pinreset.Request{LoginID: testLogin, CI: testCI, CurrentPIN: testCurPIN, NewPIN: testNewPIN}},
		{"a reset needs no currentPassword", body(t, map[string]any{"isResetPassword": true, "currentPassword": omit}),
			pinreset.Request{LoginID: testLogin, CI: testCI, NewPIN: testNewPIN, Reset: true}},
		{"a reset ignores a malformed currentPassword", body(t, map[string]any{"isResetPassword": true, "currentPassword": "12ab"}),
			pinreset.Request{LoginID: testLogin, CI: testCI, NewPIN: testNewPIN, Reset: true}},
		{"a reset ignores a currentPassword of the wrong type", body(t, map[string]any{"isResetPassword": true, "currentPassword": raw(`{"x":[1]}`)}),
			pinreset.Request{LoginID: testLogin, CI: testCI, NewPIN: testNewPIN, Reset: true}},
		{"a reset ignores a valid currentPassword too", body(t, map[string]any{"isResetPassword": true}),
			pinreset.Request{LoginID: testLogin, CI: testCI, NewPIN: testNewPIN, Reset: true}},
		{"isResetPassword absent is a change", body(t, map[string]any{"isResetPassword": omit}),
			pinreset.Request{LoginID: testLogin, CI: testCI, CurrentPIN: testCurPIN, NewPIN: testNewPIN}},
		{"isResetPassword null is a change", body(t, map[string]any{"isResetPassword": raw("null")}),
			pinreset.Request{LoginID: testLogin, CI: testCI, CurrentPIN: testCurPIN, NewPIN: testNewPIN}},
		{"ci is optional", body(t, map[string]any{"ci": omit}),
			pinreset.Request{LoginID: testLogin, CurrentPIN: testCurPIN, NewPIN: testNewPIN}},
		{"ci null is not given", body(t, map[string]any{"ci": raw("null")}),
			pinreset.Request{LoginID: testLogin, CurrentPIN: testCurPIN, NewPIN: testNewPIN}},
		{"unknown fields are ignored", body(t, map[string]any{"extra": raw(`[1,{"a":null}]`), "LoginId": 5}),
			pinreset.Request{LoginID: testLogin, CI: testCI, CurrentPIN: testCurPIN, NewPIN: testNewPIN}},
		{"loginId of 80 characters", body(t, map[string]any{"loginId": email80}),
			pinreset.Request{LoginID: email80, CI: testCI, CurrentPIN: testCurPIN, NewPIN: testNewPIN}},
		{"white space around the object",
			[]byte(" \n\t{\"loginId\":\"a@b.example\",\"newPassword\":\"000000\",\"currentPassword\":\"999999\"}\r\n "),
			pinreset.Request{LoginID: "a@b.example", CurrentPIN: "999999", NewPIN: "000000"}},
		{"escaped characters decode", []byte(`{"loginId":"a\u0040b.example","newPassword":"\u0030\u0030\u0030\u0030\u0030\u0030","currentPassword":"999999"}`),
			pinreset.Request{LoginID: "a@b.example", CurrentPIN: "999999", NewPIN: "000000"}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			got, err := pinreset.ParseRequest(tc.body)
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if got != tc.want {
				t.Fatalf("ParseRequest = %+v, want %+v", fields(got), fields(tc.want))
			}
		})
	}
}

// fields shows a Request's values in a failure message; Request's own
// formatting redacts them.
func fields(r pinreset.Request) string {
	return fmt.Sprintf("{%q %q %q %q %t}", r.LoginID, r.CI, r.CurrentPIN, r.NewPIN, r.Reset)
}

func TestParseRequestRules(t *testing.T) {
	const (
		missing = pinreset.CodeMissing
		length  = pinreset.CodeLength
		format  = pinreset.CodeInvalidInput
	)
	email81 := strings.Repeat("a", 69) + "@example.com"
	for _, tc := range []struct {
		rule  string
		body  []byte
		code  pinreset.Code
		field string
	}{
		// The body as a whole.
		{"body is not empty", []byte(""), format, "body"},
		{"body is not null", []byte("null"), format, "body"},
		{"body is not an array", []byte(`[{"loginId":"a@b.example"}]`), format, "body"},
		{"body is not a string", []byte(`"{}"`), format, "body"},
		{"body is not truncated", body(t, nil)[:40], format, "body"},
		{"body has no second object", append(body(t, nil), "{}"...), format, "body"},
		{"body has no trailing text", append(body(t, nil), " x"...), format, "body"},
		{"body has no trailing brace", append(body(t, nil), "}"...), format, "body"},
		{"body has no broken value", []byte(`{"loginId":tru,"newPassword":"135790"}`), format, "body"},
		{"body names a field once", []byte(`{"loginId":"a@b.example","newPassword":"135790","newPassword":"246813","currentPassword":"111111"}`), format, "body"},
		{"body names a field once, also escaped", []byte(`{"loginId":"a@b.example","newPassword":"135790","newPasswor\u0064":"246813","currentPassword":"111111"}`), format, "body"},

		// loginId.
		{"loginId is required", body(t, map[string]any{"loginId": omit}), missing, "loginId"},
		{"loginId is not null", body(t, map[string]any{"loginId": raw("null")}), missing, "loginId"},
		{"loginId is not empty", body(t, map[string]any{"loginId": ""}), missing, "loginId"},
		{"loginId is at most 80 characters", body(t, map[string]any{"loginId": email81}), length, "loginId"},
		{"loginId is a string", body(t, map[string]any{"loginId": 12}), format, "loginId"},
		{"loginId is an email address", body(t, map[string]any{"loginId": "member"}), format, "loginId"},
		{"loginId has one @", body(t, map[string]any{"loginId": "a@b@example.com"}), format, "loginId"},
		{"loginId has no display name", body(t, map[string]any{"loginId": "Member <a@example.com>"}), format, "loginId"},
		{"loginId has no angle brackets", body(t, map[string]any{"loginId": "<a@example.com>"}), format, "loginId"},
		{"loginId has no comment", body(t, map[string]any{"loginId": "a@example.com (me)"}), format, "loginId"},
		{"loginId has no quoted local part", body(t, map[string]any{"loginId": `"a b"@example.com`}), format, "loginId"},
		{"loginId has no domain literal", body(t, map[string]any{"loginId": "a@[192.0.2.1]"}), format, "loginId"},
		{"loginId has no surrounding space", body(t, map[string]any{"loginId": " a@example.com"}), format, "loginId"},
		{"loginId has no control characters", body(t, map[string]any{"loginId": "a\u0000@example.com"}), format, "loginId"},
		{"loginId is valid UTF-8", []byte("{\"loginId\":\"a\xff@example.com\",\"currentPassword\":\"135790\",\"newPassword\":\"246813\"}"), format, "loginId"},
		{"loginId has no lone surrogate", []byte(`{"loginId":"a\ud800@example.com","currentPassword":"135790","newPassword":"246813"}`), format, "loginId"},

		// ci.
		{"ci given is not empty", body(t, map[string]any{"ci": ""}), length, "ci"},
		{"ci is 88 characters, not fewer", body(t, map[string]any{"ci": testCI[:87]}), length, "ci"},
		{"ci is 88 characters, not more", body(t, map[string]any{"ci": testCI + "A"}), length, "ci"},
		{"ci is standard base64", body(t, map[string]any{"ci": testCI[:87] + "-"}), format, "ci"},
		{"ci is ASCII", body(t, map[string]any{"ci": testCI[:87] + "é"}), format, "ci"},
		{"ci is a string", body(t, map[string]any{"ci": 88}), format, "ci"},

		// currentPassword, for a change.
		{"currentPassword is required for a change", body(t, map[string]any{"currentPassword": omit}), missing, "currentPassword"},
		{"currentPassword is not null", body(t, map[string]any{"currentPassword": raw("null")}), missing, "currentPassword"},
		{"currentPassword is not empty", body(t, map[string]any{"currentPassword": ""}), missing, "currentPassword"},
		{"currentPassword is 6 characters, not fewer", body(t, map[string]any{"currentPassword": "13579"}), length, "currentPassword"},
		{"currentPassword is 6 characters, not more", body(t, map[string]any{"currentPassword": "1357900"}), length, "currentPassword"},
		{"currentPassword is digits", body(t, map[string]any{"currentPassword": "13579a"}), format, "currentPassword"},
		{"currentPassword is a string", body(t, map[string]any{"currentPassword": 135790}), format, "currentPassword"},
		{"currentPassword is required when isResetPassword is false", body(t, map[string]any{"currentPassword": omit, "isResetPassword": false}), missing, "currentPassword"},

		// newPassword.
		{"newPassword is required", body(t, map[string]any{"newPassword": omit}), missing, "newPassword"},
		{"newPassword is not null", body(t, map[string]any{"newPassword": raw("null")}), missing, "newPassword"},
		{"newPassword is not empty", body(t, map[string]any{"newPassword": ""}), missing, "newPassword"},
		{"newPassword is 6 characters, not fewer", body(t, map[string]any{"newPassword": "24681"}), length, "newPassword"},
		{"newPassword is 6 characters, not more", body(t, map[string]any{"newPassword": "2468135"}), length, "newPassword"},
		{"newPassword is digits", body(t, map[string]any{"newPassword": "24681 "}), format, "newPassword"},
		{"newPassword is ASCII digits", body(t, map[string]any{"newPassword": "٠١٢٣٤٥"}), format, "newPassword"},
		{"newPassword is not full-width digits", body(t, map[string]any{"newPassword": "２４６８１３"}), format, "newPassword"},
		{"newPassword is a string", body(t, map[string]any{"newPassword": 246813}), format, "newPassword"},
		{"newPassword is required for a reset", body(t, map[string]any{"newPassword": omit, "isResetPassword": true}), missing, "newPassword"},

		// isResetPassword.
		{"isResetPassword is a boolean, not a string", body(t, map[string]any{"isResetPassword": "true"}), format, "isResetPassword"},
		{"isResetPassword is a boolean, not a number", body(t, map[string]any{"isResetPassword": 1}), format, "isResetPassword"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			_, err := pinreset.ParseRequest(tc.body)
			wantError(t, err, tc.code, tc.field)
		})
	}
}

// TestParseRequestPrecedence checks that presence beats length beats format
// across all fields, with the body itself first of all.
func TestParseRequestPrecedence(t *testing.T) {
	long := strings.Repeat("a", 80) + "@example.com"
	for _, tc := range []struct {
		rule  string
		body  []byte
		code  pinreset.Code
		field string
	}{
		{"a broken body beats a missing field", []byte(`{"newPassword":"1"`), pinreset.CodeInvalidInput, "body"},
		{"trailing data beats a missing field", []byte(`{} []`), pinreset.CodeInvalidInput, "body"},
		{"a missing field beats an earlier wrong length",
			body(t, map[string]any{"loginId": long, "newPassword": omit}), pinreset.CodeMissing, "newPassword"},
		{"a missing field beats an earlier wrong type",
			body(t, map[string]any{"loginId": 7, "newPassword": raw("null")}), pinreset.CodeMissing, "newPassword"},
		{"a wrong length beats an earlier wrong type",
			body(t, map[string]any{"loginId": true, "newPassword": "1"}), pinreset.CodeLength, "newPassword"},
		{"a wrong length beats an earlier malformed field",
			body(t, map[string]any{"ci": testCI[:87] + "_", "currentPassword": "1"}), pinreset.CodeLength, "currentPassword"},
		{"the first of two missing fields is reported",
			body(t, map[string]any{"newPassword": omit, "loginId": omit}), pinreset.CodeMissing, "loginId"},
		{"the first of two wrong lengths is reported",
			body(t, map[string]any{"newPassword": "1", "ci": "x"}), pinreset.CodeLength, "ci"},
		{"the first of two malformed fields is reported",
			body(t, map[string]any{"newPassword": "abcdef", "currentPassword": "abcdef"}), pinreset.CodeInvalidInput, "currentPassword"},
		{"a malformed isResetPassword is reported, not the currentPassword it would excuse",
			body(t, map[string]any{"isResetPassword": "yes", "currentPassword": omit}), pinreset.CodeInvalidInput, "isResetPassword"},
		{"a malformed isResetPassword comes after the other fields",
			body(t, map[string]any{"isResetPassword": "yes", "newPassword": "abcdef"}), pinreset.CodeInvalidInput, "newPassword"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			_, err := pinreset.ParseRequest(tc.body)
			wantError(t, err, tc.code, tc.field)
		})
	}
}

// TestParseRequestErrorsCarryNoValues checks that no error text repeats a
// value of the body, PINs above all.
func TestParseRequestErrorsCarryNoValues(t *testing.T) {
	for _, b := range [][]byte{
		body(t, map[string]any{"currentPassword": "98765x"}),
		body(t, map[string]any{"newPassword": "98765x"}),
		body(t, map[string]any{"newPassword": "98765"}),
		body(t, map[string]any{"loginId": "98765x"}),
		append(body(t, map[string]any{"newPassword": "98765x"}), "98765x"...),
	} {
		_, err := pinreset.ParseRequest(b)
		if err == nil {
			t.Fatalf("ParseRequest(%s) succeeded", b)
		}
		if msg := err.Error() + fmt.Sprintf("%+v %#v", err, err); strings.Contains(msg, "98765") {
			t.Fatalf("error text %q carries a value of the body", msg)
		}
	}
}

func TestPINPolicy(t *testing.T) {
	on := pinreset.PINPolicy{Enabled: true}
	for _, tc := range []struct {
		rule string
		pin  string
		weak bool
	}{
		{"three identical digits are refused", "111246", true},
		{"three identical digits at the end are refused", "246000", true},
		{"two identical digits are fine", "113355", false},
		{"three ascending digits are refused", "123246", true},
		{"three descending digits are refused", "987012", true},
		{"ascending 0-1-2 after 8-9 is refused", "890123", true},
		{"ascending at the end is refused", "135789", true},
		{"descending at the end is refused", "135210", true},
		{"8-9-0 does not wrap round", "890357", false},
		{"9-0-1 does not wrap round", "901357", false},
		{"1-0-9 does not wrap round", "109357", false},
		{"steps of two are fine", "135790", false},
		{"a turn is not a run", "121343", false},
		{"two ascending then descending is fine", "898535", false},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			err := on.Check(tc.pin)
			if !tc.weak {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want nil", tc.pin, err)
				}
				return
			}
			wantError(t, err, pinreset.CodeWeakPIN, "newPassword")
		})
	}
	t.Run("a disabled policy refuses nothing", func(t *testing.T) {
		for _, pin := range []string{"111111", "123456", "987654"} {
			if err := (pinreset.PINPolicy{}).Check(pin); err != nil {
				t.Fatalf("disabled Check(%s) = %v", pin, err)
			}
		}
	})
	t.Run("any input is safe", func(t *testing.T) {
		for _, pin := range []string{"", "1", "12", "abc", "١٢٣", "a11b11c"} {
			_ = on.Check(pin)
		}
	})
}

// TestRequestRedaction checks that no fmt verb prints the local part of the
// login id, the CI or a PIN.
func TestRequestRedaction(t *testing.T) {
	r := pinreset.Request{LoginID: "secret.person@example.com", CI: testCI, CurrentPIN: "975310", NewPIN: "864209"}
	secrets := []string{"secret.person", testCI, r.CI[:10], "975310", "864209"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		for _, v := range []any{r, &r, []pinreset.Request{r}, map[string]any{"r": r}} {
			out := fmt.Sprintf(verb, v)
			for _, s := range secrets {
				if strings.Contains(out, s) || strings.Contains(out, fmt.Sprintf("%x", s)) {
					t.Errorf("%s of %T leaks %q: %s", verb, v, s, out)
				}
			}
		}
	}
	out := r.String()
	if !strings.Contains(out, "example.com") || !strings.Contains(out, "25 chars") {
		t.Errorf("String() = %s, want the domain and the length of the login id", out)
	}
	if got := r.LogValue().String(); got != out {
		t.Errorf("LogValue() = %s, want %s", got, out)
	}
	_ = pinreset.Request{LoginID: "no-at-sign"}.String() // must not panic
}
