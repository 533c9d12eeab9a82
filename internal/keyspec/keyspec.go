// Package keyspec parses the "<id>:<base64>" form of every key setting of
// the service (seal keys, peppers, fingerprint keys: PINRESET_SEAL_KEYS,
// PINRESET_PEPPERS, PINRESET_FINGERPRINT_KEYS), with errors that name the
// key id and never hold its bytes.
package keyspec

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// MaxIDLen is the longest key id: ids are written into stored hashes,
// fingerprints and envelopes.
const MaxIDLen = 32

// Parse parses "<id>:<standard padded base64>" (white space around it is
// ignored). what names the kind of key in errors ("pepper"), and the key
// must be at least minLen bytes and, unless maxLen is 0, at most maxLen.
func Parse(what, s string, minLen, maxLen int) (id string, key []byte, err error) {
	id, b64, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return "", nil, fmt.Errorf("%s: want <id>:<base64 key>", what)
	}
	if !ValidID(id) {
		return "", nil, fmt.Errorf("%s: id must match [a-zA-Z0-9_-]{1,%d}", what, MaxIDLen)
	}
	key, err = base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		// The decoder's error is not wrapped: keep even offsets into the
		// secret out of logs.
		return "", nil, fmt.Errorf("%s %q: key is not valid standard base64", what, id)
	}
	switch {
	case maxLen > 0 && minLen == maxLen && len(key) != minLen:
		return "", nil, fmt.Errorf("%s %q: key is %d bytes, want %d", what, id, len(key), minLen)
	case len(key) < minLen:
		return "", nil, fmt.Errorf("%s %q: key is %d bytes, want >= %d", what, id, len(key), minLen)
	case maxLen > 0 && len(key) > maxLen:
		return "", nil, fmt.Errorf("%s %q: key is %d bytes, want <= %d", what, id, len(key), maxLen)
	}
	return id, key, nil
}

// ValidID reports whether id matches [a-zA-Z0-9_-]{1,32}: safe to quote
// into a log line, a PHC string or a fingerprint.
func ValidID(id string) bool {
	if len(id) < 1 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ErrNoKey is returned by List for a setting with no key.
var ErrNoKey = errors.New("no key")

// List parses every spec with parse, naming the setting and the position in
// errors: "PINRESET_PEPPERS #2: pepper "p0": ...". It fails on an empty list.
func List[K any](setting string, specs []string, parse func(string) (K, error)) ([]K, error) {
	keys := make([]K, 0, len(specs))
	for i, s := range specs {
		k, err := parse(s)
		if err != nil {
			return nil, fmt.Errorf("%s #%d: %w", setting, i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: %w", setting, ErrNoKey)
	}
	return keys, nil
}
