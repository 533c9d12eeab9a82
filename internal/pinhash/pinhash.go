// Package pinhash hashes member PINs for storage at rest (SPEC section 4):
// argon2id (golang.org/x/crypto/argon2's, from the copy in third_party/argon2
// that computes in reused memory), a random salt per hash, and a server
// pepper held outside the database, encoded as a PHC string so the
// parameters and the pepper id travel with the hash and can be upgraded on the
// next successful set.
//
// A Hasher is immutable once built by New and safe for concurrent use.
package pinhash

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/kmwallet/pinreset/internal/keyspec"
	"github.com/kmwallet/pinreset/internal/secret"
	"github.com/kmwallet/pinreset/third_party/argon2"
)

// Bounds on the parameters, applied both by New and when parsing a stored hash,
// so that every hash we write can be verified and a tampered database row
// cannot make Verify allocate or spin unboundedly.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB, in KiB
	maxTime      = 100     // iterations
	minSaltLen   = 8       // bytes
	maxSaltLen   = 1024    // bytes
	minKeyLen    = 16      // bytes
	maxKeyLen    = 1024    // bytes
	minPepperLen = 16      // bytes
	maxIDLen     = 32      // characters of a pepper id

	// maxEncodedLen bounds the PHC string we are willing to parse. The longest
	// string New can produce (m=1048576,t=100,p=255, a 32-character pepper id,
	// 1024-byte salt and hash) is about 2,800 characters.
	maxEncodedLen = 4096

	algorithm = "argon2id"
)

// Errors returned by Verify; test with errors.Is. The wrapped detail names
// the faulty part but never echoes the stored string, the PIN or a pepper.
var (
	// ErrMalformed: the stored string is not an argon2id v=19 PHC string this
	// package produces, or its parameters are outside the accepted bounds.
	ErrMalformed = errors.New("pinhash: malformed hash")
	// ErrUnknownPepper: the stored string names a pepper id this Hasher does
	// not hold (retired too early, or the row was tampered with).
	ErrUnknownPepper = errors.New("pinhash: unknown pepper id")
)

// Params are the argon2id cost parameters and sizes.
type Params struct {
	// Memory is the argon2 memory cost in KiB. Default 19456 (19 MiB, the
	// OWASP minimum for argon2id with t=2, p=1). At most 1 GiB, at least 8*Threads.
	Memory uint32
	// Time is the number of passes over the memory. Default 2, at most 100.
	Time uint32
	// Threads is the argon2 parallelism (lanes). Default 1.
	Threads uint8
	// SaltLen is the length of the random salt in bytes. Default 16, 8..1024.
	SaltLen uint32
	// KeyLen is the length of the derived hash in bytes. Default 32, 16..1024.
	KeyLen uint32
}

// DefaultParams returns OWASP's argon2id recommendation: m=19 MiB, t=2, p=1,
// with a 16-byte salt and a 32-byte hash.
func DefaultParams() Params {
	return Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// validate reports the first parameter outside the bounds. Parameters are not
// secret, so their values may appear in the error.
func (p Params) validate() error {
	switch {
	case p.Threads < 1:
		return fmt.Errorf("pinhash: threads %d, want >= 1", p.Threads)
	case p.Memory < 8*uint32(p.Threads):
		return fmt.Errorf("pinhash: memory %d KiB, want >= 8*threads (%d)", p.Memory, 8*uint32(p.Threads))
	case p.Memory > maxMemoryKiB:
		return fmt.Errorf("pinhash: memory %d KiB, want <= %d", p.Memory, maxMemoryKiB)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("pinhash: time %d, want 1..%d", p.Time, maxTime)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("pinhash: salt length %d, want %d..%d bytes", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("pinhash: key length %d, want %d..%d bytes", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// Pepper is a server-held HMAC key, kept outside the database, with an id so
// that it can rotate: the id is stored in each hash (the PHC "k" parameter)
// and old peppers stay with the Hasher until no hash names them.
//
// Pepper formats and logs as its id only: the key is a secret.Bytes, which
// never appears in fmt, slog, zap or JSON output.
type Pepper struct {
	ID  string       `json:"id"`  // [a-zA-Z0-9_-]{1,32}
	Key secret.Bytes `json:"key"` // at least 16 bytes; 32 random bytes recommended
}

// String names the type and the id for the logs; the key prints as its marker.
func (p Pepper) String() string { return "pinhash.Pepper{ID:" + p.ID + " Key:" + p.Key.String() + "}" }

// ParsePepper parses a configuration value "<id>:<base64>", where base64 is
// the standard padded encoding of at least 16 bytes (32 recommended, e.g.
// `openssl rand -base64 32`). Surrounding white space is ignored. The error
// never contains the key material.
func ParsePepper(s string) (Pepper, error) {
	id, key, err := keyspec.Parse("pinhash: pepper", s, minPepperLen, 0)
	if err != nil {
		return Pepper{}, err
	}
	return Pepper{ID: id, Key: key}, nil
}

// validID reports whether id matches [a-zA-Z0-9_-]{1,32}. Such an id contains
// neither '$' nor ',' so it cannot break the PHC string it is written into.
func validID(id string) bool { return keyspec.ValidID(id) }

// Hasher hashes and verifies PINs with fixed parameters and a current pepper,
// and still verifies hashes made under the old peppers it was given. Build it
// with New; the zero value holds no pepper and every method returns an error.
type Hasher struct {
	params  Params
	current string            // id of the pepper new hashes use
	peppers map[string][]byte // id -> key, current and old; private copies

	// memory holds *argon2.Memory sized for params, one per hash in flight,
	// reused from hash to hash so that a hash allocates no argon2 blocks
	// (19 MiB at the defaults). It keeps about as many as ran at once (the
	// worker bounds that by its hashing slots), plus at most one idle per P
	// (sync.Pool does not steal another P's private item), until two
	// collections pass without their use. A stored hash with more memory
	// than params computes in memory of its own, which is not kept.
	memory sync.Pool
}

// New returns a Hasher that hashes with p and the current pepper and verifies
// hashes made under current or any of old. It checks the parameter bounds
// (see Params), that every pepper key is at least 16 bytes, and that the
// pepper ids are well formed and unique.
func New(p Params, current Pepper, old ...Pepper) (*Hasher, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	h := &Hasher{params: p, current: current.ID, peppers: make(map[string][]byte, 1+len(old))}
	h.memory.New = func() any { return argon2.NewMemory(p.Memory, p.Threads) }
	for i, pep := range append([]Pepper{current}, old...) {
		what := "current pepper"
		if i > 0 {
			what = fmt.Sprintf("old pepper #%d", i)
		}
		if !validID(pep.ID) {
			return nil, fmt.Errorf("pinhash: %s: id must match [a-zA-Z0-9_-]{1,32}", what)
		}
		if len(pep.Key) < minPepperLen {
			return nil, fmt.Errorf("pinhash: %s %q: key is %d bytes, want >= %d", what, pep.ID, len(pep.Key), minPepperLen)
		}
		if _, dup := h.peppers[pep.ID]; dup {
			return nil, fmt.Errorf("pinhash: %s: duplicate pepper id %q", what, pep.ID)
		}
		// Copy so that a caller reusing or wiping its slice cannot change us.
		h.peppers[pep.ID] = append([]byte(nil), pep.Key...)
	}
	return h, nil
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params {
	if h == nil {
		return Params{}
	}
	return h.params
}

// Format prints the parameters and pepper ids, never a pepper key.
func (h *Hasher) Format(f fmt.State, _ rune) {
	if h == nil {
		_, _ = f.Write([]byte("pinhash.Hasher(nil)"))
		return
	}
	_, _ = fmt.Fprintf(f, "pinhash.Hasher{m=%d,t=%d,p=%d,salt=%d,key=%d,pepper=%s,peppers=%d}",
		h.params.Memory, h.params.Time, h.params.Threads, h.params.SaltLen, h.params.KeyLen, h.current, len(h.peppers))
}

func (h *Hasher) ready() error {
	if h == nil || h.peppers == nil {
		return errors.New("pinhash: Hasher not built with New")
	}
	return nil
}

// Hash returns the PHC string of pin under the current parameters and pepper:
//
//	$argon2id$v=19$m=<KiB>,t=<time>,p=<threads>,k=<pepper id>$<salt>$<hash>
//
// with salt and hash in unpadded standard base64. The "k" parameter is ours:
// the PHC format allows algorithm-specific parameters, and it names the
// pepper so that peppers can rotate. (Strictly, PHC limits parameter values
// to [a-zA-Z0-9/+.-]; a pepper id with '_' steps outside that, which our
// parser accepts.) The salt is fresh from crypto/rand on every call, so two
// hashes of the same PIN differ.
func (h *Hasher) Hash(pin string) (string, error) {
	if err := h.ready(); err != nil {
		return "", err
	}
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("pinhash: reading salt: %w", err)
	}
	p := h.params
	key := h.derive(h.peppers[h.current], pin, salt, p)
	var b strings.Builder
	b.Grow(64 + base64.RawStdEncoding.EncodedLen(len(salt)) + base64.RawStdEncoding.EncodedLen(len(key)))
	fmt.Fprintf(&b, "$%s$v=%d$m=%d,t=%d,p=%d,k=%s$", algorithm, argon2.Version, p.Memory, p.Time, p.Threads, h.current)
	b.WriteString(base64.RawStdEncoding.EncodeToString(salt))
	b.WriteByte('$')
	b.WriteString(base64.RawStdEncoding.EncodeToString(key))
	return b.String(), nil
}

// derive is the one place the pepper is applied: argon2id's password input is
// HMAC-SHA256(pepper, pin), so a stolen database without the pepper does not
// let an attacker enumerate the (small) PIN space. The hash is x/crypto's
// argon2.IDKey, computed in pooled memory (h.memory).
func (h *Hasher) derive(pepper []byte, pin string, salt []byte, p Params) []byte {
	mac := hmac.New(sha256.New, pepper)
	mac.Write([]byte(pin))
	m := h.memory.Get().(*argon2.Memory)
	defer h.memory.Put(m)
	return m.IDKey(mac.Sum(nil), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// Verify reports whether pin matches encoded, a string made by Hash (of this
// or an earlier configuration). It recomputes with the parameters and pepper
// named in encoded and compares in constant time.
//
// needsRehash is true only when ok and encoded was made with parameters
// (including salt or hash length) or a pepper other than the current ones:
// the caller should then store a fresh Hash of pin.
//
// A wrong PIN is (false, false, nil). err is non-nil, wrapping ErrMalformed
// or ErrUnknownPepper, when encoded cannot be checked at all.
func (h *Hasher) Verify(pin, encoded string) (ok bool, needsRehash bool, err error) {
	if err := h.ready(); err != nil {
		return false, false, err
	}
	s, err := parse(encoded)
	if err != nil {
		return false, false, err
	}
	pepper, known := h.peppers[s.pepperID]
	if !known {
		// The id passed validID, so quoting it cannot inject into logs.
		return false, false, fmt.Errorf("%w %q", ErrUnknownPepper, s.pepperID)
	}
	got := h.derive(pepper, pin, s.salt, s.params)
	if subtle.ConstantTimeCompare(got, s.hash) != 1 {
		return false, false, nil
	}
	return true, s.params != h.params || s.pepperID != h.current, nil
}

// stored is a parsed PHC string.
type stored struct {
	params   Params // SaltLen and KeyLen are the decoded lengths
	pepperID string
	salt     []byte
	hash     []byte
}

// parse reads exactly the form Hash writes: the field and parameter order is
// fixed, numbers are canonical decimals, base64 is unpadded and canonical.
// Anything else, and any parameter outside the bounds, is ErrMalformed.
func parse(encoded string) (stored, error) {
	bad := func(why string) (stored, error) { return stored{}, fmt.Errorf("%w: %s", ErrMalformed, why) }
	if len(encoded) > maxEncodedLen {
		return bad("too long")
	}
	// "", "argon2id", "v=19", "m=..,t=..,p=..,k=..", salt, hash
	f := strings.Split(encoded, "$")
	if len(f) != 6 || f[0] != "" {
		return bad("want $argon2id$v=19$m=,t=,p=,k=$salt$hash")
	}
	if f[1] != algorithm {
		return bad("unsupported algorithm")
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported version")
	}

	kv := strings.Split(f[3], ",")
	if len(kv) != 4 {
		return bad("want parameters m,t,p,k")
	}
	var vals [4]string
	for i, name := range [4]string{"m", "t", "p", "k"} {
		v, found := strings.CutPrefix(kv[i], name+"=")
		if !found {
			return bad("want parameters m,t,p,k in that order")
		}
		vals[i] = v
	}
	m, okm := parseDec(vals[0], maxMemoryKiB)
	t, okt := parseDec(vals[1], maxTime)
	p, okp := parseDec(vals[2], 255)
	if !okm || !okt || !okp {
		return bad("parameter m, t or p not a decimal within bounds")
	}
	if !validID(vals[3]) {
		return bad("pepper id")
	}

	salt, err := decodeB64(f[4], minSaltLen, maxSaltLen)
	if err != nil {
		return bad("salt " + err.Error())
	}
	hash, err := decodeB64(f[5], minKeyLen, maxKeyLen)
	if err != nil {
		return bad("hash " + err.Error())
	}

	s := stored{
		params: Params{
			Memory: uint32(m), Time: uint32(t), Threads: uint8(p),
			SaltLen: uint32(len(salt)), KeyLen: uint32(len(hash)),
		},
		pepperID: vals[3],
		salt:     salt,
		hash:     hash,
	}
	if err := s.params.validate(); err != nil {
		// Cannot say which bound: validate's text is about configuration.
		return bad("parameters out of bounds")
	}
	return s, nil
}

// parseDec parses a canonical decimal (digits only, no sign, no leading zero)
// no greater than max.
func parseDec(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, false
	}
	return v, true
}

// decodeB64 decodes unpadded standard base64 of min..max bytes, accepting
// only the canonical encoding: the decoder alone would skip CR and LF and
// (without Strict) ignore non-zero trailing bits, which would let one stored
// value have many spellings.
func decodeB64(s string, min, max int) ([]byte, error) {
	if len(s) > base64.RawStdEncoding.EncodedLen(max) {
		return nil, errors.New("too long")
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil || base64.RawStdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not canonical unpadded standard base64")
	}
	if len(b) < min {
		return nil, errors.New("too short")
	}
	return b, nil
}
