package pinreset

// Scheme names a tran token scheme (X-KM-Tran-Token), the way a request was
// authenticated. The registry says which schemes an ASP may use; a command
// carries the one that authenticated it, because the worker's replay rules
// depend on what the token bound.
type Scheme string

const (
	// SchemeKMV1 is the platform's token: an HMAC of the body only (of the
	// path for a status GET). The default, for compatibility. Its requests
	// can be replayed with fresh headers, so the worker refuses content
	// that set a PIN under another correlation id (001_409).
	SchemeKMV1 Scheme = "KMV1"
	// SchemeKMV2 binds method, path, ASP id, correlation id, both times,
	// the time zone and the body. A replay is stale (401) or carries the
	// same correlation id (answered idempotently), so no content rule is
	// needed and a member may set an earlier PIN again.
	SchemeKMV2 Scheme = "KMV2"
)

// Known reports whether s is a scheme the service implements.
func (s Scheme) Known() bool { return s == SchemeKMV1 || s == SchemeKMV2 }
