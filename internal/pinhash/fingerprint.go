package pinhash

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/kmwallet/pinreset/internal/keyspec"
	"github.com/kmwallet/pinreset/internal/secret"
)

// fingerprintLabel separates fingerprint MACs from any other use of a key.
// It is the label fingerprints had when they were made under the argon2
// pepper, so that a pepper listed as a fingerprint key (same id and value)
// still verifies the fingerprints recorded before PINRESET_FINGERPRINT_KEYS
// existed: see README, "Keys rotate by id".
const fingerprintLabel = "pinreset/request-fingerprint/v1\x00"

// minFingerprintKeyLen is the shortest fingerprint key accepted: 16 bytes
// (128 bits), the peppers' minimum, so that a pepper can be listed as a
// fingerprint key during the upgrade; new keys should be 32 bytes.
const minFingerprintKeyLen = 16

// ErrUnknownFingerprintKey: a fingerprint names a key id the Fingerprinter
// does not hold (a key retired too early, or not deployed yet).
var ErrUnknownFingerprintKey = errors.New("pinhash: unknown fingerprint key id")

// FingerprintKey is one key of PINRESET_FINGERPRINT_KEYS.
// Its key is a secret.Bytes, so it formats and logs as its id only.
type FingerprintKey struct {
	ID  string       `json:"id"`  // [a-zA-Z0-9_-]{1,32}, written into every fingerprint
	Key secret.Bytes `json:"key"` // at least 16 bytes; 32 recommended
}

// ParseFingerprintKey parses "<id>:<standard base64 of at least 16 bytes>".
// Its errors never hold the key material.
func ParseFingerprintKey(s string) (FingerprintKey, error) {
	id, key, err := keyspec.Parse("pinhash: fingerprint key", s, minFingerprintKeyLen, 0)
	if err != nil {
		return FingerprintKey{}, err
	}
	return FingerprintKey{ID: id, Key: key}, nil
}

// Fingerprinter makes keyed fingerprints of request content under the
// fingerprint keys, a key of their own apart from the argon2 pepper: a
// database leak together with the pepper no longer gives the fingerprints'
// PINs at HMAC speed, and the two keys rotate apart. The first key makes new
// fingerprints; every key verifies, so a fingerprint made before a rotation
// still verifies after it ("<key id>:<base64 MAC>" names its key).
type Fingerprinter struct {
	current string
	keys    map[string][]byte
	order   []string // current first, then the older keys as given
}

// NewFingerprinter returns a Fingerprinter that makes fingerprints under
// current and verifies them under current and every older key.
func NewFingerprinter(current FingerprintKey, older ...FingerprintKey) (*Fingerprinter, error) {
	f := &Fingerprinter{current: current.ID, keys: map[string][]byte{}}
	for _, k := range append([]FingerprintKey{current}, older...) {
		if !validID(k.ID) || len(k.Key) < minFingerprintKeyLen {
			return nil, fmt.Errorf("pinhash: fingerprint key %q: id must match [a-zA-Z0-9_-]{1,32} and the key be >= %d bytes", k.ID, minFingerprintKeyLen)
		}
		if _, dup := f.keys[k.ID]; dup {
			return nil, fmt.Errorf("pinhash: fingerprint key id %q given twice", k.ID)
		}
		f.keys[k.ID] = k.Key
		f.order = append(f.order, k.ID)
	}
	return f, nil
}

// ParseFingerprintKeys parses the values of setting (comma-separated
// "id:base64", the first current) into a Fingerprinter; its errors name the
// setting and the position, never the key.
func ParseFingerprintKeys(setting string, specs []string) (*Fingerprinter, error) {
	keys, err := keyspec.List(setting, specs, ParseFingerprintKey)
	if err != nil {
		return nil, err
	}
	f, err := NewFingerprinter(keys[0], keys[1:]...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	return f, nil
}

func (f *Fingerprinter) ready() error {
	if f == nil || f.keys == nil {
		return errors.New("pinhash: Fingerprinter not built with NewFingerprinter")
	}
	return nil
}

// Fingerprint returns the fingerprint of content under the current key,
// "<key id>:<base64 HMAC-SHA256>". It is keyed because content may hold
// PINs: a plain hash of a 6-digit PIN is reversed by trying all million.
func (f *Fingerprinter) Fingerprint(content []byte) (string, error) {
	if err := f.ready(); err != nil {
		return "", err
	}
	return f.make(f.current, content), nil
}

// Fingerprints returns the fingerprint of content under every key, the
// current key's first: what a remembered fingerprint, made under whichever
// key was current then, is compared with.
func (f *Fingerprinter) Fingerprints(content []byte) ([]string, error) {
	if err := f.ready(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(f.order))
	for _, id := range f.order {
		out = append(out, f.make(id, content))
	}
	return out, nil
}

// SameFingerprint reports whether fp is the fingerprint of content, under
// whichever key fp names (it may predate a rotation). A key id it does not
// hold is ErrUnknownFingerprintKey.
func (f *Fingerprinter) SameFingerprint(fp string, content []byte) (bool, error) {
	if err := f.ready(); err != nil {
		return false, err
	}
	id, mac, ok := strings.Cut(fp, ":")
	if !ok {
		return false, fmt.Errorf("%w: fingerprint", ErrMalformed)
	}
	key, known := f.keys[id]
	if !known {
		return false, fmt.Errorf("%w %q", ErrUnknownFingerprintKey, id)
	}
	want, err := base64.RawStdEncoding.DecodeString(mac)
	if err != nil {
		return false, fmt.Errorf("%w: fingerprint", ErrMalformed)
	}
	return hmac.Equal(want, fingerprint(key, content)), nil
}

func (f *Fingerprinter) make(id string, content []byte) string {
	return id + ":" + base64.RawStdEncoding.EncodeToString(fingerprint(f.keys[id], content))
}

func fingerprint(key, content []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(fingerprintLabel))
	m.Write(content)
	return m.Sum(nil)
}
