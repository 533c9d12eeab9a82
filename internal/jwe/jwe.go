// Package jwe is the message encryption of SPEC section 4: a request whose
// X-KM-Crypto-Key-Id header is set carries a JWE compact serialization
// (alg RSA-OAEP-256, enc A256GCM) instead of its JSON body, and its response is
// a JWE of the same algorithms to the ASP's registered client key.
//
// The JOSE work is done by github.com/go-jose/go-jose/v4. This package adds
// what the contract needs on top of it: exactly one key and one content
// algorithm, compact serialization only, canonical base64url, no compression,
// no critical headers, the protected kid bound to the key id header, a body size
// limit, and errors that are catalogue codes (000_030, 000_031), never a 500.
package jwe

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// The algorithms of the contract. Passing these lists to
// jose.ParseEncryptedCompact is what stops algorithm confusion: go-jose v4
// refuses any other "alg" or "enc" at parse time, before any key is touched.
const (
	keyAlgorithm      = jose.RSA_OAEP_256 // "RSA-OAEP-256"
	contentEncryption = jose.A256GCM      // "A256GCM"
)

var (
	keyAlgorithms      = []jose.KeyAlgorithm{keyAlgorithm}
	contentEncryptions = []jose.ContentEncryption{contentEncryption}
)

// MaxCompactSize is the largest JWE compact serialization Decrypt and
// DecryptWith accept, in bytes: 64 KiB. Request bodies are a few hundred bytes.
const MaxCompactSize = 64 << 10

// keyIDLen is the length of a key id: X-KM-Crypto-Key-Id is exactly 32
// characters of A-Z a-z 0-9 _ -.
const keyIDLen = 32

// minRSABits is the smallest RSA modulus accepted for any key, ours or a client's.
const minRSABits = 2048

// Lengths fixed by A256GCM (RFC 7518 section 5.3): a 96-bit IV and a 128-bit tag.
const (
	gcmIVLen  = 12
	gcmTagLen = 16
)

// errPanic marks an error that stands for a recovered panic, so the fuzz test
// can tell a panic (a bug) from a refused input.
var errPanic = errors.New("jwe: recovered panic")

// Keyring holds the server's RSA private keys by kid; several during a key
// rotation. It is immutable once built and safe for concurrent use.
type Keyring struct {
	keys map[string]*rsa.PrivateKey
	jwks []byte // the public JWKS, built once, sorted by kid
}

// NewKeyring builds a keyring from private keys by kid. Every kid must be
// exactly 32 characters of A-Z a-z 0-9 _ -, every key RSA of at least 2048 bits
// that passes rsa.PrivateKey.Validate, and there must be at least one key.
func NewKeyring(keys map[string]*rsa.PrivateKey) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("jwe: keyring: no keys")
	}
	k := &Keyring{keys: make(map[string]*rsa.PrivateKey, len(keys))}
	for kid, priv := range keys {
		if err := checkPrivateKey(kid, priv); err != nil {
			return nil, fmt.Errorf("jwe: keyring: %w", err)
		}
		k.keys[kid] = priv
	}

	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(k.keys))}
	for _, kid := range slices.Sorted(maps.Keys(k.keys)) {
		set.Keys = append(set.Keys, jose.JSONWebKey{
			// The public half only: go-jose marshals d, p, q, dp, dq and qi
			// when given the *rsa.PrivateKey itself.
			Key:       &k.keys[kid].PublicKey,
			KeyID:     kid,
			Algorithm: string(keyAlgorithm),
			Use:       "enc",
		})
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("jwe: keyring: marshal JWKS: %w", err)
	}
	k.jwks = jwks
	return k, nil
}

// checkPrivateKey reports why kid and priv cannot join a keyring. Its errors
// name the kid (not secret) and never carry key material.
func checkPrivateKey(kid string, priv *rsa.PrivateKey) error {
	if !validKeyID(kid) {
		return fmt.Errorf("key id %q: must be exactly %d characters of A-Z a-z 0-9 _ -", kid, keyIDLen)
	}
	if priv == nil || priv.N == nil {
		return fmt.Errorf("key %s: no key", kid)
	}
	if bits := priv.N.BitLen(); bits < minRSABits {
		return fmt.Errorf("key %s: RSA key of %d bits, want at least %d", kid, bits, minRSABits)
	}
	if err := priv.Validate(); err != nil {
		return fmt.Errorf("key %s: invalid RSA private key", kid)
	}
	return nil
}

// validKeyID reports whether kid has the form of X-KM-Crypto-Key-Id: exactly
// 32 characters of A-Z a-z 0-9 _ -.
func validKeyID(kid string) bool {
	if len(kid) != keyIDLen {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// PublicKey returns the public key published under kid, for clients and tests
// that encrypt a request body to the server (see Encrypt).
func (k *Keyring) PublicKey(kid string) (*rsa.PublicKey, bool) {
	if k == nil {
		return nil, false
	}
	priv, ok := k.keys[kid]
	if !ok {
		return nil, false
	}
	return &priv.PublicKey, true
}

// JWKS returns the JSON Web Key Set of the public keys, {"keys":[...]}, sorted
// by kid, each with kid, kty "RSA", use "enc" and alg "RSA-OAEP-256". It is the
// body of GET /.well-known/jwks.json. The caller may modify the returned slice.
func (k *Keyring) JWKS() []byte {
	if k == nil || k.jwks == nil {
		return []byte(`{"keys":[]}`)
	}
	return bytes.Clone(k.jwks)
}

// Decrypt opens a request body sent with X-KM-Crypto-Key-Id: kid and returns
// the plaintext JSON body.
//
// A kid the keyring does not hold is pinreset.CodeUnknownCryptoKey (000_030).
// Anything else wrong is pinreset.CodeUndecryptable (000_031): a body over
// MaxCompactSize; anything but a five-part compact serialization of canonical
// base64url (JSON serialization, whitespace, padding, truncation); an alg other
// than RSA-OAEP-256 or an enc other than A256GCM; a "zip" or "crit" header; a
// protected kid missing or different from kid; an IV or tag of the wrong
// length; a failed RSA or GCM open (any tampering). The error's text carries
// the reason for the log; its catalogue message is what a client may see.
//
// Decrypt does not panic: a panic inside it (a go-jose bug) is recovered and
// reported as 000_031.
func (k *Keyring) Decrypt(kid string, body []byte) (plaintext []byte, err error) {
	defer recoverUndecryptable(&plaintext, &err)
	var priv *rsa.PrivateKey
	if k != nil {
		priv = k.keys[kid]
	}
	if priv == nil {
		return nil, pinreset.Errorf(pinreset.CodeUnknownCryptoKey, "")
	}
	return open(priv, body, true, kid)
}

// DecryptWith is what a client does with a response body: open the compact
// JWE with its private key. The same rules as Decrypt apply (RSA-OAEP-256 and
// A256GCM only, compact only, no zip or crit, at most MaxCompactSize bytes),
// except that any kid is accepted. Errors are pinreset.CodeUndecryptable.
func DecryptWith(priv *rsa.PrivateKey, compact []byte) (plaintext []byte, err error) {
	defer recoverUndecryptable(&plaintext, &err)
	if priv == nil || priv.N == nil {
		return nil, undecryptable("no private key", nil)
	}
	return open(priv, compact, false, "")
}

// Encrypt makes the compact JWE (RSA-OAEP-256, A256GCM) of plaintext to pub,
// with protected header kid = kid (omitted when kid is ""). The server uses it
// for a response, to the ASP's registered client key; a client uses it for a
// request, to the server key published under kid (Keyring.PublicKey, or the
// JWKS). pub must be RSA of at least 2048 bits.
func Encrypt(plaintext []byte, pub *rsa.PublicKey, kid string) ([]byte, error) {
	if pub == nil || pub.N == nil {
		return nil, errors.New("jwe: encrypt: no public key")
	}
	if bits := pub.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("jwe: encrypt: RSA key of %d bits, want at least %d", bits, minRSABits)
	}
	enc, err := jose.NewEncrypter(contentEncryption, jose.Recipient{Algorithm: keyAlgorithm, Key: pub, KeyID: kid}, nil)
	if err != nil {
		return nil, fmt.Errorf("jwe: encrypt: %w", err)
	}
	obj, err := enc.Encrypt(plaintext)
	if err != nil {
		return nil, fmt.Errorf("jwe: encrypt: %w", err)
	}
	compact, err := obj.CompactSerialize()
	if err != nil {
		return nil, fmt.Errorf("jwe: encrypt: %w", err)
	}
	return []byte(compact), nil
}

// open checks and decrypts a compact JWE with priv. When checkKid is set the
// protected header's kid must equal kid.
func open(priv *rsa.PrivateKey, body []byte, checkKid bool, kid string) ([]byte, error) {
	if len(body) > MaxCompactSize {
		return nil, undecryptable(fmt.Sprintf("body of %d bytes is over %d", len(body), MaxCompactSize), nil)
	}
	if err := checkCompactShape(body); err != nil {
		return nil, undecryptable("not a compact JWE", err)
	}

	// ParseEncryptedCompact, not the deprecated ParseEncrypted: that one also
	// takes the JSON serialization (the "polyglot token" shape) and strips
	// whitespace. The algorithm lists make go-jose refuse every other alg and enc.
	obj, err := jose.ParseEncryptedCompact(string(body), keyAlgorithms, contentEncryptions)
	if err != nil {
		return nil, undecryptable("parse", err)
	}
	// Belt and braces over the parse-time check, from the same parsed header.
	if obj.Header.Algorithm != string(keyAlgorithm) {
		return nil, undecryptable(fmt.Sprintf("alg %q", obj.Header.Algorithm), nil)
	}
	if enc, _ := obj.Header.ExtraHeaders["enc"].(string); enc != string(contentEncryption) {
		return nil, undecryptable(fmt.Sprintf("enc %v", obj.Header.ExtraHeaders["enc"]), nil)
	}
	// go-jose would inflate a "zip":"DEF" plaintext (up to 250 kB or 10x) after
	// the GCM check; anyone can encrypt to our public key, so refuse it here,
	// before the RSA work.
	if _, ok := obj.Header.ExtraHeaders["zip"]; ok {
		return nil, undecryptable(`"zip" header (compression is refused)`, nil)
	}
	if _, ok := obj.Header.ExtraHeaders["crit"]; ok {
		return nil, undecryptable(`"crit" header`, nil)
	}
	if checkKid && obj.Header.KeyID != kid {
		return nil, undecryptable(fmt.Sprintf("protected kid %q is not the key id header", obj.Header.KeyID), nil)
	}

	plaintext, err := obj.Decrypt(priv)
	if err != nil {
		return nil, undecryptable("decrypt", err)
	}
	return plaintext, nil
}

// checkCompactShape checks what go-jose leaves loose in a compact JWE: five
// parts of canonical unpadded base64url with nothing else (go-jose's decoder
// skips CR and LF and takes non-zero trailing bits), a protected header and an
// encrypted key, a 12-byte IV and a 16-byte tag (go-jose takes a longer tag, so
// bytes could move between ciphertext and tag and still decrypt).
func checkCompactShape(body []byte) error {
	if n := bytes.Count(body, []byte{'.'}); n != 4 {
		return fmt.Errorf("%d parts, want 5", n+1)
	}
	for _, c := range body {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return errors.New("a byte outside base64url")
		}
	}
	names := [5]string{"protected header", "encrypted key", "IV", "ciphertext", "tag"}
	strict := base64.RawURLEncoding.Strict()
	for i, part := range bytes.Split(body, []byte{'.'}) {
		n, err := strict.Decode(make([]byte, strict.DecodedLen(len(part))), part)
		if err != nil {
			return fmt.Errorf("%s: not canonical base64url", names[i])
		}
		switch {
		case i <= 1 && n == 0:
			return fmt.Errorf("%s: empty", names[i])
		case i == 2 && n != gcmIVLen:
			return fmt.Errorf("IV of %d bytes, want %d", n, gcmIVLen)
		case i == 4 && n != gcmTagLen:
			return fmt.Errorf("tag of %d bytes, want %d", n, gcmTagLen)
		}
	}
	return nil
}

// undecryptable is the 000_031 error, wrapped with the reason for the log.
func undecryptable(reason string, cause error) error {
	app := pinreset.Errorf(pinreset.CodeUndecryptable, "")
	if cause != nil {
		return fmt.Errorf("jwe: %s: %v: %w", reason, cause, app)
	}
	return fmt.Errorf("jwe: %s: %w", reason, app)
}

// recoverUndecryptable turns a panic into a 000_031 error marked errPanic.
func recoverUndecryptable(plaintext *[]byte, err *error) {
	if r := recover(); r != nil {
		*plaintext = nil
		*err = fmt.Errorf("%w: %v: %w", errPanic, r, pinreset.Errorf(pinreset.CodeUndecryptable, ""))
	}
}
