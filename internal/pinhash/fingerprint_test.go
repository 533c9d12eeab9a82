package pinhash

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func fpKey(id string, fill byte) FingerprintKey {
	return FingerprintKey{ID: id, Key: bytes.Repeat([]byte{fill}, 32)}
}

func mustFingerprinter(t *testing.T, cur FingerprintKey, old ...FingerprintKey) *Fingerprinter {
	t.Helper()
	f, err := NewFingerprinter(cur, old...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFingerprintKeysRotate(t *testing.T) {
	t.Parallel()
	content := []byte("content with a PIN 246810")
	before := mustFingerprinter(t, fpKey("f1", 1))
	after := mustFingerprinter(t, fpKey("f2", 2), fpKey("f1", 1))
	old, err := before.Fingerprint(content)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a fingerprint names its key", func(t *testing.T) {
		if !strings.HasPrefix(old, "f1:") {
			t.Errorf("fingerprint %q does not start with its key id", old)
		}
	})
	t.Run("a fingerprint made before a rotation verifies after it", func(t *testing.T) {
		if ok, err := after.SameFingerprint(old, content); !ok || err != nil {
			t.Errorf("SameFingerprint = %v, %v; want true", ok, err)
		}
		if ok, err := after.SameFingerprint(old, []byte("other content")); ok || err != nil {
			t.Errorf("other content: SameFingerprint = %v, %v; want false", ok, err)
		}
	})
	t.Run("new fingerprints are made under the first key", func(t *testing.T) {
		fp, _ := after.Fingerprint(content)
		if !strings.HasPrefix(fp, "f2:") || fp == old {
			t.Errorf("fingerprint after the rotation %q, want one under f2", fp)
		}
	})
	t.Run("Fingerprints gives one under every key, the current first", func(t *testing.T) {
		all, err := after.Fingerprints(content)
		if err != nil || len(all) != 2 || !strings.HasPrefix(all[0], "f2:") || all[1] != old {
			t.Errorf("Fingerprints = %v, %v; want [f2:..., %s]", all, err, old)
		}
	})
	t.Run("a key no longer held is an error, not a mismatch", func(t *testing.T) {
		dropped := mustFingerprinter(t, fpKey("f2", 2))
		if _, err := dropped.SameFingerprint(old, content); !errors.Is(err, ErrUnknownFingerprintKey) {
			t.Errorf("SameFingerprint = %v, want ErrUnknownFingerprintKey", err)
		}
	})
	t.Run("a malformed fingerprint is an error", func(t *testing.T) {
		for _, fp := range []string{"no-colon", "f1:!!!"} {
			if _, err := after.SameFingerprint(fp, content); !errors.Is(err, ErrMalformed) {
				t.Errorf("SameFingerprint(%q) = %v, want ErrMalformed", fp, err)
			}
		}
	})
}

// TestFingerprintsOfAPepperStillVerify: the fingerprints recorded under the
// argon2 pepper before fingerprint keys existed verify when the pepper is
// listed as a fingerprint key: same label, same MAC.
func TestFingerprintsOfAPepperStillVerify(t *testing.T) {
	t.Parallel()
	p := pepper("p1", 7)
	content := []byte("recorded content")
	m := hmac.New(sha256.New, p.Key)
	m.Write([]byte("pinreset/request-fingerprint/v1\x00"))
	m.Write(content)
	recorded := "p1:" + base64.RawStdEncoding.EncodeToString(m.Sum(nil))
	f := mustFingerprinter(t, fpKey("f1", 1), FingerprintKey{ID: p.ID, Key: p.Key})
	if ok, err := f.SameFingerprint(recorded, content); !ok || err != nil {
		t.Fatalf("SameFingerprint = %v, %v; want true", ok, err)
	}
}

func TestParseFingerprintKeys(t *testing.T) {
	t.Parallel()
	secret := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 15))
	for _, tc := range []struct {
		rule  string
		specs []string
		ok    bool
	}{
		{"one key of 32 bytes is accepted", []string{"f1:" + secret}, true},
		{"two keys are accepted, the first current", []string{"f2:" + secret, "f1:" + secret}, true},
		{"no key is refused", nil, false},
		{"a key of 16 bytes (a pepper's minimum) is accepted", []string{"f1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 16))}, true},
		{"a key under 16 bytes is refused", []string{"f1:" + short}, false},
		{"a key without an id is refused", []string{secret}, false},
		{"an id outside [a-zA-Z0-9_-] is refused", []string{"f$1:" + secret}, false},
		{"a key that is not base64 is refused", []string{"f1:" + secret[:10] + "!" + secret[11:]}, false},
		{"the same id twice is refused", []string{"f1:" + secret, "f1:" + secret}, false},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			f, err := ParseFingerprintKeys("PINRESET_FINGERPRINT_KEYS", tc.specs)
			if (err == nil) != tc.ok || (err == nil) != (f != nil) {
				t.Fatalf("ParseFingerprintKeys = %v, %v; want ok %v", f, err, tc.ok)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "PINRESET_FINGERPRINT_KEYS") {
					t.Errorf("error %q does not name the setting", err)
				}
				if strings.Contains(err.Error(), secret[:12]) || strings.Contains(err.Error(), short[:12]) {
					t.Errorf("error %q holds key material", err)
				}
			}
		})
	}
}
