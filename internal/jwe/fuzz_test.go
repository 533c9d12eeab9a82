package jwe

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// FuzzDecrypt feeds arbitrary key ids and bodies. Decrypt must never panic
// (nor recover one: that would be a go-jose bug hidden by our guard), must fail
// only with 000_030 (for a kid the keyring lacks) or 000_031, and may succeed
// only for a kid it holds.
func FuzzDecrypt(f *testing.F) {
	k := keys(f)
	valid := requestFor(f, kidA)
	parts := strings.Split(string(valid), ".")

	f.Add(kidA, valid)
	f.Add(kidB, requestFor(f, kidB))
	f.Add(kidB, valid)
	f.Add("kidZ0000000000000000000000000000", valid)
	f.Add("", []byte{})
	f.Add(kidA, []byte("...."))
	f.Add(kidA, []byte(strings.Join(parts[:4], ".")))
	f.Add(kidA, append(bytes.Clone(valid), '.'))
	for i := range 5 {
		f.Add(kidA, flipMiddle(valid, i))
		f.Add(kidA, withPart(valid, i, ""))
	}
	f.Add(kidA, withPart(valid, 0, b64(`{"alg":"none","enc":"A256GCM","kid":"`+kidA+`"}`)))
	f.Add(kidA, withPart(valid, 0, b64(`{"alg":"A256KW","enc":"A256GCM","kid":"`+kidA+`"}`)))
	f.Add(kidA, withPart(valid, 0, b64(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"`+kidA+`","zip":"DEF"}`)))
	f.Add(kidA, withPart(valid, 0, b64(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"`+kidA+`","crit":["b64"],"b64":false}`)))
	f.Add(kidA, withPart(valid, 0, b64(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"`+kidA+`","x5c":["AAAA"],"jwk":{"kty":"oct","k":"AAAA"}}`)))
	f.Add(kidA, seal(f, jose.RSA_OAEP_256, jose.A256GCM, &k.serverA.PublicKey, kidA, &jose.EncrypterOptions{Compression: jose.DEFLATE}, requestBody))
	if obj, err := jose.ParseEncryptedCompact(string(valid), keyAlgorithms, contentEncryptions); err == nil {
		f.Add(kidA, []byte(obj.FullSerialize()))
	}

	f.Fuzz(func(t *testing.T, kid string, body []byte) {
		plaintext, err := k.ring.Decrypt(kid, body)
		_, known := k.ring.PublicKey(kid)
		if err == nil {
			if !known {
				t.Fatalf("Decrypt succeeded for unknown kid %q", kid)
			}
			return
		}
		if errors.Is(err, errPanic) {
			t.Fatalf("Decrypt panicked: %v", err)
		}
		if plaintext != nil {
			t.Fatalf("plaintext %q returned with error %v", plaintext, err)
		}
		switch code := pinreset.ErrorCode(err); code {
		case pinreset.CodeUnknownCryptoKey:
			if known {
				t.Fatalf("000_030 for known kid %q: %v", kid, err)
			}
		case pinreset.CodeUndecryptable:
			if !known {
				t.Fatalf("000_031 for unknown kid %q: %v", kid, err)
			}
		default:
			t.Fatalf("error code %s (%v), want 000_030 or 000_031", code, err)
		}
	})
}
