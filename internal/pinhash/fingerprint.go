package pinhash

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// fingerprintLabel separates fingerprint MACs from the PIN derivation,
// which uses the same pepper keys.
const fingerprintLabel = "pinreset/request-fingerprint/v1\x00"

// Fingerprint returns a keyed fingerprint of a request's content,
// "<pepper id>:<base64 HMAC-SHA256>", to tell a retry (same content) from a
// reuse of its correlation id (different content). It is keyed because the
// content includes PINs: a plain hash of a 6-digit PIN is reversed by trying
// all million.
func (h *Hasher) Fingerprint(content []byte) (string, error) {
	if err := h.ready(); err != nil {
		return "", err
	}
	return h.current + ":" + base64.RawStdEncoding.EncodeToString(fingerprint(h.peppers[h.current], content)), nil
}

// SameFingerprint reports whether fp is the fingerprint of content, under
// whichever pepper fp names (it may predate a pepper rotation).
func (h *Hasher) SameFingerprint(fp string, content []byte) (bool, error) {
	if err := h.ready(); err != nil {
		return false, err
	}
	id, mac, ok := strings.Cut(fp, ":")
	if !ok {
		return false, fmt.Errorf("%w: fingerprint", ErrMalformed)
	}
	key, known := h.peppers[id]
	if !known {
		return false, ErrUnknownPepper
	}
	want, err := base64.RawStdEncoding.DecodeString(mac)
	if err != nil {
		return false, fmt.Errorf("%w: fingerprint", ErrMalformed)
	}
	return hmac.Equal(want, fingerprint(key, content)), nil
}

func fingerprint(key, content []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(fingerprintLabel))
	m.Write(content)
	return m.Sum(nil)
}
