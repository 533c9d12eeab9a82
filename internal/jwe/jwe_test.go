package jwe

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

const (
	kidA      = "kidA0000000000000000000000000000" // 32 characters
	kidB      = "kidB-rotation_next______________"
	kidClient = "client-key-1"
)

var requestBody = []byte(`{"loginId":"member01","newPassword":"482913","currentPassword":"195738"}`)

// fixture holds the keys of the test binary, made once: RSA-2048 generation
// costs tens of milliseconds and far more under -race.
type fixture struct {
	serverA, serverB, client *rsa.PrivateKey
	small                    *rsa.PrivateKey // RSA-1024, below the minimum
	ec                       *ecdsa.PrivateKey
	ring                     *Keyring // kidA and kidB
}

var (
	fixtureOnce sync.Once
	fixtureVal  fixture
)

func keys(tb testing.TB) *fixture {
	tb.Helper()
	fixtureOnce.Do(func() {
		gen := func(bits int) *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				panic(err)
			}
			return k
		}
		var f fixture
		var wg sync.WaitGroup
		wg.Go(func() { f.serverA = gen(2048) })
		wg.Go(func() { f.serverB = gen(2048) })
		wg.Go(func() { f.client = gen(2048) })
		wg.Go(func() { f.small = gen(1024) })
		wg.Wait()
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		f.ec = ec
		ring, err := NewKeyring(map[string]*rsa.PrivateKey{kidA: f.serverA, kidB: f.serverB})
		if err != nil {
			panic(err)
		}
		f.ring = ring
		fixtureVal = f
	})
	return &fixtureVal
}

// seal encrypts plaintext with go-jose directly, for the algorithms Encrypt
// refuses to make.
func seal(t testing.TB, alg jose.KeyAlgorithm, enc jose.ContentEncryption, key any, kid string, opts *jose.EncrypterOptions, plaintext []byte) []byte {
	t.Helper()
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: key, KeyID: kid}, opts)
	if err != nil {
		t.Fatalf("NewEncrypter(%s, %s): %v", alg, enc, err)
	}
	obj, err := e.Encrypt(plaintext)
	if err != nil {
		t.Fatalf("Encrypt(%s, %s): %v", alg, enc, err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatalf("CompactSerialize(%s, %s): %v", alg, enc, err)
	}
	return []byte(s)
}

// requestFor is what a client sends: the body encrypted to the server key kid.
func requestFor(t testing.TB, kid string) []byte {
	t.Helper()
	pub, ok := keys(t).ring.PublicKey(kid)
	if !ok {
		t.Fatalf("no server key %s", kid)
	}
	out, err := Encrypt(requestBody, pub, kid)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return out
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// withPart replaces part i of a compact JWE.
func withPart(compact []byte, i int, part string) []byte {
	parts := strings.Split(string(compact), ".")
	parts[i] = part
	return []byte(strings.Join(parts, "."))
}

// flipMiddle changes one base64url character in the middle of part i, where
// all six bits are data (a last character may carry unused bits).
func flipMiddle(compact []byte, i int) []byte {
	parts := strings.Split(string(compact), ".")
	p := []byte(parts[i])
	m := len(p) / 2
	if p[m] == 'A' {
		p[m] = 'B'
	} else {
		p[m] = 'A'
	}
	parts[i] = string(p)
	return []byte(strings.Join(parts, "."))
}

func wantCode(t *testing.T, err error, want pinreset.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want code %s", want)
	}
	if got := pinreset.ErrorCode(err); got != want {
		t.Fatalf("code = %s (%v), want %s", got, err, want)
	}
	if errors.Is(err, errPanic) {
		t.Fatalf("err = %v: a recovered panic", err)
	}
	t.Logf("refused: %v", err)
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	f := keys(t)

	t.Run("client encrypts to the server kid, server decrypts", func(t *testing.T) {
		t.Parallel()
		got, err := f.ring.Decrypt(kidA, requestFor(t, kidA))
		if err != nil {
			t.Fatalf("Decrypt: %v", err)
		}
		if !bytes.Equal(got, requestBody) {
			t.Fatalf("Decrypt = %q, want %q", got, requestBody)
		}
	})

	t.Run("server encrypts to the client key, client decrypts", func(t *testing.T) {
		t.Parallel()
		resp := []byte(`{"resultCode":"000_000","resultMsg":"Success."}`)
		compact, err := Encrypt(resp, &f.client.PublicKey, kidClient)
		if err != nil {
			t.Fatalf("Encrypt: %v", err)
		}
		obj, err := jose.ParseEncryptedCompact(string(compact), []jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
		if err != nil {
			t.Fatalf("response is not RSA-OAEP-256/A256GCM compact JWE: %v", err)
		}
		if obj.Header.KeyID != kidClient {
			t.Errorf("response kid = %q, want %q", obj.Header.KeyID, kidClient)
		}
		if _, ok := obj.Header.ExtraHeaders["zip"]; ok {
			t.Errorf("response carries a zip header")
		}
		got, err := DecryptWith(f.client, compact)
		if err != nil {
			t.Fatalf("DecryptWith: %v", err)
		}
		if !bytes.Equal(got, resp) {
			t.Fatalf("DecryptWith = %q, want %q", got, resp)
		}
	})

	t.Run("empty plaintext", func(t *testing.T) {
		t.Parallel()
		compact, err := Encrypt(nil, &f.serverA.PublicKey, kidA)
		if err != nil {
			t.Fatalf("Encrypt: %v", err)
		}
		got, err := f.ring.Decrypt(kidA, compact)
		if err != nil || len(got) != 0 {
			t.Fatalf("Decrypt = %q, %v; want empty, nil", got, err)
		}
	})

	t.Run("every encryption is fresh", func(t *testing.T) {
		t.Parallel()
		if bytes.Equal(requestFor(t, kidA), requestFor(t, kidA)) {
			t.Fatal("two encryptions of one body are equal")
		}
	})
}

func TestDecryptKeyID(t *testing.T) {
	t.Parallel()
	f := keys(t)
	for _, tc := range []struct {
		name string
		kid  string
		body []byte
		want pinreset.Code
	}{
		{"unknown kid is 000_030", "kidZ0000000000000000000000000000", requestFor(t, kidA), pinreset.CodeUnknownCryptoKey},
		{"unknown kid is 000_030 whatever the body", "kidZ0000000000000000000000000000", []byte("garbage"), pinreset.CodeUnknownCryptoKey},
		{"empty kid is 000_030", "", requestFor(t, kidA), pinreset.CodeUnknownCryptoKey},
		{"kid header naming the other server key is 000_031", kidB, requestFor(t, kidA), pinreset.CodeUndecryptable},
		{"protected kid missing is 000_031", kidA, seal(t, jose.RSA_OAEP_256, jose.A256GCM, &f.serverA.PublicKey, "", nil, requestBody), pinreset.CodeUndecryptable},
		{"protected kid differs from the header is 000_031", kidA, seal(t, jose.RSA_OAEP_256, jose.A256GCM, &f.serverA.PublicKey, kidB, nil, requestBody), pinreset.CodeUndecryptable},
		{"protected kid differs in case is 000_031", kidA, seal(t, jose.RSA_OAEP_256, jose.A256GCM, &f.serverA.PublicKey, strings.ToUpper(kidA), nil, requestBody), pinreset.CodeUndecryptable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := f.ring.Decrypt(tc.kid, tc.body)
			wantCode(t, err, tc.want)
			if got != nil {
				t.Fatalf("plaintext %q returned with an error", got)
			}
		})
	}

	t.Run("nil keyring is 000_030", func(t *testing.T) {
		t.Parallel()
		var k *Keyring
		_, err := k.Decrypt(kidA, requestFor(t, kidA))
		wantCode(t, err, pinreset.CodeUnknownCryptoKey)
	})
}

func TestDecryptRefusesOtherAlgorithms(t *testing.T) {
	t.Parallel()
	f := keys(t)
	pub := &f.serverA.PublicKey
	modulus := pub.N.Bytes()
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkixHash := sha256.Sum256(pkix)
	jwksHash := sha256.Sum256(f.ring.JWKS())
	random32 := make([]byte, 32)
	rand.Read(random32)

	noneHeader := b64(`{"alg":"none","enc":"A256GCM","kid":"` + kidA + `"}`)
	iv := base64.RawURLEncoding.EncodeToString(make([]byte, 12))
	tag := base64.RawURLEncoding.EncodeToString(make([]byte, 16))

	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"alg RSA1_5", seal(t, jose.RSA1_5, jose.A256GCM, pub, kidA, nil, requestBody)},
		{"alg RSA-OAEP (SHA-1)", seal(t, jose.RSA_OAEP, jose.A256GCM, pub, kidA, nil, requestBody)},
		{"alg A256KW with a random key", seal(t, jose.A256KW, jose.A256GCM, random32, kidA, nil, requestBody)},
		{"alg A256KW with the modulus as key", seal(t, jose.A256KW, jose.A256GCM, modulus[:32], kidA, nil, requestBody)},
		{"alg A256KW with the public key hash as key", seal(t, jose.A256KW, jose.A256GCM, pkixHash[:], kidA, nil, requestBody)},
		{"alg A128KW", seal(t, jose.A128KW, jose.A256GCM, random32[:16], kidA, nil, requestBody)},
		{"alg A256GCMKW", seal(t, jose.A256GCMKW, jose.A256GCM, random32, kidA, nil, requestBody)},
		{"alg dir with a random key", seal(t, jose.DIRECT, jose.A256GCM, random32, kidA, nil, requestBody)},
		{"alg dir with the modulus as key", seal(t, jose.DIRECT, jose.A256GCM, modulus[:32], kidA, nil, requestBody)},
		{"alg dir with the JWKS hash as key", seal(t, jose.DIRECT, jose.A256GCM, jwksHash[:], kidA, nil, requestBody)},
		{"alg PBES2 with the public key as password", seal(t, jose.PBES2_HS256_A128KW, jose.A256GCM, pkix, kidA, nil, requestBody)},
		{"alg ECDH-ES", seal(t, jose.ECDH_ES, jose.A256GCM, &f.ec.PublicKey, kidA, nil, requestBody)},
		{"alg ECDH-ES+A256KW", seal(t, jose.ECDH_ES_A256KW, jose.A256GCM, &f.ec.PublicKey, kidA, nil, requestBody)},
		{"alg none, hand assembled", []byte(noneHeader + ".." + iv + "." + b64(string(requestBody)) + "." + tag)},
		{"alg none with an encrypted key part", []byte(noneHeader + "." + b64("x") + "." + iv + "." + b64(string(requestBody)) + "." + tag)},
		{"alg missing", withPart(requestFor(t, kidA), 0, b64(`{"enc":"A256GCM","kid":"`+kidA+`"}`))},
		{"alg in lower case", withPart(requestFor(t, kidA), 0, b64(`{"alg":"rsa-oaep-256","enc":"A256GCM","kid":"`+kidA+`"}`))},
		{"alg not a string", withPart(requestFor(t, kidA), 0, b64(`{"alg":["RSA-OAEP-256"],"enc":"A256GCM","kid":"`+kidA+`"}`))},
		{"alg swapped to dir on a valid body", withPart(requestFor(t, kidA), 0, b64(`{"alg":"dir","enc":"A256GCM","kid":"`+kidA+`"}`))},
		{"enc A128GCM", seal(t, jose.RSA_OAEP_256, jose.A128GCM, pub, kidA, nil, requestBody)},
		{"enc A192GCM", seal(t, jose.RSA_OAEP_256, jose.A192GCM, pub, kidA, nil, requestBody)},
		{"enc A256CBC-HS512", seal(t, jose.RSA_OAEP_256, jose.A256CBC_HS512, pub, kidA, nil, requestBody)},
		{"enc A128CBC-HS256", seal(t, jose.RSA_OAEP_256, jose.A128CBC_HS256, pub, kidA, nil, requestBody)},
		{"enc missing", withPart(requestFor(t, kidA), 0, b64(`{"alg":"RSA-OAEP-256","kid":"`+kidA+`"}`))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := f.ring.Decrypt(kidA, tc.body)
			wantCode(t, err, pinreset.CodeUndecryptable)
			if got != nil {
				t.Fatalf("plaintext %q returned with an error", got)
			}
			// Two layers: several of these already fail the shape check (an
			// empty encrypted key, a 16-byte IV), so check that go-jose's
			// allow-list refuses each one on its own too.
			if _, err := jose.ParseEncryptedCompact(string(tc.body), keyAlgorithms, contentEncryptions); err == nil {
				t.Fatal("go-jose's algorithm allow-list alone accepts it")
			}
		})
	}
}

func TestDecryptRefusesTamperingAndBadShapes(t *testing.T) {
	t.Parallel()
	f := keys(t)
	valid := requestFor(t, kidA)
	parts := strings.Split(string(valid), ".")

	// Move the last ciphertext bytes into the tag: go-jose only checks that
	// the tag is at least 16 bytes, and GCM sees the same ciphertext||tag.
	ct, _ := base64.RawURLEncoding.DecodeString(parts[3])
	tg, _ := base64.RawURLEncoding.DecodeString(parts[4])
	splitTag := []byte(strings.Join([]string{parts[0], parts[1], parts[2],
		base64.RawURLEncoding.EncodeToString(ct[:len(ct)-3]),
		base64.RawURLEncoding.EncodeToString(append(slices.Clone(ct[len(ct)-3:]), tg...))}, "."))
	// Sanity: the shape check is what refuses it, go-jose alone would not.
	if obj, err := jose.ParseEncryptedCompact(string(splitTag), keyAlgorithms, contentEncryptions); err != nil {
		t.Fatalf("split-tag body does not parse: %v", err)
	} else if _, err := obj.Decrypt(f.serverA); err != nil {
		t.Fatalf("go-jose no longer takes a split tag (%v); keep the check anyway", err)
	}

	// A last character with non-zero unused bits decodes to the same tag.
	lastTag := []byte(parts[4])
	lastTag[len(lastTag)-1] ^= 1 // 16 bytes = 22 chars, 4 unused bits in the last
	nonCanonicalTag := withPart(valid, 4, string(lastTag))

	json := func() []byte {
		obj, err := jose.ParseEncryptedCompact(string(valid), keyAlgorithms, contentEncryptions)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(obj.FullSerialize())
	}()

	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"protected header byte flipped", flipMiddle(valid, 0)},
		{"encrypted key byte flipped", flipMiddle(valid, 1)},
		{"IV byte flipped", flipMiddle(valid, 2)},
		{"ciphertext byte flipped", flipMiddle(valid, 3)},
		{"tag byte flipped", flipMiddle(valid, 4)},
		{"tag with non-canonical trailing bits", nonCanonicalTag},
		{"tag split off the ciphertext", splitTag},
		{"tag truncated", withPart(valid, 4, parts[4][:len(parts[4])-2])},
		{"tag empty", withPart(valid, 4, "")},
		{"IV of 16 bytes", withPart(valid, 2, base64.RawURLEncoding.EncodeToString(make([]byte, 16)))},
		{"IV empty", withPart(valid, 2, "")},
		{"encrypted key empty", withPart(valid, 1, "")},
		{"encrypted key truncated", withPart(valid, 1, parts[1][:len(parts[1])-4])},
		{"protected header empty", withPart(valid, 0, "")},
		{"protected header not JSON", withPart(valid, 0, b64("not json"))},
		{"protected header JSON null", withPart(valid, 0, b64("null"))},
		{"last part dropped", []byte(strings.Join(parts[:4], "."))},
		{"two parts dropped", []byte(strings.Join(parts[:3], "."))},
		{"header only", []byte(parts[0])},
		{"six parts", append(slices.Clone(valid), '.')},
		{"empty body", []byte{}},
		{"nil body", nil},
		{"only dots", []byte("....")},
		{"many dots", bytes.Repeat([]byte{'.'}, 10000)},
		{"huge base64 garbage", []byte(strings.Repeat("A", 12000) + "." + strings.Repeat("B", 12000) + "." + strings.Repeat("C", 16) + "." + strings.Repeat("D", 12000) + "." + strings.Repeat("E", 22))},
		{"over 64 KiB", bytes.Repeat([]byte{'A'}, MaxCompactSize+1)},
		{"valid body padded over 64 KiB", append(slices.Clone(valid), bytes.Repeat([]byte{'A'}, MaxCompactSize)...)},
		{"non-base64 characters", []byte("!!!!.@@@@.####.$$$$.%%%%")},
		{"standard base64 alphabet", []byte(strings.NewReplacer("-", "+", "_", "/").Replace(string(valid)) + "+/")},
		{"padding", withPart(valid, 4, parts[4]+"==")},
		{"newline inside", []byte(parts[0] + "\n." + strings.Join(parts[1:], "."))},
		{"leading space", append([]byte(" "), valid...)},
		{"trailing newline", append(slices.Clone(valid), '\n')},
		{"JSON serialization", json},
		{"JSON serialization with whitespace", append([]byte("  \n"), json...)},
		{"plain JSON body", requestBody},
		{"zip DEF header", seal(t, jose.RSA_OAEP_256, jose.A256GCM, &f.serverA.PublicKey, kidA, &jose.EncrypterOptions{Compression: jose.DEFLATE}, requestBody)},
		{"zip bomb", seal(t, jose.RSA_OAEP_256, jose.A256GCM, &f.serverA.PublicKey, kidA, &jose.EncrypterOptions{Compression: jose.DEFLATE}, bytes.Repeat([]byte{'0'}, 1<<20))},
		{"crit header", seal(t, jose.RSA_OAEP_256, jose.A256GCM, &f.serverA.PublicKey, kidA, (&jose.EncrypterOptions{}).WithHeader("crit", []string{"exp"}).WithHeader("exp", 1), requestBody)},
		{"body for another server key", seal(t, jose.RSA_OAEP_256, jose.A256GCM, &f.serverB.PublicKey, kidA, nil, requestBody)},
		{"body for the client key", seal(t, jose.RSA_OAEP_256, jose.A256GCM, &f.client.PublicKey, kidA, nil, requestBody)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := f.ring.Decrypt(kidA, tc.body)
			wantCode(t, err, pinreset.CodeUndecryptable)
			if got != nil {
				t.Fatalf("plaintext %q returned with an error", got)
			}
		})
	}
}

func TestDecryptWith(t *testing.T) {
	t.Parallel()
	f := keys(t)
	for _, tc := range []struct {
		name string
		priv *rsa.PrivateKey
		body []byte
	}{
		{"wrong private key", f.serverA, mustEncrypt(t, []byte("{}"), &f.client.PublicKey, kidClient)},
		{"alg RSA-OAEP (SHA-1)", f.client, seal(t, jose.RSA_OAEP, jose.A256GCM, &f.client.PublicKey, kidClient, nil, []byte("{}"))},
		{"alg RSA1_5", f.client, seal(t, jose.RSA1_5, jose.A256GCM, &f.client.PublicKey, kidClient, nil, []byte("{}"))},
		{"enc A128GCM", f.client, seal(t, jose.RSA_OAEP_256, jose.A128GCM, &f.client.PublicKey, kidClient, nil, []byte("{}"))},
		{"zip DEF header", f.client, seal(t, jose.RSA_OAEP_256, jose.A256GCM, &f.client.PublicKey, kidClient, &jose.EncrypterOptions{Compression: jose.DEFLATE}, []byte("{}"))},
		{"tag byte flipped", f.client, flipMiddle(mustEncrypt(t, []byte("{}"), &f.client.PublicKey, kidClient), 4)},
		{"no private key", nil, mustEncrypt(t, []byte("{}"), &f.client.PublicKey, kidClient)},
		{"empty body", f.client, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecryptWith(tc.priv, tc.body)
			wantCode(t, err, pinreset.CodeUndecryptable)
		})
	}

	t.Run("any kid, or none, is accepted", func(t *testing.T) {
		t.Parallel()
		for _, kid := range []string{"", "x", kidA} {
			got, err := DecryptWith(f.client, mustEncrypt(t, []byte("{}"), &f.client.PublicKey, kid))
			if err != nil || string(got) != "{}" {
				t.Fatalf("kid %q: DecryptWith = %q, %v", kid, got, err)
			}
		}
	})
}

func mustEncrypt(t *testing.T, plaintext []byte, pub *rsa.PublicKey, kid string) []byte {
	t.Helper()
	out, err := Encrypt(plaintext, pub, kid)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return out
}

func TestEncryptRefusesWeakKeys(t *testing.T) {
	t.Parallel()
	f := keys(t)
	for _, tc := range []struct {
		name string
		pub  *rsa.PublicKey
	}{
		{"nil key", nil},
		{"key without modulus", &rsa.PublicKey{E: 65537}},
		{"RSA-1024", &f.small.PublicKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if out, err := Encrypt(requestBody, tc.pub, kidClient); err == nil {
				t.Fatalf("Encrypt = %q, want an error", out)
			}
		})
	}

	t.Run("empty kid omits the kid header", func(t *testing.T) {
		t.Parallel()
		out := mustEncrypt(t, requestBody, &f.client.PublicKey, "")
		header, _ := base64.RawURLEncoding.DecodeString(strings.SplitN(string(out), ".", 2)[0])
		if bytes.Contains(header, []byte(`"kid"`)) {
			t.Fatalf("header %s has a kid", header)
		}
	})
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	f := keys(t)
	raw := f.ring.JWKS()

	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("JWKS is not JSON: %v\n%s", err, raw)
	}
	if len(doc.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(doc.Keys))
	}
	for i, want := range []string{kidA, kidB} { // sorted by kid
		k := doc.Keys[i]
		for field, v := range map[string]string{"kid": want, "kty": "RSA", "use": "enc", "alg": "RSA-OAEP-256"} {
			if k[field] != v {
				t.Errorf("key %d: %s = %v, want %q", i, field, k[field], v)
			}
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %s publishes private parameter %q", want, private)
			}
		}
	}

	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("go-jose cannot parse the JWKS: %v", err)
	}
	for kid, priv := range map[string]*rsa.PrivateKey{kidA: f.serverA, kidB: f.serverB} {
		got := set.Key(kid)
		if len(got) != 1 {
			t.Fatalf("JWKS has %d keys with kid %s, want 1", len(got), kid)
		}
		if !got[0].IsPublic() || !got[0].Valid() {
			t.Errorf("key %s: public %v, valid %v", kid, got[0].IsPublic(), got[0].Valid())
		}
		pub, ok := got[0].Key.(*rsa.PublicKey)
		if !ok || !pub.Equal(&priv.PublicKey) {
			t.Errorf("key %s: %T is not the server's public key", kid, got[0].Key)
		}
		// A client that only has the JWKS can encrypt to the server.
		body, err := Encrypt(requestBody, pub, kid)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := f.ring.Decrypt(kid, body); err != nil || !bytes.Equal(pt, requestBody) {
			t.Errorf("key %s: Decrypt of a JWKS-encrypted body = %q, %v", kid, pt, err)
		}
	}

	t.Run("deterministic and not aliased", func(t *testing.T) {
		t.Parallel()
		a := f.ring.JWKS()
		a[0] = 'X'
		if b := f.ring.JWKS(); !bytes.Equal(b, raw) {
			t.Fatalf("JWKS changed after a caller modified its copy")
		}
	})
}

func TestRotation(t *testing.T) {
	t.Parallel()
	f := keys(t)
	for _, kid := range []string{kidA, kidB} {
		t.Run("decrypts bodies made for "+kid, func(t *testing.T) {
			t.Parallel()
			got, err := f.ring.Decrypt(kid, requestFor(t, kid))
			if err != nil || !bytes.Equal(got, requestBody) {
				t.Fatalf("Decrypt = %q, %v", got, err)
			}
		})
	}
}

func TestNewKeyringRefusesBadKeys(t *testing.T) {
	t.Parallel()
	f := keys(t)
	for _, tc := range []struct {
		name string
		keys map[string]*rsa.PrivateKey
	}{
		{"no keys", nil},
		{"kid of 31 characters", map[string]*rsa.PrivateKey{kidA[:31]: f.serverA}},
		{"kid of 33 characters", map[string]*rsa.PrivateKey{kidA + "0": f.serverA}},
		{"kid with a dot", map[string]*rsa.PrivateKey{"kid.000000000000000000000000000A": f.serverA}},
		{"kid with a slash", map[string]*rsa.PrivateKey{"kid/000000000000000000000000000A": f.serverA}},
		{"kid with a non-ASCII letter", map[string]*rsa.PrivateKey{"kidé00000000000000000000000000A": f.serverA}},
		{"nil key", map[string]*rsa.PrivateKey{kidA: nil}},
		{"RSA-1024", map[string]*rsa.PrivateKey{kidA: f.small}},
		{"one bad key among good ones", map[string]*rsa.PrivateKey{kidA: f.serverA, kidB: f.small}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if k, err := NewKeyring(tc.keys); err == nil {
				t.Fatalf("NewKeyring = %v, want an error", k)
			}
		})
	}
}

func pemOf(t testing.TB, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadKeyring(t *testing.T) {
	t.Parallel()
	f := keys(t)

	t.Run("PKCS#1 and PKCS#8 files, other files ignored", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFile(t, dir, kidA+".pem", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(f.serverA)))
		writeFile(t, dir, kidB+".pem", pemOf(t, "PRIVATE KEY", pkcs8(t, f.serverB)))
		writeFile(t, dir, "README.txt", []byte("not a key"))
		writeFile(t, dir, ".hidden.pem", []byte("not a key"))
		if err := os.Mkdir(filepath.Join(dir, "old"), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "old"), "kidC0000000000000000000000000000.pem", []byte("not a key"))

		k, err := LoadKeyring(dir)
		if err != nil {
			t.Fatalf("LoadKeyring: %v", err)
		}
		for _, kid := range []string{kidA, kidB} {
			got, err := k.Decrypt(kid, requestFor(t, kid))
			if err != nil || !bytes.Equal(got, requestBody) {
				t.Fatalf("kid %s: Decrypt = %q, %v", kid, got, err)
			}
		}
		if !bytes.Equal(k.JWKS(), f.ring.JWKS()) {
			t.Errorf("JWKS of the loaded keyring differs from the one built in memory")
		}
	})

	t.Run("symlinked key file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFile(t, dir, "target", pemOf(t, "PRIVATE KEY", pkcs8(t, f.serverA)))
		if err := os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, kidA+".pem")); err != nil {
			t.Skip("no symlinks:", err)
		}
		if _, err := LoadKeyring(dir); err != nil {
			t.Fatalf("LoadKeyring: %v", err)
		}
	})

	goodPEM := pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(f.serverA))
	for _, tc := range []struct {
		name string
		file string
		data []byte
	}{
		{"not PEM", kidA + ".pem", []byte("hello")},
		{"empty file", kidA + ".pem", nil},
		{"truncated PEM", kidA + ".pem", goodPEM[:len(goodPEM)/2]},
		{"PKCS#1 labelled PRIVATE KEY", kidA + ".pem", pemOf(t, "PRIVATE KEY", x509.MarshalPKCS1PrivateKey(f.serverA))},
		{"PKCS#8 labelled RSA PRIVATE KEY", kidA + ".pem", pemOf(t, "RSA PRIVATE KEY", pkcs8(t, f.serverA))},
		{"corrupt DER", kidA + ".pem", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(f.serverA)[:600])},
		{"EC key", kidA + ".pem", pemOf(t, "PRIVATE KEY", pkcs8(t, f.ec))},
		{"public key", kidA + ".pem", pemOf(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&f.serverA.PublicKey))},
		{"encrypted PKCS#8", kidA + ".pem", pemOf(t, "ENCRYPTED PRIVATE KEY", pkcs8(t, f.serverA))},
		{"two keys in one file", kidA + ".pem", append(slices.Clone(goodPEM), pemOf(t, "PRIVATE KEY", pkcs8(t, f.serverB))...)},
		{"RSA-1024", kidA + ".pem", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(f.small))},
		{"file name not a 32-character kid", "server.pem", goodPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, dir, tc.file, tc.data)
			k, err := LoadKeyring(dir)
			if err == nil {
				t.Fatalf("LoadKeyring = %v, want an error", k)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.file) {
				t.Errorf("error %q does not name the file %s", msg, tc.file)
			}
			assertNoKeyMaterial(t, msg, tc.data)
			assertNoKeyMaterial(t, msg, goodPEM)
		})
	}

	for _, tc := range []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"empty directory", func(t *testing.T) string { return t.TempDir() }},
		{"missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if k, err := LoadKeyring(tc.dir(t)); err == nil {
				t.Fatalf("LoadKeyring = %v, want an error", k)
			}
		})
	}
}

// assertNoKeyMaterial fails if msg holds any base64 line of the PEM, or the
// key's DER in hex-ish form.
func assertNoKeyMaterial(t *testing.T, msg string, pemData []byte) {
	t.Helper()
	for _, line := range strings.Split(string(pemData), "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line[:16]) {
			t.Fatalf("error %q quotes the PEM line %q", msg, line)
		}
	}
	if strings.Contains(msg, "-----BEGIN") {
		t.Fatalf("error %q quotes a PEM armour line", msg)
	}
	if block, _ := pem.Decode(pemData); block != nil && len(block.Bytes) > 16 {
		if strings.Contains(msg, string(block.Bytes[8:16])) {
			t.Fatalf("error %q quotes DER bytes", msg)
		}
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	t.Parallel()
	f := keys(t)
	pkix, err := x509.MarshalPKIXPublicKey(&f.client.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPKIX, err := x509.MarshalPKIXPublicKey(&f.ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	smallPKIX, err := x509.MarshalPKIXPublicKey(&f.small.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		pem  []byte
		ok   bool
	}{
		{"PKIX PUBLIC KEY", pemOf(t, "PUBLIC KEY", pkix), true},
		{"PKCS#1 RSA PUBLIC KEY", pemOf(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&f.client.PublicKey)), true},
		{"surrounding white space", append(append([]byte("\n\n"), pemOf(t, "PUBLIC KEY", pkix)...), "\n  \n"...), true},
		{"PKCS#1 labelled PUBLIC KEY", pemOf(t, "PUBLIC KEY", x509.MarshalPKCS1PublicKey(&f.client.PublicKey)), false},
		{"EC public key", pemOf(t, "PUBLIC KEY", ecPKIX), false},
		{"RSA-1024", pemOf(t, "PUBLIC KEY", smallPKIX), false},
		{"private key", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(f.client)), false},
		{"certificate label", pemOf(t, "CERTIFICATE", pkix), false},
		{"two blocks", append(pemOf(t, "PUBLIC KEY", pkix), pemOf(t, "PUBLIC KEY", pkix)...), false},
		{"not PEM", []byte("ssh-rsa AAAA"), false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pub, err := ParsePublicKeyPEM(tc.pem)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParsePublicKeyPEM = %v, want an error", pub)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM: %v", err)
			}
			if !pub.Equal(&f.client.PublicKey) {
				t.Fatal("ParsePublicKeyPEM returned another key")
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	f := keys(b)
	body := requestFor(b, kidA)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.ring.Decrypt(kidA, body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPanicBecomesUndecryptable(t *testing.T) {
	t.Parallel()
	plaintext, err := func() (p []byte, err error) {
		defer recoverUndecryptable(&p, &err)
		p = []byte("partial")
		panic("boom")
	}()
	if plaintext != nil {
		t.Errorf("plaintext = %q after a panic, want nil", plaintext)
	}
	if got := pinreset.ErrorCode(err); got != pinreset.CodeUndecryptable {
		t.Errorf("code = %s, want %s", got, pinreset.CodeUndecryptable)
	}
	if !errors.Is(err, errPanic) {
		t.Errorf("err = %v, not marked errPanic", err)
	}
}
