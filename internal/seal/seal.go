// Package seal encrypts the secret fields of a command (the PINs) before the
// command is published on Kafka, so that no PIN is ever on Kafka in clear
// (SPEC section 4). The envelope names the key it was sealed with so keys can
// rotate; the caller passes a canonical encoding of every clear field of the
// command (internal/wire's associatedData) as associated data, so a sealed
// field cannot be replayed into another command and no clear field can be
// changed without the envelope failing to open.
//
// The cipher is XChaCha20-Poly1305 (golang.org/x/crypto/chacha20poly1305.NewX)
// with a fresh 24-byte random nonce per message. It is chosen over AES-GCM
// because its 192-bit nonce makes random nonces safe for any realistic number
// of messages under one key (collision odds stay negligible far past 2^64
// messages), whereas GCM's 96-bit random nonces must be limited to about 2^32
// messages per key; no nonce counter has to be coordinated between producers.
//
// A Keyring is immutable once built by NewKeyring and safe for concurrent use.
package seal

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/kmwallet/pinreset/internal/keyspec"
	"github.com/kmwallet/pinreset/internal/secret"
)

const (
	// KeySize is the length of a Key's Secret in bytes.
	KeySize = chacha20poly1305.KeySize // 32
	// NonceSize is the length of an Envelope's Nonce in bytes.
	NonceSize = chacha20poly1305.NonceSizeX // 24

	maxIDLen = 32 // characters of a key id
)

// Errors returned by Open; test with errors.Is.
var (
	// ErrUnknownKey: the envelope names a key id the Keyring does not hold.
	ErrUnknownKey = errors.New("seal: unknown key id")
	// ErrOpen: the envelope does not authenticate (tampered ciphertext, nonce
	// or key id, wrong associated data, wrong key) or is malformed. Deliberately
	// one error: the caller learns nothing of which part failed.
	ErrOpen = errors.New("seal: cannot open envelope")
)

// Key is a 32-byte XChaCha20-Poly1305 key with an id, the id being written in
// every envelope sealed under it.
//
// Key formats and logs as its id only: the secret is a secret.Bytes, which
// never appears in fmt, slog, zap or JSON output.
type Key struct {
	ID     string       `json:"id"`     // [a-zA-Z0-9_-]{1,32}
	Secret secret.Bytes `json:"secret"` // exactly 32 bytes, from a CSPRNG
}

// String names the type and the id for the logs; the secret prints as its marker.
func (k Key) String() string { return "seal.Key{ID:" + k.ID + " Secret:" + k.Secret.String() + "}" }

// ParseKey parses a configuration value "<id>:<base64>", where base64 is the
// standard padded encoding of exactly 32 bytes (e.g. `openssl rand -base64 32`).
// Surrounding white space is ignored. The error never contains key material.
func ParseKey(s string) (Key, error) {
	id, secret, err := keyspec.Parse("seal: key", s, KeySize, KeySize)
	if err != nil {
		return Key{}, err
	}
	return Key{ID: id, Secret: secret}, nil
}

// validID reports whether id matches [a-zA-Z0-9_-]{1,32}. Such an id contains
// no 0x00, which is what makes kid || 0x00 || aad an unambiguous encoding.
func validID(id string) bool { return keyspec.ValidID(id) }

// Envelope is a sealed value as carried in a Kafka command. []byte fields are
// standard padded base64 in JSON.
type Envelope struct {
	KeyID      string `json:"kid"`
	Nonce      []byte `json:"nonce"` // NonceSize bytes
	Ciphertext []byte `json:"ct"`    // plaintext length + 16-byte Poly1305 tag
}

// Keyring seals with its current key and opens with any key it holds. Build it
// with NewKeyring; the zero value holds no key and every method returns an error.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD // id -> XChaCha20-Poly1305, current and old
}

// NewKeyring returns a Keyring that seals under current and opens envelopes
// sealed under current or any of old. Ids must be well formed and unique and
// every secret exactly 32 bytes. The secrets are copied (by NewX).
func NewKeyring(current Key, old ...Key) (*Keyring, error) {
	k := &Keyring{current: current.ID, aeads: make(map[string]cipher.AEAD, 1+len(old))}
	for i, key := range append([]Key{current}, old...) {
		what := "current key"
		if i > 0 {
			what = fmt.Sprintf("old key #%d", i)
		}
		if !validID(key.ID) {
			return nil, fmt.Errorf("seal: %s: id must match [a-zA-Z0-9_-]{1,32}", what)
		}
		if len(key.Secret) != KeySize {
			return nil, fmt.Errorf("seal: %s %q: secret is %d bytes, want %d", what, key.ID, len(key.Secret), KeySize)
		}
		if _, dup := k.aeads[key.ID]; dup {
			return nil, fmt.Errorf("seal: %s: duplicate key id %q", what, key.ID)
		}
		aead, err := chacha20poly1305.NewX(key.Secret)
		if err != nil { // unreachable after the length check
			return nil, fmt.Errorf("seal: %s %q: bad secret", what, key.ID)
		}
		k.aeads[key.ID] = aead
	}
	return k, nil
}

// Format prints the current key id and the number of keys, never a secret.
func (k *Keyring) Format(f fmt.State, _ rune) {
	if k == nil {
		_, _ = f.Write([]byte("seal.Keyring(nil)"))
		return
	}
	_, _ = fmt.Fprintf(f, "seal.Keyring{current=%s,keys=%d}", k.current, len(k.aeads))
}

func (k *Keyring) ready() error {
	if k == nil || k.aeads == nil {
		return errors.New("seal: Keyring not built with NewKeyring")
	}
	return nil
}

// Seal encrypts plaintext under the current key with a fresh random nonce.
// aad (the command's clear fields, encoded by internal/wire) is authenticated
// but not encrypted, and must be given again to Open. The current key id is bound into the
// authenticated data as well.
func (k *Keyring) Seal(plaintext, aad []byte) (Envelope, error) {
	if err := k.ready(); err != nil {
		return Envelope{}, err
	}
	nonce := make([]byte, NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return Envelope{}, fmt.Errorf("seal: reading nonce: %w", err)
	}
	ct := k.aeads[k.current].Seal(nil, nonce, plaintext, boundAAD(k.current, aad))
	return Envelope{KeyID: k.current, Nonce: nonce, Ciphertext: ct}, nil
}

// Open authenticates and decrypts e with the key named by e.KeyID and the same
// aad given to Seal. It returns ErrUnknownKey if the Keyring does not hold that
// key and ErrOpen for anything else that fails; it never returns a partial
// plaintext.
func (k *Keyring) Open(e Envelope, aad []byte) ([]byte, error) {
	if err := k.ready(); err != nil {
		return nil, err
	}
	aead, ok := k.aeads[e.KeyID]
	if !ok {
		if validID(e.KeyID) { // safe to quote into a log line
			return nil, fmt.Errorf("%w %q", ErrUnknownKey, e.KeyID)
		}
		return nil, ErrUnknownKey
	}
	if len(e.Nonce) != NonceSize { // NewX's Open would panic
		return nil, ErrOpen
	}
	pt, err := aead.Open(nil, e.Nonce, e.Ciphertext, boundAAD(e.KeyID, aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// boundAAD is the associated data actually authenticated: kid || 0x00 || aad.
// Binding the id means an envelope re-labelled to another key id fails to
// open even if both ids were given the same secret.
func boundAAD(kid string, aad []byte) []byte {
	b := make([]byte, 0, len(kid)+1+len(aad))
	b = append(b, kid...)
	b = append(b, 0)
	return append(b, aad...)
}

// ParseKeyring builds a keyring from configuration values "<id>:<base64>":
// the first seals, all open. The setting name prefixes every error.
func ParseKeyring(setting string, specs []string) (*Keyring, error) {
	keys, err := keyspec.List(setting, specs, ParseKey)
	if err != nil {
		return nil, err
	}
	ring, err := NewKeyring(keys[0], keys[1:]...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	return ring, nil
}
