package pinreset_test

import (
	"encoding/json"
	"errors"
	"net/mail"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// FuzzParseRequest feeds arbitrary bodies. ParseRequest must never panic,
// must fail only with an input error naming the body or one of its fields
// (so no value can reach the error text), and whatever it accepts keeps
// every rule and reads back the same when encoded again.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"loginId":"a@example.com","ci":"` + testCI + `","currentPassword":"135790","newPassword":"246813","isResetPassword":false}`))
	f.Add([]byte(`{"loginId":"a@example.com","currentPassword":"12ab","newPassword":"246813","isResetPassword":true}`))
	f.Add([]byte(`{"loginId":null,"ci":null,"currentPassword":null,"newPassword":null,"isResetPassword":null}`))
	f.Add([]byte(`{"loginId":"Member <a@example.com>","newPassword":"٠١٢٣٤٥","isResetPassword":"true"}`))
	f.Add([]byte(`{"loginId":"a\ud800@b","newPassword":"246813","newPassword":"135790"} {}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))

	fields := map[string]bool{"body": true, "loginId": true, "ci": true, "currentPassword": true, "newPassword": true, "isResetPassword": true}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := pinreset.ParseRequest(body)
		if err != nil {
			var e *pinreset.Error
			if !errors.As(err, &e) || !fields[e.Field] {
				t.Fatalf("error %#v does not name the body or a field", err)
			}
			switch e.Code {
			case pinreset.CodeMissing, pinreset.CodeLength, pinreset.CodeInvalidInput:
			default:
				t.Fatalf("error code %s is not an input code", e.Code)
			}
			return
		}

		if n := utf8.RuneCountInString(r.LoginID); n < 1 || n > 80 {
			t.Fatalf("accepted a loginId of %d characters", n)
		}
		if a, err := mail.ParseAddress(r.LoginID); err != nil || a.Address != r.LoginID || a.Name != "" || strings.Count(r.LoginID, "@") != 1 {
			t.Fatalf("accepted loginId %q that is not a bare address", r.LoginID)
		}
		if r.CI != "" && (len(r.CI) != 88 || strings.Trim(r.CI, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "") {
			t.Fatalf("accepted ci %q", r.CI)
		}
		if !sixDigits(r.NewPIN) {
			t.Fatal("accepted a newPassword that is not six ASCII digits")
		}
		if r.Reset && r.CurrentPIN != "" {
			t.Fatal("a reset kept a currentPassword")
		}
		if !r.Reset && !sixDigits(r.CurrentPIN) {
			t.Fatal("accepted a change whose currentPassword is not six ASCII digits")
		}

		// What was accepted reads back the same once encoded again.
		m := map[string]any{"loginId": r.LoginID, "newPassword": r.NewPIN, "isResetPassword": r.Reset}
		if r.CI != "" {
			m["ci"] = r.CI
		}
		if !r.Reset {
			m["currentPassword"] = r.CurrentPIN
		}
		again, _ := json.Marshal(m)
		if r2, err := pinreset.ParseRequest(again); err != nil || r2 != r {
			t.Fatalf("re-encoded request %s reads back as %v, %v", again, r2, err)
		}
	})
}

func sixDigits(s string) bool {
	return len(s) == 6 && strings.Trim(s, "0123456789") == ""
}
