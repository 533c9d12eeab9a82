package kmheader

import (
	"net/http"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/secret"
)

// ResetPath is the route of the API's POST; the status of a transaction is
// at ResetPath + "/" + its correlation id. KMV2 signs the path, so the
// signing clients and the ingress share this one spelling.
const ResetPath = "/api/v1/user/password/reset"

// Credentials are what a client needs to sign requests.
type Credentials struct {
	ASPID     string
	AccessKey string
	SecretKey secret.Bytes // the ASP's HMAC key; prints as a marker
	// Scheme is the tran token scheme to sign with; empty means KMV1. The
	// ASP's registry entry says which it may use.
	Scheme pinreset.Scheme
}

// SignedHeaders returns the X-KM headers of a POST of body to ResetPath,
// made at now in the zone named zone (UTC if empty) with correlationID (a
// fresh one if empty), signed under c.Scheme. Clients, the operator's tool
// and the tests use it.
func SignedHeaders(c Credentials, body []byte, correlationID string, now time.Time, zone string) Headers {
	return SignRequest(c, http.MethodPost, ResetPath, body, correlationID, now, zone)
}

// SignedStatusHeaders returns the X-KM headers of the status query GET
// ResetPath/{correlationID}, signed under c.Scheme.
func SignedStatusHeaders(c Credentials, correlationID string, now time.Time, zone string) Headers {
	return SignRequest(c, http.MethodGet, ResetPath+"/"+correlationID, nil, correlationID, now, zone)
}

// SignRequest returns the X-KM headers of a request of method to path (as
// it will be sent, no query) with body, made at now in the zone named zone
// (UTC if empty or unknown) with correlationID (a fresh one if empty),
// signed under c.Scheme.
func SignRequest(c Credentials, method, path string, body []byte, correlationID string, now time.Time, zone string) Headers {
	if zone == "" {
		zone = "UTC"
	}
	loc, ok := Zone(zone)
	if !ok {
		loc = time.UTC
		zone = "UTC"
	}
	if correlationID == "" {
		correlationID = NewCorrelationID(now.In(loc), nil)
	}
	hd := Headers{
		ASPID:         c.ASPID,
		CorrelationID: correlationID,
		AccessKey:     secret.String(c.AccessKey),
		TranTime:      now.In(loc).Format(tranTimeLayout),
		TimeZone:      zone,
	}
	hd.TranToken = secret.String(SignToken(c.Scheme, c.SecretKey, Request{Method: method, Path: path, Headers: hd, Body: body}, now, loc))
	return hd
}
