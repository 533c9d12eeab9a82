package kmheader_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/secret"
)

var (
	testSecret = []byte("asp-secret-key-for-tests")
	testBody   = []byte(`{"loginId":"a@example.com","newPassword":"135790","isResetPassword":true}`)
	kst        = time.FixedZone("KST", 9*60*60)
	// testTime is 2024-02-29 15:30:45.123 KST: a leap day, so that a
	// parser that ignores the year's leap rule would be caught.
	testTime = time.Date(2024, 2, 29, 15, 30, 45, 123_000_000, kst)
)

// validHeaders returns one set of headers that passes every rule.
func validHeaders() kmheader.Headers {
	return kmheader.Headers{
		ASPID:         "ASP-TEST-000001",
		CorrelationID: "240229153045-a1b2c3d",
		AccessKey:     secret.String(strings.Repeat("aB3", 13) + "x"),
		CryptoKeyID:   "kid_" + strings.Repeat("0", 28),
		TranToken:     secret.String(kmheader.Sign(testSecret, testBody, testTime, kst)),
		TranTime:      "20240229153045",
		TimeZone:      "KST",
	}
}

func header(hd kmheader.Headers) http.Header {
	h := http.Header{}
	kmheader.Set(h, hd)
	return h
}

// wantError fails t unless err is a *pinreset.Error with code and field.
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

func TestParseAcceptsValidHeaders(t *testing.T) {
	want := validHeaders()
	for _, tc := range []struct {
		name  string
		edit  func(*kmheader.Headers)
		reqAK bool
	}{
		{"all headers", func(*kmheader.Headers) {}, true},
		{"crypto key id is optional", func(h *kmheader.Headers) { h.CryptoKeyID = "" }, true},
		{"access key may be omitted on callbacks", func(h *kmheader.Headers) { h.AccessKey = "" }, false},
		{"access key may still be sent on callbacks", func(*kmheader.Headers) {}, false},
		{"correlation id hex may be upper case", func(h *kmheader.Headers) { h.CorrelationID = "240229153045-A1B2C3D" }, true},
		{"token time may have 16 digits", func(h *kmheader.Headers) {
			h.TranToken = secret.String(strings.Replace(string(h.TranToken), "20240229153045123", "2024022915304512", 1))
		}, true},
		{"every zone of the table", func(h *kmheader.Headers) { h.TimeZone = "NPT" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hd := want
			tc.edit(&hd)
			got, err := kmheader.Parse(header(hd), tc.reqAK)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != hd {
				t.Fatalf("Parse = %#v, want the values sent", got)
			}
		})
	}
}

// TestParseRules checks each header's presence, length and format rules one
// at a time, against an otherwise valid set.
func TestParseRules(t *testing.T) {
	const (
		missing = pinreset.CodeMissing
		length  = pinreset.CodeLength
		format  = pinreset.CodeInvalidInput
	)
	type field = func(h *kmheader.Headers, v string) // sets one header
	asp := func(h *kmheader.Headers, v string) { h.ASPID = v }
	corr := func(h *kmheader.Headers, v string) { h.CorrelationID = v }
	ak := func(h *kmheader.Headers, v string) { h.AccessKey = secret.String(v) }
	ck := func(h *kmheader.Headers, v string) { h.CryptoKeyID = v }
	tok := func(h *kmheader.Headers, v string) { h.TranToken = secret.String(v) }
	tt := func(h *kmheader.Headers, v string) { h.TranTime = v }
	tz := func(h *kmheader.Headers, v string) { h.TimeZone = v }
	valid := validHeaders()
	mac := string(valid.TranToken)[len("KMV1:20240229153045123:"):]
	macOf := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

	for _, tc := range []struct {
		rule  string
		name  string
		field field
		value string
		code  pinreset.Code
	}{
		{"AspId is required", kmheader.HeaderASPID, asp, "", missing},
		{"AspId is 15 characters, not fewer", kmheader.HeaderASPID, asp, "ASP-TEST-00001", length},
		{"AspId is 15 characters, not more", kmheader.HeaderASPID, asp, "ASP-TEST-0000001", length},
		{"AspId length counts characters, so non-ASCII is a format error", kmheader.HeaderASPID, asp, "ASP-TEST-00000é", format},
		{"AspId is letters digits _ -", kmheader.HeaderASPID, asp, "ASP TEST 000001", format},
		{"AspId has no dots", kmheader.HeaderASPID, asp, "ASP.TEST.000001", format},

		{"Correlation-Id is required", kmheader.HeaderCorrelationID, corr, "", missing},
		{"Correlation-Id is 20 characters, not fewer", kmheader.HeaderCorrelationID, corr, "240229153045-a1b2c3", length},
		{"Correlation-Id is 20 characters, not more", kmheader.HeaderCorrelationID, corr, "240229153045-a1b2c3d4", length},
		{"Correlation-Id date is real: no Feb 30", kmheader.HeaderCorrelationID, corr, "240230153045-a1b2c3d", format},
		{"Correlation-Id date is real: no Feb 29 in 2023", kmheader.HeaderCorrelationID, corr, "230229153045-a1b2c3d", format},
		{"Correlation-Id date is real: no month 13", kmheader.HeaderCorrelationID, corr, "241329153045-a1b2c3d", format},
		{"Correlation-Id date is real: no hour 24", kmheader.HeaderCorrelationID, corr, "240229243045-a1b2c3d", format},
		{"Correlation-Id date is real: no second 60", kmheader.HeaderCorrelationID, corr, "240229153060-a1b2c3d", format},
		{"Correlation-Id date is digits", kmheader.HeaderCorrelationID, corr, "2402291530+5-a1b2c3d", format},
		{"Correlation-Id has a dash at 13", kmheader.HeaderCorrelationID, corr, "240229153045_a1b2c3d", format},
		{"Correlation-Id ends in hex", kmheader.HeaderCorrelationID, corr, "240229153045-a1b2c3g", format},
		{"Correlation-Id is ASCII", kmheader.HeaderCorrelationID, corr, "240229153045-a1b2c3é", format},

		{"Access-Key is required", kmheader.HeaderAccessKey, ak, "", missing},
		{"Access-Key is 40 characters, not fewer", kmheader.HeaderAccessKey, ak, strings.Repeat("a", 39), length},
		{"Access-Key is 40 characters, not more", kmheader.HeaderAccessKey, ak, strings.Repeat("a", 41), length},
		{"Access-Key is letters and digits", kmheader.HeaderAccessKey, ak, strings.Repeat("a", 39) + "-", format},
		{"Access-Key is ASCII", kmheader.HeaderAccessKey, ak, strings.Repeat("a", 39) + "é", format},

		{"Crypto-Key-Id is 32 characters, not fewer", kmheader.HeaderCryptoKeyID, ck, strings.Repeat("k", 31), length},
		{"Crypto-Key-Id is 32 characters, not more", kmheader.HeaderCryptoKeyID, ck, strings.Repeat("k", 33), length},
		{"Crypto-Key-Id is letters digits _ -", kmheader.HeaderCryptoKeyID, ck, strings.Repeat("k", 31) + "/", format},

		{"Tran-Token is required", kmheader.HeaderTranToken, tok, "", missing},
		{"Tran-Token starts KMV1: or KMV2:", kmheader.HeaderTranToken, tok, "KMV3:20240229153045123:" + mac, format},
		{"Tran-Token prefix is upper case", kmheader.HeaderTranToken, tok, "kmv1:20240229153045123:" + mac, format},
		{"Tran-Token time is not 15 digits", kmheader.HeaderTranToken, tok, "KMV1:202402291530451:" + mac, format},
		{"Tran-Token time is not 18 digits", kmheader.HeaderTranToken, tok, "KMV1:202402291530451234:" + mac, format},
		{"Tran-Token time is real: no Feb 30", kmheader.HeaderTranToken, tok, "KMV1:20240230153045123:" + mac, format},
		{"Tran-Token MAC is base64", kmheader.HeaderTranToken, tok, "KMV1:20240229153045123:" + strings.Repeat("!", 44), format},
		{"Tran-Token MAC is 32 bytes, not 31", kmheader.HeaderTranToken, tok, "KMV1:20240229153045123:" + macOf(make([]byte, 31)), format},
		{"Tran-Token MAC is 32 bytes, not 33", kmheader.HeaderTranToken, tok, "KMV1:20240229153045123:" + macOf(make([]byte, 33)), format},
		{"Tran-Token MAC is padded", kmheader.HeaderTranToken, tok, "KMV1:20240229153045123:" + strings.TrimRight(mac, "="), format},
		{"Tran-Token MAC has no line breaks", kmheader.HeaderTranToken, tok, "KMV1:20240229153045123:" + mac[:20] + "\r\n" + mac[20:], format},
		{"Tran-Token has three parts", kmheader.HeaderTranToken, tok, "KMV1:20240229153045123:" + mac + ":x", format},

		{"Tran-Time is required", kmheader.HeaderTranTime, tt, "", missing},
		{"Tran-Time is 14 characters, not fewer", kmheader.HeaderTranTime, tt, "2024022915304", length},
		{"Tran-Time is 14 characters, not more", kmheader.HeaderTranTime, tt, "202402291530450", length},
		{"Tran-Time is digits", kmheader.HeaderTranTime, tt, "2024-2-2915304", format},
		{"Tran-Time is ASCII digits", kmheader.HeaderTranTime, tt, "2024022915304٥", format},
		{"Tran-Time is real: no Feb 30", kmheader.HeaderTranTime, tt, "20240230153045", format},
		{"Tran-Time is real: no minute 60", kmheader.HeaderTranTime, tt, "20240229156045", format},

		{"Time-Zone is required", kmheader.HeaderTimeZone, tz, "", missing},
		{"Time-Zone is 3 characters, not fewer", kmheader.HeaderTimeZone, tz, "KS", length},
		{"Time-Zone is 3 characters, not more", kmheader.HeaderTimeZone, tz, "AWST", length},
		{"Time-Zone is upper case", kmheader.HeaderTimeZone, tz, "kst", format},
		{"Time-Zone is known", kmheader.HeaderTimeZone, tz, "XYZ", format},
		{"Time-Zone is unambiguous", kmheader.HeaderTimeZone, tz, "IST", format},
		{"Time-Zone is letters", kmheader.HeaderTimeZone, tz, "K5T", format},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			hd := validHeaders()
			tc.field(&hd, tc.value)
			_, err := kmheader.Parse(header(hd), true)
			wantError(t, err, tc.code, tc.name)

			// An empty header is the same as an absent one.
			if tc.value == "" {
				h := header(hd)
				h.Set(tc.name, "")
				_, err := kmheader.Parse(h, true)
				wantError(t, err, tc.code, tc.name)
			}
		})
	}
}

func TestParseRefusesRepeatedHeaders(t *testing.T) {
	for _, name := range []string{
		kmheader.HeaderASPID, kmheader.HeaderCorrelationID, kmheader.HeaderAccessKey,
		kmheader.HeaderCryptoKeyID, kmheader.HeaderTranToken, kmheader.HeaderTranTime, kmheader.HeaderTimeZone,
	} {
		t.Run(name, func(t *testing.T) {
			h := header(validHeaders())
			h.Add(name, h.Get(name))
			_, err := kmheader.Parse(h, true)
			wantError(t, err, pinreset.CodeInvalidInput, name)
		})
	}
}

func TestParseAccessKeyOnCallbacks(t *testing.T) {
	hd := validHeaders()
	hd.AccessKey = "short"
	_, err := kmheader.Parse(header(hd), false)
	wantError(t, err, pinreset.CodeLength, kmheader.HeaderAccessKey)
}

// TestParsePrecedence checks that presence beats length beats format across
// all headers, and that within a pass the header order decides.
func TestParsePrecedence(t *testing.T) {
	for _, tc := range []struct {
		rule  string
		edit  func(*kmheader.Headers)
		code  pinreset.Code
		field string
	}{
		{"a missing header beats an earlier one of wrong length",
			func(h *kmheader.Headers) { h.ASPID = "short"; h.TimeZone = "" },
			pinreset.CodeMissing, kmheader.HeaderTimeZone},
		{"a missing header beats an earlier malformed one",
			func(h *kmheader.Headers) { h.CorrelationID = "240230153045-a1b2c3d"; h.TranTime = "" },
			pinreset.CodeMissing, kmheader.HeaderTranTime},
		{"a wrong length beats an earlier malformed header",
			func(h *kmheader.Headers) { h.ASPID = "ASP TEST 000001"; h.TranTime = "2024" },
			pinreset.CodeLength, kmheader.HeaderTranTime},
		{"the first of two missing headers is reported",
			func(h *kmheader.Headers) { h.TimeZone = ""; h.CorrelationID = "" },
			pinreset.CodeMissing, kmheader.HeaderCorrelationID},
		{"the first of two wrong lengths is reported",
			func(h *kmheader.Headers) { h.TimeZone = "KS"; h.AccessKey = "short" },
			pinreset.CodeLength, kmheader.HeaderAccessKey},
		{"the first of two malformed headers is reported",
			func(h *kmheader.Headers) { h.TimeZone = "kst"; h.TranToken = "KMV1:x:y" },
			pinreset.CodeInvalidInput, kmheader.HeaderTranToken},
		{"a missing token beats everything after it",
			func(h *kmheader.Headers) { h.TranToken = ""; h.TranTime = "x"; h.TimeZone = "" },
			pinreset.CodeMissing, kmheader.HeaderTranToken},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			hd := validHeaders()
			tc.edit(&hd)
			_, err := kmheader.Parse(header(hd), true)
			wantError(t, err, tc.code, tc.field)
		})
	}
}

func TestParseNilHeader(t *testing.T) {
	_, err := kmheader.Parse(nil, true)
	wantError(t, err, pinreset.CodeMissing, kmheader.HeaderASPID)
}

func TestParseToken(t *testing.T) {
	mac := bytes.Repeat([]byte{0xab}, 32)
	b64 := base64.StdEncoding.EncodeToString(mac)
	for _, tc := range []struct {
		rule string
		in   string
		ok   bool
	}{
		{"17-digit time (milliseconds)", "KMV1:20240229153045123:" + b64, true},
		{"16-digit time (centiseconds)", "KMV1:2024022915304512:" + b64, true},
		{"no 15-digit time", "KMV1:202402291530451:" + b64, false},
		{"no 18-digit time", "KMV1:202402291530451234:" + b64, false},
		{"no Feb 30", "KMV1:20240230153045123:" + b64, false},
		{"no hour 24", "KMV1:20240229243045123:" + b64, false},
		{"no signed digits", "KMV1:+2024022915304512:" + b64, false},
		{"no non-ASCII digits", "KMV1:2024022915304512٣:" + b64, false},
		{"no missing MAC", "KMV1:20240229153045123:", false},
		{"no missing MAC separator", "KMV1:20240229153045123" + b64, false},
		{"no URL-safe base64", "KMV1:20240229153045123:" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)), false},
		{"no non-zero padding bits", "KMV1:20240229153045123:" + b64[:42] + "x=", false},
		{"no empty token", "", false},
		{"no prefix alone", "KMV1:", false},
		{"no leading space", " KMV1:20240229153045123:" + b64, false},
		{"KMV2, 17-digit time", "KMV2:20240229153045123:" + b64, true},
		{"KMV2, 16-digit time", "KMV2:2024022915304512:" + b64, true},
		{"no unknown scheme", "KMV3:20240229153045123:" + b64, false},
		{"no lower-case scheme", "kmv2:20240229153045123:" + b64, false},
		{"no empty scheme", ":20240229153045123:" + b64, false},
		{"no KMV2 with a bad time", "KMV2:20240230153045123:" + b64, false},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			tok, err := kmheader.ParseToken(tc.in)
			if !tc.ok {
				wantError(t, err, pinreset.CodeInvalidInput, kmheader.HeaderTranToken)
				return
			}
			if err != nil {
				t.Fatalf("ParseToken: %v", err)
			}
			if !bytes.Equal(tok.MAC, mac) {
				t.Fatalf("MAC = %x, want %x", tok.MAC, mac)
			}
			if want := pinreset.Scheme(tc.in[:4]); tok.Scheme != want {
				t.Fatalf("Scheme = %q, want %q", tok.Scheme, want)
			}
		})
	}
}

// TestSignKnownAnswer uses RFC 4231 test case 2 for the MAC.
func TestSignKnownAnswer(t *testing.T) {
	want, _ := hex.DecodeString("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
	at := time.Date(2024, 2, 29, 6, 30, 45, 123_987_654, time.UTC) // 15:30:45.123 KST
	got := kmheader.Sign([]byte("Jefe"), []byte("what do ya want for nothing?"), at, kst)
	if w := "KMV1:20240229153045123:" + base64.StdEncoding.EncodeToString(want); got != w {
		t.Fatalf("Sign = %q, want %q", got, w)
	}
	if got := kmheader.Sign(nil, nil, at, nil); !strings.HasPrefix(got, "KMV1:20240229063045123:") {
		t.Fatalf("Sign with nil loc = %q, want UTC time", got)
	}
}

func TestVerifyMAC(t *testing.T) {
	oldSecret, newSecret := []byte("old-secret"), []byte("new-secret")
	tokenBy := func(secret []byte, body []byte) kmheader.Token {
		t.Helper()
		tok, err := kmheader.ParseToken(kmheader.Sign(secret, body, testTime, kst))
		if err != nil {
			t.Fatalf("ParseToken(Sign(...)): %v", err)
		}
		return tok
	}
	for _, tc := range []struct {
		rule    string
		tok     kmheader.Token
		body    []byte
		secrets [][]byte
		want    bool
	}{
		{"the signing secret verifies", tokenBy(newSecret, testBody), testBody, [][]byte{newSecret}, true},
		{"a wrong secret does not", tokenBy(newSecret, testBody), testBody, [][]byte{oldSecret}, false},
		{"another body does not", tokenBy(newSecret, testBody), append([]byte(" "), testBody...), [][]byte{newSecret}, false},
		{"during rotation the old secret verifies", tokenBy(oldSecret, testBody), testBody, [][]byte{newSecret, oldSecret}, true},
		{"during rotation the new secret verifies", tokenBy(newSecret, testBody), testBody, [][]byte{newSecret, oldSecret}, true},
		{"no secret verifies nothing", tokenBy(newSecret, testBody), testBody, nil, false},
		{"an empty secret never verifies", tokenBy(nil, testBody), testBody, [][]byte{{}}, false},
		{"an empty body is signed too", tokenBy(newSecret, nil), []byte{}, [][]byte{newSecret}, true},
		{"a short MAC never verifies", kmheader.Token{MAC: tokenBy(newSecret, testBody).MAC[:31]}, testBody, [][]byte{newSecret}, false},
		{"a missing MAC never verifies", kmheader.Token{}, testBody, [][]byte{newSecret}, false},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			if got := kmheader.VerifyMAC(tc.tok, tc.body, tc.secrets...); got != tc.want {
				t.Fatalf("VerifyMAC = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestTimes(t *testing.T) {
	hd := validHeaders()
	tran, tok, err := hd.Times()
	if err != nil {
		t.Fatalf("Times: %v", err)
	}
	if want := time.Date(2024, 2, 29, 6, 30, 45, 0, time.UTC); !tran.Equal(want) {
		t.Errorf("tran time = %v, want %v", tran, want)
	}
	if want := time.Date(2024, 2, 29, 6, 30, 45, 123_000_000, time.UTC); !tok.Equal(want) {
		t.Errorf("token time = %v, want %v", tok, want)
	}

	t.Run("16 digits are centiseconds", func(t *testing.T) {
		hd := validHeaders()
		hd.TranToken = secret.String(strings.Replace(string(hd.TranToken), "20240229153045123", "2024022915304512", 1))
		hd.TimeZone = "NPT"
		_, tok, err := hd.Times()
		if err != nil {
			t.Fatalf("Times: %v", err)
		}
		if want := time.Date(2024, 2, 29, 9, 45, 45, 120_000_000, time.UTC); !tok.Equal(want) {
			t.Errorf("token time = %v, want %v", tok, want)
		}
	})

	for _, tc := range []struct {
		rule  string
		edit  func(*kmheader.Headers)
		field string
	}{
		{"an unknown zone is refused", func(h *kmheader.Headers) { h.TimeZone = "kst" }, kmheader.HeaderTimeZone},
		{"a bad tran time is refused", func(h *kmheader.Headers) { h.TranTime = "20240230153045" }, kmheader.HeaderTranTime},
		{"a short tran time is refused", func(h *kmheader.Headers) { h.TranTime = "2024" }, kmheader.HeaderTranTime},
		{"a bad token is refused", func(h *kmheader.Headers) { h.TranToken = "KMV1:" }, kmheader.HeaderTranToken},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			hd := validHeaders()
			tc.edit(&hd)
			_, _, err := hd.Times()
			wantError(t, err, pinreset.CodeInvalidInput, tc.field)
		})
	}
}

func TestCheckFresh(t *testing.T) {
	now := time.Date(2024, 2, 29, 6, 30, 45, 500, time.UTC)
	w := kmheader.DefaultWindow
	for _, tc := range []struct {
		rule        string
		tran, token time.Time
		window      time.Duration
		ok          bool
	}{
		{"now is fresh", now, now, w, true},
		{"window ahead is fresh", now.Add(w), now.Add(w), w, true},
		{"window behind is fresh", now.Add(-w), now.Add(-w), w, true},
		{"tran time past the window ahead is stale", now.Add(w + time.Nanosecond), now, w, false},
		{"tran time past the window behind is stale", now.Add(-w - time.Nanosecond), now, w, false},
		{"token time past the window ahead is stale", now, now.Add(w + time.Nanosecond), w, false},
		{"token time past the window behind is stale", now, now.Add(-w - time.Nanosecond), w, false},
		{"a time centuries away is stale", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), now, w, false},
		{"the zero time is stale", time.Time{}, now, w, false},
		{"a negative window is zero", now, now.Add(time.Nanosecond), -w, false},
		{"a negative window still accepts now", now, now, -w, true},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			err := kmheader.CheckFresh(tc.tran, tc.token, now, tc.window)
			if tc.ok {
				if err != nil {
					t.Fatalf("CheckFresh: %v", err)
				}
				return
			}
			wantError(t, err, pinreset.CodeUnauthorized, "")
		})
	}
}

func TestZone(t *testing.T) {
	for _, tc := range []struct {
		abbr   string
		offset time.Duration
		ok     bool
	}{
		{"UTC", 0, true}, {"GMT", 0, true},
		{"CET", time.Hour, true}, {"EET", 2 * time.Hour, true}, {"MSK", 3 * time.Hour, true},
		{"GST", 4 * time.Hour, true}, {"PKT", 5 * time.Hour, true}, {"NPT", 5*time.Hour + 45*time.Minute, true},
		{"ICT", 7 * time.Hour, true}, {"WIB", 7 * time.Hour, true},
		{"SGT", 8 * time.Hour, true}, {"HKT", 8 * time.Hour, true}, {"PHT", 8 * time.Hour, true},
		{"KST", 9 * time.Hour, true}, {"JST", 9 * time.Hour, true},
		// Refused: lower case, ambiguous, four letters, empty, unknown.
		{"kst", 0, false}, {"Kst", 0, false}, {"IST", 0, false}, {"CST", 0, false}, {"AST", 0, false},
		{"BST", 0, false}, {"AWST", 0, false}, {"", 0, false}, {"XYZ", 0, false}, {"UTC ", 0, false},
	} {
		t.Run(tc.abbr, func(t *testing.T) {
			loc, ok := kmheader.Zone(tc.abbr)
			if ok != tc.ok {
				t.Fatalf("Zone(%q) ok = %t, want %t", tc.abbr, ok, tc.ok)
			}
			if !ok {
				return
			}
			name, off := testTime.In(loc).Zone()
			if name != tc.abbr || time.Duration(off)*time.Second != tc.offset {
				t.Fatalf("Zone(%q) = %s %v, want offset %v", tc.abbr, name, time.Duration(off)*time.Second, tc.offset)
			}
		})
	}
}

func TestNewCorrelationID(t *testing.T) {
	random := bytes.NewReader([]byte{0xde, 0xad, 0xbe, 0xef})
	if got, want := kmheader.NewCorrelationID(testTime, random), "240229153045-deadbee"; got != want {
		t.Fatalf("NewCorrelationID = %q, want %q", got, want)
	}

	// Whatever the clock and the reader, the id passes Parse.
	for _, tc := range []struct {
		rule string
		now  time.Time
	}{
		{"a failing reader falls back to crypto/rand", testTime},
		{"a leap day of 1972", time.Date(1972, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"a leap day of year 0", time.Date(0, 2, 29, 23, 59, 59, 0, time.UTC)},
		{"a leap day before year 0", time.Date(-4, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"a year past 9999", time.Date(12345, 12, 31, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			hd := validHeaders()
			hd.CorrelationID = kmheader.NewCorrelationID(tc.now, iotest.ErrReader(errors.New("dry")))
			if _, err := kmheader.Parse(header(hd), true); err != nil {
				t.Fatalf("Parse of %q: %v", hd.CorrelationID, err)
			}
			if hd.CorrelationID[13:] == "0000000" {
				t.Fatalf("id %q has no randomness", hd.CorrelationID)
			}
		})
	}
	t.Run("a nil reader uses crypto/rand", func(t *testing.T) {
		a, b := kmheader.NewCorrelationID(testTime, nil), kmheader.NewCorrelationID(testTime, nil)
		if a == b {
			t.Fatalf("two ids %q in the same second are equal", a)
		}
	})
}

func TestSet(t *testing.T) {
	hd := validHeaders()
	h := http.Header{}
	h.Set(kmheader.HeaderCryptoKeyID, "stale")
	hd.CryptoKeyID = ""
	kmheader.Set(h, hd)
	if _, ok := h[http.CanonicalHeaderKey(kmheader.HeaderCryptoKeyID)]; ok {
		t.Fatalf("Set left an empty optional header: %v", h)
	}
	got, err := kmheader.Parse(h, true)
	if err != nil || got != hd {
		t.Fatalf("Parse(Set(h)) = %v, %v; want %v", got, err, hd)
	}
	kmheader.Set(nil, hd) // must not panic
}

// TestRedaction checks that no fmt verb prints the access key or the MAC.
func TestRedaction(t *testing.T) {
	hd := validHeaders()
	tok, err := kmheader.ParseToken(hd.TranToken)
	if err != nil {
		t.Fatal(err)
	}
	mac := string(hd.TranToken)[len("KMV1:20240229153045123:"):]
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		for _, v := range []any{hd, &hd, tok, &tok} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, string(hd.AccessKey)) || strings.Contains(out, mac) ||
				strings.Contains(out, fmt.Sprintf("%x", []byte(tok.MAC[:8]))) || strings.Contains(out, fmt.Sprint([]byte(tok.MAC[:8]))) {
				t.Errorf("%s of %T leaks a secret: %s", verb, v, out)
			}
		}
	}
}

func BenchmarkParse(b *testing.B) {
	h := header(validHeaders())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kmheader.Parse(h, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyMAC(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	tok, err := kmheader.ParseToken(kmheader.Sign(testSecret, body, testTime, kst))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !kmheader.VerifyMAC(tok, body, testSecret) {
			b.Fatal("VerifyMAC = false")
		}
	}
}

// Guard against the test's own MAC helper drifting from the package's.
func TestSignMatchesHMAC(t *testing.T) {
	m := hmac.New(sha256.New, testSecret)
	m.Write(testBody)
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	if got := string(validHeaders().TranToken); !strings.HasSuffix(got, ":"+want) {
		t.Fatalf("token %q does not end in the body's HMAC %q", got, want)
	}
}
