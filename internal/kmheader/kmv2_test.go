package kmheader_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/secret"
)

// The KMV2 test vector of the README (Security), computed independently of
// this package with Python's hmac and with openssl dgst -hmac.
const (
	vectorSecret    = "kmv2-test-vector-secret-0123456789abcdef"
	vectorBody      = `{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`
	vectorCanonical = "KMV2\nPOST\n/api/v1/user/password/reset\nKMSANDBOXASP001\n260101093000-a1b2c3d\n20260101093000\n20260101093000123\nKST\n" + vectorBody
	vectorToken     = "KMV2:20260101093000123:d2zGihToqPmgn91W7ariBHWJMKTfv7ujlU9yTmPehBI="
	// The same transaction's status GET, under KMV1 (the MAC of the path)
	// and under KMV2.
	vectorStatusKMV1 = "KMV1:20260101093000123:WFxfOJon0AKeCiNYiaBBUFZlkfy/2KqHy+S9kpnEjpA="
	vectorStatusKMV2 = "KMV2:20260101093000123:V3WRFEkNL02d9SWoXHlfhma04X3U+VRr90W04Um3Ol8="
)

// vectorTime is 2026-01-01 09:30:00.123 KST.
var vectorTime = time.Date(2026, 1, 1, 0, 30, 0, 123_456_789, time.UTC)

func vectorRequest() kmheader.Request {
	return kmheader.Request{
		Method: http.MethodPost,
		Path:   "/api/v1/user/password/reset",
		Headers: kmheader.Headers{
			ASPID:         "KMSANDBOXASP001",
			CorrelationID: "260101093000-a1b2c3d",
			AccessKey:     secret.String(strings.Repeat("A", 40)), // not signed
			TranTime:      "20260101093000",
			TimeZone:      "KST",
		},
		Body: []byte(vectorBody),
	}
}

func statusRequest() kmheader.Request {
	r := vectorRequest()
	r.Method, r.Path, r.Body = http.MethodGet, r.Path+"/"+r.Headers.CorrelationID, nil
	return r
}

func parse(t *testing.T, s string) kmheader.Token {
	t.Helper()
	tok, err := kmheader.ParseToken(s)
	if err != nil {
		t.Fatalf("ParseToken(%q): %v", s, err)
	}
	return tok
}

func TestKMV2TestVector(t *testing.T) {
	r := vectorRequest()
	canon, ok := kmheader.Canonical(r, "20260101093000123")
	if !ok || string(canon) != vectorCanonical {
		t.Fatalf("Canonical = %q, %t; want %q", canon, ok, vectorCanonical)
	}
	if got := kmheader.SignToken(pinreset.SchemeKMV2, []byte(vectorSecret), r, vectorTime, kst); got != vectorToken {
		t.Fatalf("SignToken = %q, want %q", got, vectorToken)
	}
	tok := parse(t, vectorToken)
	if tok.Scheme != pinreset.SchemeKMV2 || tok.Time != "20260101093000123" {
		t.Fatalf("ParseToken = %v %q", tok.Scheme, tok.Time)
	}
	if !kmheader.Verify(tok, r, []byte(vectorSecret)) {
		t.Fatal("the test vector does not verify")
	}
	if !kmheader.Verify(tok, r, []byte("the other secret of a rotation, 32+"), []byte(vectorSecret)) {
		t.Fatal("the test vector does not verify as the second secret of a rotation")
	}
	if kmheader.Verify(tok, r, []byte{}) || kmheader.Verify(tok, r) {
		t.Fatal("an empty or missing secret verifies")
	}

	st := statusRequest()
	for scheme, want := range map[pinreset.Scheme]string{pinreset.SchemeKMV1: vectorStatusKMV1, pinreset.SchemeKMV2: vectorStatusKMV2} {
		if got := kmheader.SignToken(scheme, []byte(vectorSecret), st, vectorTime, kst); got != want {
			t.Errorf("%s status GET: SignToken = %q, want %q", scheme, got, want)
		}
		if !kmheader.Verify(parse(t, want), st, []byte(vectorSecret)) {
			t.Errorf("%s status GET vector does not verify", scheme)
		}
	}
}

// TestKMV2BindsEachField: a KMV2 token is refused as soon as any part it
// binds differs from what was signed.
func TestKMV2BindsEachField(t *testing.T) {
	secret := []byte(vectorSecret)
	tok := parse(t, vectorToken)
	for _, tc := range []struct {
		field string
		edit  func(r *kmheader.Request, tok *kmheader.Token)
	}{
		{"method", func(r *kmheader.Request, _ *kmheader.Token) { r.Method = http.MethodPut }},
		{"path", func(r *kmheader.Request, _ *kmheader.Token) { r.Path += "/260101093000-a1b2c3d" }},
		{"path case", func(r *kmheader.Request, _ *kmheader.Token) { r.Path = strings.ToUpper(r.Path) }},
		{"ASP id", func(r *kmheader.Request, _ *kmheader.Token) { r.Headers.ASPID = "KMSANDBOXASP002" }},
		{"correlation id", func(r *kmheader.Request, _ *kmheader.Token) { r.Headers.CorrelationID = "260101093000-a1b2c3e" }},
		{"tran time", func(r *kmheader.Request, _ *kmheader.Token) { r.Headers.TranTime = "20260101093500" }},
		{"token time", func(_ *kmheader.Request, tok *kmheader.Token) { tok.Time = "20260101093500123" }},
		{"token time, same instant in centiseconds", func(_ *kmheader.Request, tok *kmheader.Token) { tok.Time = "2026010109300012" }},
		{"time zone", func(r *kmheader.Request, _ *kmheader.Token) { r.Headers.TimeZone = "JST" }},
		{"body", func(r *kmheader.Request, _ *kmheader.Token) {
			r.Body = []byte(strings.Replace(vectorBody, "703152", "703153", 1))
		}},
		{"body, one byte appended", func(r *kmheader.Request, _ *kmheader.Token) { r.Body = append(r.Body, '\n') }},
		{"body, empty", func(r *kmheader.Request, _ *kmheader.Token) { r.Body = nil }},
		{"scheme relabelled KMV1", func(_ *kmheader.Request, tok *kmheader.Token) { tok.Scheme = pinreset.SchemeKMV1 }},
	} {
		t.Run(tc.field+" tampered is refused", func(t *testing.T) {
			r, tk := vectorRequest(), tok
			tk.MAC = append([]byte(nil), tok.MAC...)
			tc.edit(&r, &tk)
			if kmheader.Verify(tk, r, secret) {
				t.Fatalf("a KMV2 token verified with the %s changed", tc.field)
			}
		})
	}
	t.Run("the unsigned headers may change", func(t *testing.T) {
		r := vectorRequest()
		r.Headers.AccessKey, r.Headers.CryptoKeyID, r.Headers.TranToken = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", strings.Repeat("k", 32), "x" // 40 B
		if !kmheader.Verify(tok, r, secret) {
			t.Fatal("the access key, crypto key id or token header changed the canonical string")
		}
	})
	t.Run("a line feed in a part verifies under no secret", func(t *testing.T) {
		r := vectorRequest()
		r.Path += "\n"
		if _, ok := kmheader.Canonical(r, tok.Time); ok {
			t.Fatal("Canonical accepted a path with a line feed")
		}
		forged := parse(t, kmheader.SignToken(pinreset.SchemeKMV2, secret, r, vectorTime, kst))
		if kmheader.Verify(forged, r, secret) {
			t.Fatal("a request Canonical refuses verified")
		}
	})
}

// TestKMV1SignedContent: KMV1 signs a POST's body, as the platform does, and
// a status GET's path, so that a GET's MAC names its transaction.
func TestKMV1SignedContent(t *testing.T) {
	secret := []byte(vectorSecret)
	post := vectorRequest()
	if got, want := kmheader.SignToken(pinreset.SchemeKMV1, secret, post, vectorTime, kst), kmheader.Sign(secret, post.Body, vectorTime, kst); got != want {
		t.Fatalf("KMV1 POST token %q, want the body's MAC %q", got, want)
	}
	if got := kmheader.SignToken("", secret, post, vectorTime, kst); !strings.HasPrefix(got, "KMV1:") {
		t.Fatalf("no scheme signed %q, want KMV1", got)
	}
	tok := parse(t, kmheader.SignToken(pinreset.SchemeKMV1, secret, post, vectorTime, kst))
	moved := post
	moved.Headers.CorrelationID, moved.Headers.TranTime = "260101093500-0000000", "20260101093500"
	if !kmheader.Verify(tok, moved, secret) {
		t.Fatal("KMV1 POST: the headers are not signed, so fresh headers verify (that is what KMV2 fixes)")
	}

	get := statusRequest()
	gt := parse(t, vectorStatusKMV1)
	if content, _ := kmheader.SignedContent(pinreset.SchemeKMV1, get, gt.Time); string(content) != get.Path {
		t.Fatalf("KMV1 GET signs %q, want the path %q", content, get.Path)
	}
	other := get
	other.Path = "/api/v1/user/password/reset/260101093000-ffffff0"
	other.Headers.CorrelationID = "260101093000-ffffff0"
	if kmheader.Verify(gt, other, secret) {
		t.Fatal("one status GET's KMV1 MAC verified for another correlation id")
	}
	head := get
	head.Method = http.MethodHead
	if !kmheader.Verify(gt, head, secret) {
		t.Fatal("a HEAD of the status is signed like its GET (the path), not over the empty body")
	}
	empty, _ := kmheader.ParseToken(kmheader.Sign(secret, nil, vectorTime, kst))
	if kmheader.Verify(empty, get, secret) {
		t.Fatal("the empty body's MAC, the same for every GET, verified a status GET")
	}
}

func TestSignedStatusHeaders(t *testing.T) {
	secret := []byte(vectorSecret)
	for _, scheme := range []pinreset.Scheme{pinreset.SchemeKMV1, pinreset.SchemeKMV2} {
		c := kmheader.Credentials{ASPID: "KMSANDBOXASP001", AccessKey: strings.Repeat("A", 40), SecretKey: secret, Scheme: scheme}
		cid := "260101093000-a1b2c3d"
		hd, err := kmheader.Parse(header(kmheader.SignedStatusHeaders(c, cid, vectorTime, "KST")), true)
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		tok := parse(t, string(hd.TranToken))
		r := kmheader.Request{Method: http.MethodGet, Path: kmheader.ResetPath + "/" + cid, Headers: hd}
		if tok.Scheme != scheme || hd.CorrelationID != cid || !kmheader.Verify(tok, r, secret) {
			t.Fatalf("%s: status headers %v do not verify for GET %s", scheme, hd, r.Path)
		}
		ph, err := kmheader.Parse(header(kmheader.SignedHeaders(c, []byte(vectorBody), cid, vectorTime, "KST")), true)
		if err != nil {
			t.Fatal(err)
		}
		post := kmheader.Request{Method: http.MethodPost, Path: kmheader.ResetPath, Headers: ph, Body: []byte(vectorBody)}
		if !kmheader.Verify(parse(t, string(ph.TranToken)), post, secret) {
			t.Fatalf("%s: SignedHeaders do not verify for the POST", scheme)
		}
	}
}
