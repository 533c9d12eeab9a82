package kmheader

import (
	"time"
)

// Credentials are what a client needs to sign requests.
type Credentials struct {
	ASPID     string
	AccessKey string
	SecretKey []byte
}

// SignedHeaders returns the X-KM headers of a request with body, made at now
// in the zone named zone (UTC if empty) with correlationID (a fresh one if
// empty). Clients, the operator's tool and the tests use it.
func SignedHeaders(c Credentials, body []byte, correlationID string, now time.Time, zone string) Headers {
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
	return Headers{
		ASPID:         c.ASPID,
		CorrelationID: correlationID,
		AccessKey:     c.AccessKey,
		TranToken:     Sign(c.SecretKey, body, now, loc),
		TranTime:      now.In(loc).Format("20060102150405"),
		TimeZone:      zone,
	}
}
