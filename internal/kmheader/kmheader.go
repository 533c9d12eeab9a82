// Package kmheader reads and checks the X-KM request headers of the public API
// (SPEC section 2) and makes and verifies the tran token, the HMAC under the
// ASP's secret key: KMV1 binds the body (the path for a status GET), KMV2 the
// whole request (see Canonical).
package kmheader

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/secret"
)

// The header names, as the API documents them. They are also the Field of
// every error Parse returns; http.Header canonicalises them for lookup.
const (
	HeaderASPID         = "X-KM-User-AspId"
	HeaderCorrelationID = "X-KM-Correlation-Id"
	HeaderAccessKey     = "X-KM-Access-Key"
	HeaderCryptoKeyID   = "X-KM-Crypto-Key-Id"
	HeaderTranToken     = "X-KM-Tran-Token"
	HeaderTranTime      = "X-KM-Tran-Time"
	HeaderTimeZone      = "X-KM-Time-Zone"
)

// The fixed lengths of SPEC section 2, in characters.
const (
	aspIDLen         = 15
	correlationIDLen = 20
	accessKeyLen     = 40
	cryptoKeyIDLen   = 32
	tranTimeLen      = 14
	timeZoneLen      = 3
)

// The time layouts of the headers. The digits are checked before parsing,
// because time.Parse alone accepts one-digit fields and fractional seconds.
const (
	correlationLayout = "060102150405"
	tranTimeLayout    = "20060102150405"
)

// The tran token: "<scheme>:<16 or 17 digits>:<base64 of a 32-byte MAC>",
// the scheme KMV1 or KMV2.
const (
	macLen    = sha256.Size                                   // HMAC-SHA256
	macB64Len = (macLen + 2) / 3 * 4                          // 44, padded std base64
	correlHex = correlationIDLen - len(correlationLayout) - 1 // 7
)

// DefaultWindow is the freshness window SPEC section 2 gives as the default:
// a tran time further than this from the server clock is refused. The caller
// passes the configured value to CheckFresh.
const DefaultWindow = 5 * time.Minute

// Headers are the raw X-KM header values of one request. Parse returns them
// only once every rule holds; the zero value means "not given" for the
// optional ones. The access key and the tran token are secret.String (SPEC
// section 4: never in logs), so Headers print with those two redacted under
// every fmt verb, slog, zap and JSON.
type Headers struct {
	ASPID         string
	CorrelationID string
	AccessKey     secret.String
	CryptoKeyID   string
	TranToken     secret.String
	TranTime      string
	TimeZone      string
}

// rule is one header as sent and what Parse demands of it. format reports
// whether a non-empty value is well formed.
type rule struct {
	name     string
	value    string
	count    int // how many times the header was sent
	required bool
	length   int // characters; 0 = no length rule (the token)
	format   func(string) bool
}

// Parse checks the X-KM headers of h and returns their values. The checks run
// in three passes over all headers, so that the most basic problem is the one
// reported: first presence (missing or empty: CodeMissing), then length
// (CodeLength), then format (CodeInvalidInput). Within a pass the headers are
// taken in the order of the Headers fields and the first failure is returned,
// with the header's name as the error's Field.
//
// requireAccessKey is false only for the callback APIs, where the access key
// is omitted; an access key that is sent anyway is still checked. A header
// sent more than once is a format error: two values leave it ambiguous which
// one a proxy or the MAC check saw.
func Parse(h http.Header, requireAccessKey bool) (Headers, error) {
	get := func(name string) (string, int) {
		vs := h.Values(name) // nil-safe
		if len(vs) == 0 {
			return "", 0
		}
		return vs[0], len(vs)
	}
	var hd Headers
	var rules [7]rule
	set := func(i int, name string, required bool, length int, format func(string) bool) string {
		v, n := get(name)
		rules[i] = rule{name: name, value: v, count: n, required: required, length: length, format: format}
		return v
	}
	hd.ASPID = set(0, HeaderASPID, true, aspIDLen, isIDChars)
	hd.CorrelationID = set(1, HeaderCorrelationID, true, correlationIDLen, validCorrelationID)
	hd.AccessKey = secret.String(set(2, HeaderAccessKey, requireAccessKey, accessKeyLen, isAlnum))
	hd.CryptoKeyID = set(3, HeaderCryptoKeyID, false, cryptoKeyIDLen, isIDChars)
	hd.TranToken = secret.String(set(4, HeaderTranToken, true, 0, func(s string) bool { _, err := ParseToken(s); return err == nil }))
	hd.TranTime = set(5, HeaderTranTime, true, tranTimeLen, validTranTime)
	hd.TimeZone = set(6, HeaderTimeZone, true, timeZoneLen, func(s string) bool { _, ok := Zone(s); return ok })

	for _, r := range rules {
		if r.required && r.value == "" {
			return Headers{}, pinreset.Errorf(pinreset.CodeMissing, r.name)
		}
	}
	for _, r := range rules {
		if r.value != "" && r.length > 0 && utf8.RuneCountInString(r.value) != r.length {
			return Headers{}, pinreset.Errorf(pinreset.CodeLength, r.name)
		}
	}
	for _, r := range rules {
		if r.count > 1 || (r.value != "" && !r.format(r.value)) {
			return Headers{}, pinreset.Errorf(pinreset.CodeInvalidInput, r.name)
		}
	}
	return hd, nil
}

// Set writes the non-empty values of hd to h under their documented names,
// replacing any earlier values. Empty values are removed, so that an optional
// header is absent rather than empty. A nil h is left alone.
func Set(h http.Header, hd Headers) {
	if h == nil {
		return
	}
	for _, kv := range [...]struct{ name, value string }{
		{HeaderASPID, hd.ASPID},
		{HeaderCorrelationID, hd.CorrelationID},
		{HeaderAccessKey, string(hd.AccessKey)}, // on the wire, where it is meant to go
		{HeaderCryptoKeyID, hd.CryptoKeyID},
		{HeaderTranToken, string(hd.TranToken)},
		{HeaderTranTime, hd.TranTime},
		{HeaderTimeZone, hd.TimeZone},
	} {
		if kv.value == "" {
			h.Del(kv.name)
		} else {
			h.Set(kv.name, kv.value)
		}
	}
}

// Times returns X-KM-Tran-Time and the tran token's time, both read in the
// zone named by X-KM-Time-Zone. It checks the three values itself (with the
// codes of Parse), so it is safe on Headers that did not come from Parse.
func (h Headers) Times() (tranTime, tokenTime time.Time, err error) {
	loc, ok := Zone(h.TimeZone)
	if !ok {
		return time.Time{}, time.Time{}, pinreset.Errorf(pinreset.CodeInvalidInput, HeaderTimeZone)
	}
	if !isDigits(h.TranTime, tranTimeLen) {
		return time.Time{}, time.Time{}, pinreset.Errorf(pinreset.CodeInvalidInput, HeaderTranTime)
	}
	tranTime, err = time.ParseInLocation(tranTimeLayout, h.TranTime, loc)
	if err != nil {
		return time.Time{}, time.Time{}, pinreset.Errorf(pinreset.CodeInvalidInput, HeaderTranTime)
	}
	tok, err := ParseToken(h.TranToken)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	tokenTime, ok = tokenTimeIn(tok.Time, loc)
	if !ok { // ParseToken already checked it; kept so no path can return a zero time silently
		return time.Time{}, time.Time{}, pinreset.Errorf(pinreset.CodeInvalidInput, HeaderTranToken)
	}
	return tranTime, tokenTime, nil
}

// CheckFresh refuses a request whose tran time or token time is further than
// window from now, in either direction: a captured request cannot be replayed
// later, and a client clock far ahead cannot mint tokens that stay valid. The
// boundary itself (exactly window away) is accepted. The error is the single
// CodeUnauthorized with no Field, so the client learns nothing of which part
// failed. The default window is DefaultWindow (5 minutes); a negative window
// is treated as zero.
func CheckFresh(tranTime, tokenTime, now time.Time, window time.Duration) error {
	window = max(window, 0)
	for _, t := range [...]time.Time{tranTime, tokenTime} {
		// Sub saturates at the Duration limits, and -window cannot overflow
		// once window >= 0, so far-away times compare correctly.
		if d := t.Sub(now); d > window || d < -window {
			return pinreset.Errorf(pinreset.CodeUnauthorized, "")
		}
	}
	return nil
}

// NewCorrelationID makes a fresh correlation id "yyMMddHHmmss-xxxxxxx" from
// now (in now's own zone) and 7 lowercase hex digits read from random. When
// random is nil or fails, crypto/rand is used instead: an id must never be
// predictable or repeated because a reader ran dry.
func NewCorrelationID(now time.Time, random io.Reader) string {
	var b [4]byte // 8 hex digits, 7 used
	if random == nil || func() bool { _, err := io.ReadFull(random, b[:]); return err != nil }() {
		_, _ = rand.Read(b[:]) // never fails since Go 1.24
	}
	// "06" is the year modulo 100 as two digits for any year, even negative
	// ones, and a real date stays real read back as 19yy or 20yy.
	return now.Format(correlationLayout) + "-" + hex.EncodeToString(b[:])[:correlHex]
}

// Token is a parsed tran token.
type Token struct {
	// Scheme is KMV1 or KMV2, the token's prefix: it says what the MAC
	// covers (SignedContent).
	Scheme pinreset.Scheme
	// Time is the request time as sent: 16 digits (yyyyMMddHHmmssSS,
	// centiseconds) or 17 (yyyyMMddHHmmssSSS, milliseconds), in the zone of
	// X-KM-Time-Zone.
	Time string
	// MAC is HMAC-SHA256(ASP secret key, SignedContent), 32 bytes; a
	// secret.Bytes, so a Token prints its scheme and time but not its MAC.
	MAC secret.Bytes
}

// ParseToken parses a tran token "KMV1:<time>:<mac>" or "KMV2:<time>:<mac>".
// Only the canonical form is accepted: the exact prefix, a valid 16 or 17
// digit time, and exactly 44 characters of padded standard base64 that
// decode strictly to 32 bytes (the base64 decoder alone would skip line
// breaks and accept non-zero padding bits, letting one MAC have several
// spellings). Any failure is CodeInvalidInput for X-KM-Tran-Token. Whether
// the ASP may use the scheme is the caller's question.
//
// s is the token as sent: a plain string, or the secret.String of
// Headers.TranToken, so that neither kind of caller converts.
func ParseToken[S ~string](token S) (Token, error) {
	s := string(token)
	bad := pinreset.Errorf(pinreset.CodeInvalidInput, HeaderTranToken)
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !pinreset.Scheme(scheme).Known() {
		return Token{}, bad
	}
	ts, mac, ok := strings.Cut(rest, ":")
	if !ok || (len(ts) != 16 && len(ts) != 17) || !isDigits(ts, len(ts)) {
		return Token{}, bad
	}
	if _, ok := tokenTimeIn(ts, time.UTC); !ok {
		return Token{}, bad
	}
	if len(mac) != macB64Len || !isBase64(mac) {
		return Token{}, bad
	}
	sum, err := base64.StdEncoding.Strict().DecodeString(mac)
	if err != nil || len(sum) != macLen {
		return Token{}, bad
	}
	return Token{Scheme: pinreset.Scheme(scheme), Time: ts, MAC: sum}, nil
}

// Sign returns the KMV1 tran token for body: "KMV1:<t in loc as
// yyyyMMddHHmmssSSS>:<base64 of HMAC-SHA256(secret, body)>". The time is
// truncated to the millisecond. A nil loc means UTC. t must lie in the years
// 0000 to 9999, the only ones the token can spell. SignToken signs a whole
// request under either scheme.
func Sign(secret []byte, body []byte, t time.Time, loc *time.Location) string {
	stamp := TokenTime(t, loc)
	return string(pinreset.SchemeKMV1) + ":" + stamp + ":" + base64.StdEncoding.EncodeToString(mac(secret, body))
}

// TokenTime spells t in loc (nil: UTC) as a token time, 17 digits
// yyyyMMddHHmmssSSS, truncated to the millisecond.
func TokenTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC // Time.In panics on nil
	}
	return strings.Replace(t.In(loc).Format(tranTimeLayout+".000"), ".", "", 1)
}

// VerifyMAC reports whether tok's MAC is HMAC-SHA256(secret, body) for any of
// secrets; during a key rotation an ASP has more than one. Every secret's MAC
// is computed and compared in constant time (hmac.Equal) even after a match,
// so the time taken does not tell which secret matched. An empty secret never
// matches: an HMAC under an empty key is something anyone can compute, so an
// unconfigured secret must not authenticate a request.
func VerifyMAC(tok Token, body []byte, secrets ...[]byte) bool {
	matched := false
	for _, s := range secrets {
		eq := hmac.Equal(mac(s, body), tok.MAC)
		matched = matched || (eq && len(s) > 0)
	}
	return matched
}

func mac(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// Zone returns the fixed-offset location of a time zone abbreviation accepted
// in X-KM-Time-Zone. Only upper-case, three-letter abbreviations that name one
// offset are in the table; ambiguous ones (IST: India, Ireland or Israel; CST:
// China, Cuba or US Central; AST, BST, ...) are refused rather than guessed:
//
//	UTC, GMT  +00:00
//	CET       +01:00   Central European (standard) Time
//	EET       +02:00   Eastern European (standard) Time
//	MSK       +03:00   Moscow
//	GST       +04:00   Gulf Standard Time
//	PKT       +05:00   Pakistan
//	NPT       +05:45   Nepal
//	ICT, WIB  +07:00   Indochina, Western Indonesia
//	SGT, HKT, PHT +08:00 Singapore, Hong Kong, Philippines
//	KST, JST  +09:00   Korea, Japan
//
// The offsets are fixed: a client in summer time sends a time in its
// standard zone's offset, so the server never consults a tz database.
func Zone(abbr string) (*time.Location, bool) {
	var offset time.Duration
	switch abbr {
	case "UTC", "GMT":
		offset = 0
	case "CET":
		offset = 1 * time.Hour
	case "EET":
		offset = 2 * time.Hour
	case "MSK":
		offset = 3 * time.Hour
	case "GST":
		offset = 4 * time.Hour
	case "PKT":
		offset = 5 * time.Hour
	case "NPT":
		offset = 5*time.Hour + 45*time.Minute
	case "ICT", "WIB":
		offset = 7 * time.Hour
	case "SGT", "HKT", "PHT":
		offset = 8 * time.Hour
	case "KST", "JST":
		offset = 9 * time.Hour
	default:
		return nil, false
	}
	return time.FixedZone(abbr, int(offset/time.Second)), true
}

// tokenTimeIn reads a 16 or 17 digit token time in loc; the digits after the
// seconds are centiseconds (16) or milliseconds (17).
func tokenTimeIn(ts string, loc *time.Location) (time.Time, bool) {
	if (len(ts) != 16 && len(ts) != 17) || !isDigits(ts, len(ts)) {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(tranTimeLayout, ts[:tranTimeLen], loc)
	if err != nil {
		return time.Time{}, false
	}
	frac, unit := 0, 10*time.Millisecond
	if len(ts) == 17 {
		unit = time.Millisecond
	}
	for _, c := range ts[tranTimeLen:] {
		frac = frac*10 + int(c-'0')
	}
	return t.Add(time.Duration(frac) * unit), true
}

// validCorrelationID checks "yyMMddHHmmss-xxxxxxx": a real date-time (no Feb
// 30, no hour 24), a dash, 7 hex digits of either case.
func validCorrelationID(s string) bool {
	n := len(correlationLayout)
	if len(s) != correlationIDLen || !isDigits(s[:n], n) || s[n] != '-' {
		return false
	}
	if _, err := time.Parse(correlationLayout, s[:n]); err != nil {
		return false
	}
	for i := n + 1; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// validTranTime checks 14 digits forming a real yyyyMMddHHmmss time.
func validTranTime(s string) bool {
	if !isDigits(s, tranTimeLen) {
		return false
	}
	_, err := time.Parse(tranTimeLayout, s)
	return err == nil
}

// The character classes work on bytes: any byte of a non-ASCII character
// fails them, which is what makes non-ASCII values a format error.

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnumByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnumByte(s[i]) {
			return false
		}
	}
	return true
}

// isIDChars is the ASP id and crypto key id alphabet: letters, digits, _ and -.
func isIDChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnumByte(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isBase64 is the padded standard alphabet; '=' is placed by the decoder.
func isBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnumByte(c) && c != '+' && c != '/' && c != '=' {
			return false
		}
	}
	return true
}
