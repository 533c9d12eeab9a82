package kmheader_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/secret"
)

// FuzzParse feeds arbitrary values for the seven headers. Parse must never
// panic, must fail only with a catalogue input error naming a header, and
// whenever it succeeds the values it returns are the ones sent and keep the
// length and format rules.
func FuzzParse(f *testing.F) {
	v := validHeaders()
	f.Add(v.ASPID, v.CorrelationID, string(v.AccessKey), v.CryptoKeyID, string(v.TranToken), v.TranTime, v.TimeZone, true)
	f.Add(v.ASPID, v.CorrelationID, "", "", string(v.TranToken), v.TranTime, "UTC", false)
	f.Add(v.ASPID, "240230153045-a1b2c3d", string(v.AccessKey), "", "KMV1:2024022915304512:"+strings.Repeat("A", 43)+"=", v.TranTime, "NPT", true)
	f.Add("ASP-TEST-00000é", "240229153045-a1b2c3é", strings.Repeat("é", 40), strings.Repeat("_", 32), "KMV1::", "2024022915304٥", "kst", true)
	f.Add("", "", "", "", "", "", "", false)

	f.Fuzz(func(t *testing.T, asp, corr, ak, ck, tok, tt, tz string, requireAK bool) {
		sent := kmheader.Headers{ASPID: asp, CorrelationID: corr, AccessKey: secret.String(ak), CryptoKeyID: ck, TranToken: secret.String(tok), TranTime: tt, TimeZone: tz}
		h := http.Header{}
		for name, value := range map[string]string{
			kmheader.HeaderASPID: asp, kmheader.HeaderCorrelationID: corr, kmheader.HeaderAccessKey: ak,
			kmheader.HeaderCryptoKeyID: ck, kmheader.HeaderTranToken: tok, kmheader.HeaderTranTime: tt, kmheader.HeaderTimeZone: tz,
		} {
			h[http.CanonicalHeaderKey(name)] = []string{value} // empty values too: empty must read as missing
		}

		got, err := kmheader.Parse(h, requireAK)
		if err != nil {
			var e *pinreset.Error
			if !errors.As(err, &e) || !strings.HasPrefix(e.Field, "X-KM-") {
				t.Fatalf("Parse error %#v is not an input error naming a header", err)
			}
			switch e.Code {
			case pinreset.CodeMissing, pinreset.CodeLength, pinreset.CodeInvalidInput:
			default:
				t.Fatalf("Parse error code %s is not an input code", e.Code)
			}
			return
		}
		if got != sent {
			t.Fatalf("Parse = %v, want the values sent", got)
		}
		for _, c := range []struct {
			name  string
			value string
			n     int
		}{
			{"AspId", got.ASPID, 15},
			{"Correlation-Id", got.CorrelationID, 20},
			{"Tran-Time", got.TranTime, 14},
			{"Time-Zone", got.TimeZone, 3},
		} {
			if utf8.RuneCountInString(c.value) != c.n || len(c.value) != c.n {
				t.Fatalf("accepted %s %q is not %d ASCII characters", c.name, c.value, c.n)
			}
		}
		if (requireAK || got.AccessKey != "") && len(got.AccessKey) != 40 {
			t.Fatalf("accepted access key of %d bytes", len(got.AccessKey))
		}
		if got.CryptoKeyID != "" && len(got.CryptoKeyID) != 32 {
			t.Fatalf("accepted crypto key id of %d bytes", len(got.CryptoKeyID))
		}
		if _, err := kmheader.ParseToken(got.TranToken); err != nil {
			t.Fatalf("accepted token %q that ParseToken refuses", string(got.TranToken)) // fuzz input, not a secret
		}
		if _, _, err := got.Times(); err != nil {
			t.Fatalf("accepted headers whose times do not read: %v", err)
		}
	})
}

// FuzzParseToken feeds arbitrary tokens. ParseToken must never panic; an
// accepted token must be in its one canonical spelling, and the token Sign
// makes for its time must parse back to the same instant.
func FuzzParseToken(f *testing.F) {
	f.Add(string(validHeaders().TranToken))
	f.Add("KMV1:2024022915304512:" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add("KMV1:20240230153045123:" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add("KMV1:00000101000000000:" + base64.StdEncoding.EncodeToString(make([]byte, 31)))
	f.Add("KMV1:99991231235959999:" + strings.Repeat("/", 43) + "=")
	f.Add("KMV1::")
	f.Add("KMV2:20260101093000123:d2zGihToqPmgn91W7ariBHWJMKTfv7ujlU9yTmPehBI=")
	f.Add("")

	f.Fuzz(func(t *testing.T, s string) {
		tok, err := kmheader.ParseToken(s)
		if err != nil {
			var e *pinreset.Error
			if !errors.As(err, &e) || e.Code != pinreset.CodeInvalidInput || e.Field != kmheader.HeaderTranToken {
				t.Fatalf("ParseToken error %#v, want invalid input of the token header", err)
			}
			return
		}
		if len(tok.MAC) != 32 {
			t.Fatalf("accepted a MAC of %d bytes", len(tok.MAC))
		}
		if canon := string(tok.Scheme) + ":" + tok.Time + ":" + base64.StdEncoding.EncodeToString(tok.MAC); canon != s {
			t.Fatalf("accepted %q, whose canonical spelling is %q", s, canon)
		}

		hd := kmheader.Headers{TranToken: secret.String(s), TranTime: "20240229153045", TimeZone: "UTC"}
		_, at, err := hd.Times()
		if err != nil {
			t.Fatalf("accepted token %q whose time does not read: %v", s, err)
		}
		signed := kmheader.Sign([]byte("k"), []byte("body"), at, time.UTC)
		again, err := kmheader.ParseToken(signed)
		if err != nil {
			t.Fatalf("Sign at the time of %q made %q, which does not parse: %v", s, signed, err)
		}
		want := tok.Time
		if len(want) == 16 {
			want += "0" // centiseconds read back as milliseconds
		}
		if again.Time != want {
			t.Fatalf("token time %q signed back as %q, want %q", tok.Time, again.Time, want)
		}
		if !kmheader.VerifyMAC(again, []byte("body"), []byte("k")) {
			t.Fatalf("token %q made by Sign does not verify", signed)
		}
	})
}
