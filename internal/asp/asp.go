// Package asp is the registry of the service providers (ASPs) allowed to call
// the API, and their credentials. The ingress loads it from a file at start;
// it never reads the database.
package asp

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Credential is one access key and the secret key that signs tran tokens.
// An ASP has one, or two while it rotates them.
type Credential struct {
	AccessKey string `json:"accessKey"` // 40 characters
	SecretKey string `json:"secretKey"` // the HMAC key of X-KM-Tran-Token
}

// ASP is one registered service provider.
type ASP struct {
	ID          string       `json:"id"` // 15 characters
	Name        string       `json:"name"`
	Credentials []Credential `json:"credentials"`
	// ClientPublicKey is the PEM RSA public key (2048 bits or more) that
	// responses to encrypted requests are encrypted to, and ClientKeyID the
	// kid they carry. Without one, the ASP cannot send encrypted requests.
	ClientPublicKey string `json:"clientPublicKey,omitempty"`
	ClientKeyID     string `json:"clientKeyId,omitempty"`
	// TokenSchemes are the tran token schemes the ASP's requests may be
	// signed with: ["KMV1"] (the default when absent, the platform's
	// token), ["KMV2"] (the whole request bound), or both while the ASP
	// migrates from one to the other (README, Security).
	TokenSchemes []pinreset.Scheme `json:"tokenSchemes,omitempty"`
}

// Schemes returns the tran token schemes a may use: its TokenSchemes, or
// KMV1 alone when none are listed.
func (a *ASP) Schemes() []pinreset.Scheme {
	if len(a.TokenSchemes) == 0 {
		return []pinreset.Scheme{pinreset.SchemeKMV1}
	}
	return a.TokenSchemes
}

// Accepts reports whether a's requests may be signed under s.
func (a *ASP) Accepts(s pinreset.Scheme) bool { return slices.Contains(a.Schemes(), s) }

// Preferred is the scheme a client of a should sign with: KMV2 when the
// ASP may use it, else KMV1.
func (a *ASP) Preferred() pinreset.Scheme {
	if a.Accepts(pinreset.SchemeKMV2) {
		return pinreset.SchemeKMV2
	}
	return pinreset.SchemeKMV1
}

// Registry finds ASPs by id.
type Registry struct {
	byID map[string]*ASP
}

// File is the JSON layout of a registry file.
type File struct {
	ASPs []ASP `json:"asps"`
}

var (
	idRe  = regexp.MustCompile(`^[A-Za-z0-9_-]{15}$`)
	keyRe = regexp.MustCompile(`^[A-Za-z0-9]{40}$`)
)

// Load reads a registry file.
func Load(path string) (*Registry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read asp registry: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("asp registry %s: %w", path, err)
	}
	return New(f.ASPs)
}

// Parse decodes a registry file's content. Unknown fields are refused, so
// that a misspelt key is caught at start rather than ignored.
func Parse(b []byte) (File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("parse: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return File{}, fmt.Errorf("parse: data after the registry object")
	}
	return f, nil
}

// New validates asps and builds a registry.
func New(asps []ASP) (*Registry, error) {
	r := &Registry{byID: make(map[string]*ASP, len(asps))}
	for i := range asps {
		a := asps[i]
		if !idRe.MatchString(a.ID) {
			return nil, fmt.Errorf("asp #%d: id must be 15 letters, digits, _ or -", i+1)
		}
		if _, dup := r.byID[a.ID]; dup {
			return nil, fmt.Errorf("asp %s: listed twice", a.ID)
		}
		if len(a.Credentials) == 0 || len(a.Credentials) > 2 {
			return nil, fmt.Errorf("asp %s: needs one credential, or two while rotating", a.ID)
		}
		for j, c := range a.Credentials {
			if !keyRe.MatchString(c.AccessKey) {
				return nil, fmt.Errorf("asp %s credential #%d: access key must be 40 letters or digits", a.ID, j+1)
			}
			if len(c.SecretKey) < 32 {
				return nil, fmt.Errorf("asp %s credential #%d: secret key must be at least 32 characters", a.ID, j+1)
			}
		}
		for j, s := range a.TokenSchemes {
			if !s.Known() {
				return nil, fmt.Errorf("asp %s: token scheme %q is not KMV1 or KMV2", a.ID, s)
			}
			if slices.Contains(a.TokenSchemes[:j], s) {
				return nil, fmt.Errorf("asp %s: token scheme %s listed twice", a.ID, s)
			}
		}
		r.byID[a.ID] = &a
	}
	return r, nil
}

// All returns every registered ASP, in no particular order.
func (r *Registry) All() []*ASP {
	out := make([]*ASP, 0, len(r.byID))
	for _, a := range r.byID {
		out = append(out, a)
	}
	return out
}

// Lookup returns the ASP with id.
func (r *Registry) Lookup(id string) (*ASP, bool) {
	a, ok := r.byID[id]
	return a, ok
}

// Accepts reports whether the requests of the ASP aspID may be signed under
// s; false for an unknown ASP.
func (r *Registry) Accepts(aspID string, s pinreset.Scheme) bool {
	a, ok := r.byID[aspID]
	return ok && a.Accepts(s)
}

// dummy stands in for an unknown ASP so that authentication of an unknown ASP
// costs the same as that of a known one.
var dummy = Credential{AccessKey: "0000000000000000000000000000000000000000", SecretKey: "00000000000000000000000000000000"}

// Authenticate returns the secret keys that may have signed a request with
// accessKey, when aspID is registered and accessKey is one of its access keys.
// Keys are compared as SHA-256 digests in constant time, every credential is
// compared, and an unknown ASP does the same work, so timing tells nothing.
func (r *Registry) Authenticate(aspID, accessKey string) (secrets [][]byte, ok bool) {
	a, known := r.byID[aspID]
	creds := []Credential{dummy}
	if known {
		creds = a.Credentials
	}
	given := sha256.Sum256([]byte(accessKey))
	match := 0
	for _, c := range creds {
		want := sha256.Sum256([]byte(c.AccessKey))
		eq := subtle.ConstantTimeCompare(given[:], want[:])
		match |= eq
		if eq == 1 {
			secrets = append(secrets, []byte(c.SecretKey))
		}
	}
	if !known || match != 1 {
		return nil, false
	}
	return secrets, true
}
