package kmheader

import (
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Request is what a tran token signs: the method and path of the request
// line, its X-KM headers and its raw body. Of the headers, KMV2 signs the
// ASP id, the correlation id, the tran time and the time zone (the token's
// own time is passed apart: it is inside the token being made or checked);
// the access key, the crypto key id and the token are not signed.
type Request struct {
	// Method is the request method as sent, e.g. "POST" or "GET".
	Method string
	// Path is the path of the request target as sent (percent-encoding
	// kept), without the query string: "/api/v1/user/password/reset" or
	// "/api/v1/user/password/reset/260101093000-a1b2c3d". The service reads
	// no query, so none is signed.
	Path    string
	Headers Headers
	// Body is the raw body as sent (a JWE when the request is encrypted);
	// empty for a GET.
	Body []byte
}

// kmv2Label opens the KMV2 canonical string, so that a KMV2 MAC can never be
// the MAC of some other message under the same secret (a KMV1 body or path
// starting with "KMV2\n" would not be a request the service accepts).
const kmv2Label = "KMV2"

// Canonical returns the string a KMV2 token signs for r and the token time
// tokenTime (its 16 or 17 digits as they stand in the token): these nine
// parts, each followed by one line feed (0x0A) except the last, the body,
// which runs to the end:
//
//	KMV2
//	<method>            as sent, e.g. POST
//	<path>              as sent, no query, e.g. /api/v1/user/password/reset
//	<X-KM-User-AspId>
//	<X-KM-Correlation-Id>
//	<X-KM-Tran-Time>    14 digits
//	<token time>        16 or 17 digits, as in the token
//	<X-KM-Time-Zone>    e.g. KST
//	<body>              the raw body bytes, possibly none
//
// No part but the body may contain a line feed (the header rules and HTTP
// itself exclude one), so the string reads back one way only; ok is false
// when one does, and such a request verifies under no secret.
func Canonical(r Request, tokenTime string) (canonical []byte, ok bool) {
	parts := [...]string{kmv2Label, r.Method, r.Path, r.Headers.ASPID, r.Headers.CorrelationID,
		r.Headers.TranTime, tokenTime, r.Headers.TimeZone}
	n := len(r.Body)
	for _, p := range parts {
		if strings.IndexByte(p, '\n') >= 0 {
			return nil, false
		}
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, '\n')
	}
	return append(b, r.Body...), true
}

// SignedContent returns the bytes a token of scheme signs for r, the token
// time being tokenTime:
//   - KMV1, a POST: the raw body (the platform's token, unchanged);
//   - KMV1, any other method (the status GET, or HEAD): the path, which
//     holds the correlation id, so that the MAC of one status query is not
//     the MAC of every status query of the ASP (the empty body's MAC would
//     be);
//   - KMV2: Canonical(r, tokenTime).
//
// ok is false for an unknown scheme or a request Canonical refuses.
func SignedContent(scheme pinreset.Scheme, r Request, tokenTime string) (content []byte, ok bool) {
	switch scheme {
	case pinreset.SchemeKMV1:
		if r.Method == http.MethodPost {
			return r.Body, true
		}
		return []byte(r.Path), true
	case pinreset.SchemeKMV2:
		return Canonical(r, tokenTime)
	default:
		return nil, false
	}
}

// SignToken returns the tran token of scheme (empty: KMV1) for r made at t
// in loc (nil: UTC): "<scheme>:<t as yyyyMMddHHmmssSSS>:<base64 of
// HMAC-SHA256(secret, SignedContent)>". r.Headers.TranToken is not read.
// An unknown scheme, or a request Canonical refuses, gets a token with the
// MAC of nothing, which verifies nowhere.
func SignToken(scheme pinreset.Scheme, secret []byte, r Request, t time.Time, loc *time.Location) string {
	if scheme == "" {
		scheme = pinreset.SchemeKMV1
	}
	stamp := TokenTime(t, loc)
	content, _ := SignedContent(scheme, r, stamp)
	return string(scheme) + ":" + stamp + ":" + base64.StdEncoding.EncodeToString(mac(secret, content))
}

// Verify reports whether tok is the token of r under any of secrets, for
// the scheme the token names. Like VerifyMAC, every secret is tried and
// compared in constant time (hmac.Equal), and an empty secret never matches.
// The caller checks that the ASP may use tok.Scheme and that the times are
// fresh.
func Verify(tok Token, r Request, secrets ...[]byte) bool {
	content, ok := SignedContent(tok.Scheme, r, tok.Time)
	if !ok {
		// Still do the work, so that a refused shape costs what a wrong
		// MAC costs.
		VerifyMAC(tok, nil, secrets...)
		return false
	}
	return VerifyMAC(tok, content, secrets...)
}
